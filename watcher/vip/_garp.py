"""Gratuitous ARP and unsolicited neighbour advertisements for the VIPs (AF_PACKET, built with scapy).

Sent in a burst when we become master, again after `second_burst_delay` (a switch or host that was
busy during the first burst still learns), and optionally every `refresh_interval` while master
(caches that age entries out without re-resolving would otherwise drift back to the old MAC).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Sequence

from .config import GarpConfig

log = logging.getLogger(__name__)
ETH_P_ALL = 0x0003


def interface_mac(ifname: str) -> str:
    with open(f"/sys/class/net/{ifname}/address") as fh:
        return fh.read().strip()


def garp_frames(
    mac: str, addresses: Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address], ll_source: str | None
) -> list[bytes]:
    """Frames announcing that `addresses` now live at `mac`.

    IPv4: both an ARP request and an ARP reply form (RFC 5227 §3; some stacks only update on one).
    IPv6: an unsolicited NA to all-nodes with the Override flag set (RFC 4861 §7.2.6).
    """
    from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
    from scapy.layers.l2 import ARP, Ether

    frames: list[bytes] = []
    for addr in addresses:
        ip = str(addr)
        if addr.version == 4:
            bcast = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
            frames.append(bytes(bcast / ARP(op=1, hwsrc=mac, psrc=ip, hwdst="00:00:00:00:00:00", pdst=ip)))
            frames.append(bytes(bcast / ARP(op=2, hwsrc=mac, psrc=ip, hwdst="ff:ff:ff:ff:ff:ff", pdst=ip)))
        else:
            src = ll_source or ip
            frames.append(
                bytes(
                    Ether(src=mac, dst="33:33:00:00:00:01")
                    / IPv6(src=src, dst="ff02::1", hlim=255)
                    / ICMPv6ND_NA(tgt=ip, R=0, S=0, O=1)
                    / ICMPv6NDOptDstLLAddr(lladdr=mac)
                )
            )
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
        self._task: asyncio.Task[None] | None = None

    def _send_burst(self, sock: socket.socket, frames: list[bytes]) -> None:
        for frame in frames:
            try:
                sock.send(frame)
                self.sent += 1
            except OSError as exc:
                log.warning("garp: send on %s failed: %s", self.ifname, exc)
                return

    async def _run(self) -> None:
        cfg = self.config
        frames = garp_frames(interface_mac(self.ifname), self.addresses, self.ll_source)
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)) as sock:
            sock.bind((self.ifname, 0))
            sock.setblocking(False)
            for i in range(cfg.count):
                if i and cfg.interval:
                    await asyncio.sleep(cfg.interval)
                self._send_burst(sock, frames)
            if cfg.second_burst_delay is not None:
                await asyncio.sleep(cfg.second_burst_delay)
                for i in range(cfg.count):
                    if i and cfg.interval:
                        await asyncio.sleep(cfg.interval)
                    self._send_burst(sock, frames)
            while cfg.refresh_interval is not None:
                await asyncio.sleep(cfg.refresh_interval)
                self._send_burst(sock, frames)

    def start(self) -> None:
        self.stop()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"garp-{self.ifname}")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def wait_stopped(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
