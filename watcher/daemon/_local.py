"""This host's connected subnets (read-only netlink dump), for next-hop resolution and probing."""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass

from .._types import IPAddress, IPNetwork


@dataclass(frozen=True, slots=True)
class LocalNet:
    ifname: str
    ifindex: int
    mac: bytes
    address: IPAddress  # our own address on that subnet (the probe's source)
    network: IPNetwork


def _dump() -> list[LocalNet]:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        links = {
            int(link["index"]): (str(link.get("IFLA_IFNAME")), str(link.get("IFLA_ADDRESS") or ""))
            for link in ipr.get_links()
        }
        out: list[LocalNet] = []
        for msg in ipr.get_addr():
            addr = msg.get("IFA_ADDRESS")
            name, mac = links.get(int(msg["index"]), ("", ""))
            if not addr or not name or name == "lo":
                continue
            iface = ipaddress.ip_interface(f"{addr}/{msg['prefixlen']}")
            if iface.ip.is_link_local or iface.ip.is_loopback:
                continue
            raw_mac = bytes.fromhex(mac.replace(":", "")) if mac else b"\0" * 6
            out.append(LocalNet(name, int(msg["index"]), raw_mac, iface.ip, iface.network))
    return out


async def local_networks() -> list[LocalNet]:
    """Connected subnets of the namespace this process runs in (no link-local, no loopback)."""
    return await asyncio.to_thread(_dump)


def networks(nets: list[LocalNet]) -> tuple[IPNetwork, ...]:
    return tuple(dict.fromkeys(n.network for n in nets))


def net_for(nets: list[LocalNet], addr: IPAddress) -> LocalNet | None:
    best: LocalNet | None = None
    for net in nets:
        inside = net.network.version == addr.version and addr in net.network
        if inside and (best is None or net.network.prefixlen > best.network.prefixlen):
            best = net
    return best
