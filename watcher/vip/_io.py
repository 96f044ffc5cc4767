"""Raw VRRP sockets (IP protocol 112) driven by the asyncio loop: no threads, no sniffing.

One socket per family, bound to the interface. We send with sendmsg + IP(V6)_PKTINFO so the source
is our primary address without bind() (a bound raw socket would stop receiving the group address).
The received TTL comes from the IPv4 header (raw v4 sockets deliver it); the IPv6 hop limit and
destination come from ancillary data.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import struct
from collections.abc import Callable

from ._packet import GROUP4, GROUP6, IPPROTO_VRRP, Addr

log = logging.getLogger(__name__)

# Linux values the socket module does not export everywhere.
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)

Received = tuple[bytes, Addr, Addr, int]  # message, src, dst, ttl/hop limit
OnReceive = Callable[[bytes, Addr, Addr, int], None]


class VrrpSocket:
    """Send and receive VRRP messages for one family on one interface."""

    def __init__(self, family: int, ifname: str, source: Addr, *, multicast: bool = True) -> None:
        self.family = family
        self.ifname = ifname
        self.ifindex = socket.if_nametoindex(ifname)
        self.source = source
        self.group: Addr = GROUP4 if family == 4 else GROUP6
        af = socket.AF_INET if family == 4 else socket.AF_INET6
        sock = socket.socket(af, socket.SOCK_RAW, IPPROTO_VRRP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, ifname.encode())
            if family == 4:
                self._setup4(sock, multicast)
            else:
                self._setup6(sock, multicast)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self._loop: asyncio.AbstractEventLoop | None = None

    def _setup4(self, sock: socket.socket, multicast: bool) -> None:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        mreqn = struct.pack("4s4si", GROUP4.packed, b"\0" * 4, self.ifindex)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
        if multicast:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)

    def _setup6(self, sock: socket.socket, multicast: bool) -> None:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, self.ifindex)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
        if multicast:
            mreq = struct.pack("16sI", GROUP6.packed, self.ifindex)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)

    # sending ----------------------------------------------------------------------------
    def send(self, message: bytes, dst: Addr) -> bool:
        """Send one message; False (logged) when the kernel refuses, e.g. the link is down."""
        try:
            if self.family == 4:
                info = struct.pack("I4s4s", self.ifindex, self.source.packed, b"\0" * 4)
                self.sock.sendmsg([message], [(socket.IPPROTO_IP, IP_PKTINFO, info)], 0, (str(dst), 0))
            else:
                info = struct.pack("16sI", self.source.packed, self.ifindex)
                scope = self.ifindex if dst.is_link_local or dst.is_multicast else 0
                self.sock.sendmsg(
                    [message], [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, info)], 0, (str(dst), 0, 0, scope)
                )
        except (BlockingIOError, OSError) as exc:
            log.warning("vrrp: send to %s on %s failed: %s", dst, self.ifname, exc)
            return False
        return True

    # receiving --------------------------------------------------------------------------
    def recv(self) -> Received | None:
        """One pending message, or None when the queue is empty or the datagram is unusable."""
        try:
            data, anc, _flags, addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(64))
        except (BlockingIOError, InterruptedError):
            return None
        if self.family == 4:
            return _split4(data)
        hlim, dst = -1, None
        for level, kind, value in anc:
            if level != socket.IPPROTO_IPV6:
                continue
            if kind == socket.IPV6_HOPLIMIT and len(value) >= 4:
                hlim = struct.unpack("i", value[:4])[0]
            elif kind == socket.IPV6_PKTINFO and len(value) >= 16:
                dst = ipaddress.IPv6Address(value[:16])
        src = ipaddress.IPv6Address(addr[0].split("%")[0])
        return data, src, dst or GROUP6, hlim

    def attach(self, loop: asyncio.AbstractEventLoop, on_receive: OnReceive) -> None:
        def ready() -> None:
            # Drain everything queued: one wakeup may stand for several datagrams.
            for _ in range(64):
                got = self.recv()
                if got is None:
                    return
                on_receive(*got)

        self._loop = loop
        loop.add_reader(self.sock.fileno(), ready)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
            self._loop = None
        self.sock.close()


def _split4(data: bytes) -> Received | None:
    if len(data) < 20 or data[0] >> 4 != 4:
        return None
    ihl = (data[0] & 0x0F) * 4
    total = struct.unpack_from("!H", data, 2)[0]
    src = ipaddress.IPv4Address(data[12:16])
    dst = ipaddress.IPv4Address(data[16:20])
    return data[ihl : max(ihl, min(total, len(data)))], src, dst, data[8]
