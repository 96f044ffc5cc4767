"""Is a next-hop gateway on a connected subnet? (Nexthop objects and routes need that.)"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError as PrNetlinkError

RTN_UNICAST, RTN_LOCAL = 1, 2


@dataclass(frozen=True, slots=True)
class Resolved:
    """A gateway checked against the kernel: the interface it is reachable on, or why not."""

    address: str
    oif: int = 0
    ifname: str | None = None
    error: str | None = None


async def resolve_gateway(ipr: Any, address: str) -> Resolved:
    try:
        addr = ipaddress.ip_address(address)
    except ValueError:
        return Resolved(address, error=f"next hop {address!r} is not an IP address")
    if addr.is_link_local or addr.is_multicast or addr.is_unspecified or addr.is_loopback:
        return Resolved(address, error=f"next hop {addr} must be a unicast address on a connected LAN subnet")
    try:
        replies = list(await ipr.route("get", dst=str(addr)))
    except PrNetlinkError as exc:
        return Resolved(address, error=f"next hop {addr} is unreachable: no route to it ({exc.args[-1]})")
    if not replies:
        return Resolved(address, error=f"next hop {addr}: the kernel returned no route")
    msg = replies[0]
    oif = msg.get("RTA_OIF") or 0
    ifname = None
    if oif:
        links = list(await ipr.link("get", index=oif))
        ifname = links[0].get("IFLA_IFNAME") if links else None
    if msg["type"] == RTN_LOCAL:
        return Resolved(address, oif, ifname, f"next hop {addr} is an address of this host, not of a replica")
    via = msg.get("RTA_GATEWAY")
    if via or msg["type"] != RTN_UNICAST:
        how = f"via {via}" if via else f"by a route of type {msg['type']}"
        return Resolved(
            address, oif, ifname,
            f"next hop {addr} is not on a connected subnet (the kernel reaches it {how}); "
            "use the replica's address on the router's LAN",
        )  # fmt: skip
    return Resolved(address, oif, ifname)


async def check_onlink(address: str, netns: str | None = None) -> str | None:
    """None when `address` is on a connected subnet (in `netns`), else a one-line error text."""
    if netns is not None:
        from .._netns import netns_path

        try:
            netns_path(netns)
        except FileNotFoundError as exc:
            return str(exc)
    ipr = AsyncIPRoute(netns=netns, flags=0) if netns else AsyncIPRoute()
    try:
        return (await resolve_gateway(ipr, address)).error
    finally:
        ipr.close()
