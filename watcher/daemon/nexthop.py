"""Where each replica can be reached on the LAN: pure next-hop resolution.

Order: the static map (matched by id, origin_ip or device_name), else the addresses the replica
agent reported (`lan_addresses`, embedded control plane only): the first IPv4 and the first IPv6
inside a connected subnet. Connected subnets are an input, so this stays free of I/O.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .._types import IPNetwork, NextHop, Replica
from .config import ReplicasConfig, StaticNextHop


@dataclass(frozen=True, slots=True)
class Resolution:
    """A next-hop, or why there is none (`nexthop is None` -> `problem` says why)."""

    nexthop: NextHop | None
    source: str  # "static", "reported" or "none"
    problem: str | None = None


def _matches(entry: StaticNextHop, replica: Replica) -> bool:
    kind, value = entry.match.key()
    if kind == "id":
        return replica.id == value
    if kind == "device_name":
        return replica.device_name == value
    return any(_same_ip(value, ip) for ip in replica.origin_ips)


def _same_ip(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


def _connected(addr: ipaddress.IPv4Address | ipaddress.IPv6Address, connected: Sequence[IPNetwork]) -> bool:
    return any(addr.version == net.version and addr in net for net in connected)


def _from_reported(
    addresses: Iterable[str], connected: Sequence[IPNetwork]
) -> tuple[ipaddress.IPv4Address | None, ipaddress.IPv6Address | None]:
    v4: ipaddress.IPv4Address | None = None
    v6: ipaddress.IPv6Address | None = None
    for text in addresses:
        try:
            # Agents may report "addr/prefixlen" (interface form) or a bare address.
            addr = ipaddress.ip_interface(text.strip()).ip
        except ValueError:
            continue
        if addr.is_link_local or addr.is_loopback or not _connected(addr, connected):
            continue
        if isinstance(addr, ipaddress.IPv4Address):
            v4 = v4 or addr
        else:
            v6 = v6 or addr
    return v4, v6


def resolve(replica: Replica, config: ReplicasConfig, connected: Sequence[IPNetwork]) -> Resolution:
    hits = [entry for entry in config.static if _matches(entry, replica)]
    if len(hits) > 1:
        keys = ", ".join("=".join(e.match.key()) for e in hits)
        return Resolution(None, "none", f"replica {replica.id} matches {len(hits)} static entries ({keys})")
    if hits:
        entry = hits[0]
        return Resolution(NextHop(replica.id, entry.ipv4, entry.ipv6), "static")
    if config.use_reported_lan_addresses and replica.lan_addresses:
        v4, v6 = _from_reported(replica.lan_addresses, connected)
        if v4 or v6:
            return Resolution(NextHop(replica.id, v4, v6), "reported")
        return Resolution(
            None,
            "none",
            f"replica {replica.id} reported {', '.join(replica.lan_addresses)}, none in a connected subnet",
        )
    why = "no static entry matches it" + (
        "" if config.use_reported_lan_addresses else " and use_reported_lan_addresses is off"
    )
    if config.use_reported_lan_addresses:
        why += " and it reported no LAN address"
    return Resolution(None, "none", f"unknown next-hop for replica {replica.id}: {why}")


def describe(nexthop: NextHop | None) -> str:
    if nexthop is None:
        return "none"
    addrs = [str(a) for a in (nexthop.ipv4, nexthop.ipv6) if a is not None]
    return f"{nexthop.replica_id} via {'/'.join(addrs) or 'no address'}"
