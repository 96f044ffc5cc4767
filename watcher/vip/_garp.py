"""Gratuitous ARP and unsolicited neighbour advertisements for the VIPs (AF_PACKET).

Sent in a burst when we become master, again after `second_burst_delay` (a switch or host that was
busy during the first burst still learns), and optionally every `refresh_interval` while master
(caches that age entries out without re-resolving would otherwise drift back to the old MAC).

The frames are constant per (MAC, VIPs), so they are built by hand at startup and the socket is
opened then too: the first burst of a takeover is a few send() calls, no packet library, no import.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
from collections.abc import Sequence

from ._packet import inet_checksum
from .config import GarpConfig

log = logging.getLogger(__name__)
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
IPPROTO_ICMPV6 = 58
ALL_NODES = ipaddress.IPv6Address("ff02::1")
ND_NA_FLAG_OVERRIDE = 0x20000000


def interface_mac(ifname: str) -> str:
    with open(f"/sys/class/net/{ifname}/address") as fh:
        return fh.read().strip()


def _arp(mac: bytes, ip: bytes, op: int, target_mac: bytes) -> bytes:
    eth = b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP)
    return eth + struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + mac + ip + target_mac + ip


def _na(mac: bytes, src: ipaddress.IPv6Address, target: ipaddress.IPv6Address) -> bytes:
    body = struct.pack("!BBHI", 136, 0, 0, ND_NA_FLAG_OVERRIDE) + target.packed + b"\x02\x01" + mac
    pseudo = src.packed + ALL_NODES.packed + struct.pack("!I3xB", len(body), IPPROTO_ICMPV6)
    ck = inet_checksum(pseudo + body)
    body = body[:2] + struct.pack("!H", ck) + body[4:]
    ip6 = struct.pack("!IHBB", 6 << 28, len(body), IPPROTO_ICMPV6, 255) + src.packed + ALL_NODES.packed
    eth = b"\x33\x33\x00\x00\x00\x01" + mac + struct.pack("!H", ETH_P_IPV6)
    return eth + ip6 + body


def garp_frames(
    mac: str, addresses: Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address], ll_source: str | None
) -> list[bytes]:
    """Frames announcing that `addresses` now live at `mac`.

    IPv4: both an ARP request and an ARP reply form (RFC 5227 §3; some stacks only update on one).
    IPv6: an unsolicited NA to all-nodes with the Override flag set (RFC 4861 §7.2.6).
    """
    hw = bytes.fromhex(mac.replace(":", ""))
    if len(hw) != 6:
        raise ValueError(f"garp: {mac!r} is not an Ethernet MAC address")
    frames: list[bytes] = []
    for addr in addresses:
        if isinstance(addr, ipaddress.IPv4Address):
            frames.append(_arp(hw, addr.packed, 1, b"\0" * 6))
            frames.append(_arp(hw, addr.packed, 2, b"\xff" * 6))
        else:
            src = ipaddress.IPv6Address(ll_source) if ll_source else addr
            frames.append(_na(hw, src, addr))
    return frames


class Announcer:
    """Sends the GARP/NA bursts for one instance while it is master."""

    def __init__(
        self,
        ifname: str,
        addresses: Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address],
        config: GarpConfig,
        *,
        ll_source: str | None = None,
    ) -> None:
        self.ifname = ifname
        self.addresses = list(addresses)
        self.config = config
        self.ll_source = ll_source
        self.sent = 0
        self._mac = interface_mac(ifname)
        self._frames = garp_frames(self._mac, self.addresses, ll_source)
        self._sock: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._first_sent = False
        with contextlib.suppress(OSError):
            self._socket()  # opened now so a takeover does not pay for it; retried on use

    def _socket(self) -> socket.socket:
        if self._sock is None:
            # Protocol 0: a send-only socket, the kernel queues no received frames on it.
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            try:
                sock.bind((self.ifname, 0))
                sock.setblocking(False)
            except BaseException:
                sock.close()
                raise
            self._sock = sock
        return self._sock

    def _send_burst(self) -> None:
        try:
            sock = self._socket()
        except OSError as exc:
            log.warning("garp: cannot open a packet socket on %s: %s", self.ifname, exc)
            return
        for frame in self._frames:
            try:
                sock.send(frame)
                self.sent += 1
            except OSError as exc:
                log.warning("garp: send on %s failed: %s", self.ifname, exc)
                # The interface may have been re-created (new ifindex): reopen on the next burst.
                self._close_socket()
                return

    def announce_now(self) -> None:
        """First frames of the first burst, synchronously (the takeover path); `start` goes on."""
        self._send_burst()
        self._first_sent = True

    async def _run(self, first_sent: bool) -> None:
        cfg = self.config
        with contextlib.suppress(OSError):
            mac = interface_mac(self.ifname)
            if mac != self._mac:  # changed since startup: announce the MAC we really have
                self._mac, self._frames = mac, garp_frames(mac, self.addresses, self.ll_source)
                first_sent = False
        for i in range(cfg.count):
            if i == 0 and first_sent:
                continue
            if i and cfg.interval:
                await asyncio.sleep(cfg.interval)
            self._send_burst()
        if cfg.second_burst_delay is not None:
            await asyncio.sleep(cfg.second_burst_delay)
            for i in range(cfg.count):
                if i and cfg.interval:
                    await asyncio.sleep(cfg.interval)
                self._send_burst()
        while cfg.refresh_interval is not None:
            await asyncio.sleep(cfg.refresh_interval)
            self._send_burst()

    def start(self) -> None:
        first_sent, self._first_sent = self._first_sent, False
        if self._task is not None:
            self._task.cancel()
        self._task = asyncio.get_running_loop().create_task(self._run(first_sent), name=f"garp-{self.ifname}")

    def stop(self) -> None:
        self._first_sent = False
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def _close_socket(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def wait_stopped(self) -> None:
        task, self._task = self._task, None
        self._first_sent = False
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._close_socket()
