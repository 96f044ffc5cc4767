"""Is each replica's next-hop alive on the LAN? ARP (IPv4) and NDP (IPv6) probes, async.

Choice: we send our own ARP request (AF_PACKET) and Neighbor Solicitation (raw ICMPv6) and wait
for the answer from that address. Reading the kernel neighbour table instead would lag: an entry
stays REACHABLE for up to base_reachable_time (~30 s) after the host died, and forcing it to
re-probe means writing neighbour entries we do not own. scapy would do the same packets, but its
sr() blocks a thread per probe and its import costs seconds. Needs CAP_NET_RAW.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import struct
import threading
from collections.abc import Mapping

from .._aio import wait_for
from .._types import IPAddress, NextHop
from ._local import LocalNet, net_for
from .config import HealthConfig

log = logging.getLogger(__name__)
ETH_P_ARP = 0x0806
BROADCAST = b"\xff" * 6


async def arp_probe(net: LocalNet, target: ipaddress.IPv4Address, timeout: float) -> bool:
    """Broadcast an ARP request for `target` from `net`; True if `target` answers in time."""
    loop = asyncio.get_running_loop()
    request = struct.pack(
        "!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, net.mac, net.address.packed, b"\0" * 6, target.packed
    )
    # Protocol 0 at creation, the real one at bind: a packet socket created with a protocol is
    # hooked at once, and re-binding it unhooks it with synchronize_net() (~16 ms of the event
    # loop measured). Its close() waits for another RCU grace period (~8 ms): done on a thread.
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)
    try:
        sock.setblocking(False)
        sock.bind((net.ifname, ETH_P_ARP))
        await loop.sock_sendto(sock, request, (net.ifname, ETH_P_ARP, 0, 0, BROADCAST))

        async def answer() -> None:
            while True:
                data = await loop.sock_recv(sock, 128)
                if len(data) >= 28 and data[6:8] == b"\x00\x02" and data[14:18] == target.packed:
                    return

        try:
            await wait_for(answer(), timeout)
        except TimeoutError:
            return False
    finally:
        _close_off_loop(sock)
    return True


def _close_off_loop(sock: socket.socket) -> None:
    """Close a packet socket without blocking the event loop on the kernel's synchronize_net().

    A plain daemon thread, not the loop's executor: nothing waits for it, so neither a loop
    that is shutting down nor a cancelled probe can hang on it.
    """
    fd = sock.detach()  # the reader/writer callbacks of this fd are gone by now (awaited above)
    threading.Thread(target=os.close, args=(fd,), name="arp-socket-close", daemon=True).start()


def _solicited_node(target: ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(b"\xff\x02" + b"\0" * 9 + b"\x01\xff" + target.packed[13:])


async def ndp_probe(net: LocalNet, target: ipaddress.IPv6Address, timeout: float) -> bool:
    """Send a Neighbor Solicitation for `target`; True if a Neighbor Advertisement for it arrives."""
    loop = asyncio.get_running_loop()
    # type 135, code 0, checksum (the kernel fills it for ICMPv6 raw sockets), reserved, target,
    # then the source link-layer address option so the answer can come straight back.
    solicit = struct.pack("!BBHI16sBB6s", 135, 0, 0, 0, target.packed, 1, 1, net.mac)
    with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as sock:
        sock.setblocking(False)
        # RFC 4861: NDP is sent with hop limit 255 and receivers drop anything else.
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, net.ifindex)
        sock.bind((str(net.address), 0, 0, net.ifindex))
        await loop.sock_sendto(sock, solicit, (str(_solicited_node(target)), 0, 0, net.ifindex))

        async def answer() -> None:
            while True:
                data = await loop.sock_recv(sock, 256)
                if len(data) >= 24 and data[0] == 136 and data[8:24] == target.packed:
                    return

        try:
            await wait_for(answer(), timeout)
        except TimeoutError:
            return False
    return True


async def probe_address(nets: list[LocalNet], addr: IPAddress, timeout: float) -> bool | None:
    """True/False: answered or not; None: could not probe (no CAP_NET_RAW), so nothing is known."""
    net = net_for(nets, addr)
    if net is None:
        return False  # not on a connected subnet: unreachable as a next-hop
    try:
        if isinstance(addr, ipaddress.IPv4Address):
            return await arp_probe(net, addr, timeout)
        return await ndp_probe(net, addr, timeout)
    except PermissionError as exc:
        # Without CAP_NET_RAW we know nothing; calling the next-hop dead would raise false alerts.
        log.warning("cannot probe %s on %s: %s (needs CAP_NET_RAW)", addr, net.ifname, exc)
        return None
    except OSError as exc:
        log.warning("probe of %s on %s failed: %s", addr, net.ifname, exc)
        return False


class HealthTracker:
    """Consecutive-failure counting per next-hop address; a replica is healthy while every
    address it is reached by has failed fewer than `failures` probes in a row."""

    def __init__(self, config: HealthConfig) -> None:
        self.config = config
        self._fails: dict[IPAddress, int] = {}
        self._hops: dict[str, NextHop] = {}

    def update_config(self, config: HealthConfig) -> None:
        self.config = config

    async def probe(self, hops: Mapping[str, NextHop], nets: list[LocalNet]) -> dict[str, bool]:
        """Probe every address of `hops` once (concurrently) and return the health by replica id."""
        self._hops = dict(hops)
        addrs = list(dict.fromkeys(a for hop in hops.values() for a in (hop.ipv4, hop.ipv6) if a is not None))
        results = await asyncio.gather(*(probe_address(nets, a, self.config.timeout) for a in addrs))
        for addr, ok in zip(addrs, results, strict=True):
            if ok is None:
                self._fails.pop(addr, None)  # unknown: the replica gets no health verdict
                continue
            self._fails[addr] = 0 if ok else self._fails.get(addr, 0) + 1
        for stale in set(self._fails) - set(addrs):
            del self._fails[stale]
        return self.health()

    def health(self) -> dict[str, bool]:
        out: dict[str, bool] = {}
        for rid, hop in self._hops.items():
            addrs = [a for a in (hop.ipv4, hop.ipv6) if a is not None]
            if addrs and all(a in self._fails for a in addrs):
                out[rid] = all(self._fails[a] < self.config.failures for a in addrs)
        return out
