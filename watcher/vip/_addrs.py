"""The VIPs on the interface, through netlink (pyroute2 AsyncIPRoute). Touches only the VIPs."""

from __future__ import annotations

import errno
import ipaddress
import logging
from typing import Any

from .config import VipAddress, has_explicit_prefix

log = logging.getLogger(__name__)
IFA_F_NODAD = 0x02
Iface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


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

    async def open(self) -> None:
        from pyroute2 import AsyncIPRoute

        self._ipr = AsyncIPRoute()
        found = await self._ipr.link_lookup(ifname=self.ifname)
        if not found:
            await self.close()
            raise VipError(f"interface {self.ifname!r} does not exist")
        self.index = found[0]

    async def close(self) -> None:
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
        return real[0].ip

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
