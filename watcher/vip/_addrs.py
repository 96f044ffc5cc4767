"""The VIPs on the interface, through netlink (pyroute2 AsyncIPRoute). Touches only the VIPs."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import socket
import struct
from typing import Any

from .config import VipAddress, has_explicit_prefix

log = logging.getLogger(__name__)
IFA_F_NODAD = 0x02
NETLINK_ROUTE = 0
RTM_NEWADDR = 20
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_CREATE = 0x1, 0x4, 0x400
IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS = 1, 2, 8
NLMSGHDR = struct.Struct("=IHHII")
Iface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


def _rta(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


class VipError(RuntimeError):
    pass


class AddressManager:
    def __init__(self, ifname: str, family: int, vips: list[VipAddress]) -> None:
        self.ifname = ifname
        self.family = family
        self.configured = vips
        self.vips: list[Iface] = []  # with their prefixes resolved
        self.index = 0
        self._ipr: Any = None
        self._nl: socket.socket | None = None  # plain rtnetlink socket for the takeover path
        self._add_requests: list[bytes] = []

    async def open(self) -> None:
        from pyroute2 import AsyncIPRoute

        self._ipr = AsyncIPRoute()
        found = await self._ipr.link_lookup(ifname=self.ifname)
        if not found:
            await self.close()
            raise VipError(f"interface {self.ifname!r} does not exist")
        self.index = found[0]

    async def close(self) -> None:
        if self._nl is not None:
            self._nl.close()
            self._nl = None
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None

    async def own_addresses(self) -> list[Iface]:
        """The interface's addresses of our family, VIPs included, in kernel order."""
        out: list[Iface] = []
        fam = 2 if self.family == 4 else 10
        async for msg in await self._ipr.addr("dump", index=self.index, family=fam):
            addr = msg.get("IFA_ADDRESS")
            if addr:
                out.append(ipaddress.ip_interface(f"{addr}/{msg['prefixlen']}"))
        return out

    async def resolve(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        """Resolve VIP prefixes and return the primary address adverts are sent from.

        Primary: the first IPv4 address that is not a VIP, or (IPv6) the first link-local that is
        not a VIP, as RFC 9568 §5.1.2.1 asks.
        """
        present = await self.own_addresses()
        vip_ips = {v.ip for v in self.configured}
        real = [a for a in present if a.ip not in vip_ips]
        if self.family == 6:
            real = [a for a in real if a.ip.is_link_local]
        if not real:
            kind = "IPv4 address" if self.family == 4 else "IPv6 link-local address"
            raise VipError(f"interface {self.ifname!r} has no {kind} of its own to send adverts from")
        self.vips = [self._with_prefix(v, real) for v in self.configured]
        self._prepare_fast_add()
        return real[0].ip

    def _prepare_fast_add(self) -> None:
        # The RTM_NEWADDR requests are constant: build them (and the socket) once, so becoming
        # master costs one sendto() per VIP instead of an asyncio round trip through pyroute2.
        fam = socket.AF_INET if self.family == 4 else socket.AF_INET6
        flags = IFA_F_NODAD if self.family == 6 else 0  # a VIP must answer at once
        self._add_requests = []
        for seq, vip in enumerate(self.vips, start=1):
            ip = vip.ip.packed
            attrs = _rta(IFA_LOCAL, ip) + _rta(IFA_ADDRESS, ip) + _rta(IFA_FLAGS, struct.pack("=I", flags))
            body = struct.pack("=BBBBI", fam, vip.network.prefixlen, flags, 0, self.index) + attrs
            hdr = NLMSGHDR.pack(
                NLMSGHDR.size + len(body), RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE, seq, 0
            )
            self._add_requests.append(hdr + body)
        if self._nl is None:
            nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
            nl.setblocking(False)
            self._nl = nl

    def add_now(self) -> bool:
        """Add every VIP synchronously; True when all are on the interface when this returns.

        rtnetlink handles a request inside the sender's sendto(), so the address exists (and the
        ack is queued) before this returns: a GARP sent right after announces a working address.
        False (nothing raised): let `add_all` retry and report.
        """
        nl = self._nl
        if nl is None or not self._add_requests:
            return False
        ok = True
        try:
            for req in self._add_requests:
                nl.sendto(req, (0, 0))
            for _ in self._add_requests:
                ack = nl.recv(65536)
                while len(ack) >= NLMSGHDR.size + 4:
                    length, kind = NLMSGHDR.unpack_from(ack)[:2]
                    if kind == NLMSG_ERROR:
                        err = -struct.unpack_from("=i", ack, NLMSGHDR.size)[0]
                        ok = ok and err in (0, errno.EEXIST)
                    ack = ack[max(length, NLMSGHDR.size) :]
        except OSError as exc:
            log.debug("vip: fast add on %s failed (%s), falling back", self.ifname, exc)
            with contextlib.suppress(OSError):  # drop stale acks so the next try reads its own
                while self._nl is not None and self._nl.recv(65536):
                    pass
            return False
        return ok

    def _with_prefix(self, vip: VipAddress, real: list[Iface]) -> Iface:
        if has_explicit_prefix(vip):
            return ipaddress.ip_interface(str(vip))
        for iface in real:
            if vip.ip in iface.network:
                return ipaddress.ip_interface(f"{vip.ip}/{iface.network.prefixlen}")
        return ipaddress.ip_interface(str(vip.ip))  # host prefix: /32 or /128

    async def present(self) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        vip_ips = {v.ip for v in self.vips}
        return {a.ip for a in await self.own_addresses() if a.ip in vip_ips}

    async def add_all(self) -> None:
        for vip in self.vips:
            kwargs: dict[str, Any] = {}
            if self.family == 6:
                kwargs["flags"] = IFA_F_NODAD  # a VIP must answer at once; VRRP already arbitrates
            try:
                await self._ipr.addr(
                    "add", index=self.index, address=str(vip.ip), prefixlen=vip.network.prefixlen, **kwargs
                )
            except Exception as exc:
                if getattr(exc, "code", None) != errno.EEXIST:
                    log.error("vip: cannot add %s on %s: %s", vip, self.ifname, exc)

    async def remove_all(self) -> None:
        present = await self.present()
        for vip in self.vips:
            if vip.ip not in present:
                continue
            try:
                await self._ipr.addr(
                    "del", index=self.index, address=str(vip.ip), prefixlen=vip.network.prefixlen
                )
            except Exception as exc:
                if getattr(exc, "code", None) not in (errno.EADDRNOTAVAIL, errno.ENODEV):
                    log.error("vip: cannot remove %s from %s: %s", vip, self.ifname, exc)
