"""`/connections` items and teamnet routes -> the data-path types."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Mapping
from typing import Any, cast

from .._types import HaStatus, IPNetwork, Replica
from ..cfapi import BadResponse

log = logging.getLogger("watcher.source")
_STATUSES = ("active", "passive", "offline")


def _opt_str(item: Mapping[str, Any], key: str) -> str | None:
    value = item.get(key)
    return None if value in (None, "") else str(value)


def parse_replica(item: Any) -> Replica:
    """One `/connections` item; raises BadResponse when it has no usable id."""
    if not isinstance(item, Mapping) or not isinstance(item.get("id"), str) or not item["id"]:
        raise BadResponse(f"connections: item without an id: {item!r:.200}")
    status = item.get("ha_status")
    if status not in _STATUSES:
        # An unknown state must never be mistaken for "active".
        log.warning("replica %s: unknown ha_status %r, treated as offline", item["id"], status)
        status = "offline"
    origins: list[str] = []
    for conn in item.get("conns") or ():
        ip = conn.get("origin_ip") if isinstance(conn, Mapping) else None
        if isinstance(ip, str) and ip and ip not in origins:
            origins.append(ip)
    lan = item.get("lan_addresses") or ()
    return Replica(
        id=item["id"],
        ha_status=cast(HaStatus, status),
        origin_ips=tuple(origins),
        device_name=_opt_str(item, "device_name"),
        lan_addresses=tuple(str(a) for a in lan) if isinstance(lan, list | tuple) else (),
        mesh_ipv4=_opt_str(item, "mesh_ipv4"),
        mesh_ipv6=_opt_str(item, "mesh_ipv6"),
        version=_opt_str(item, "version"),
        arch=_opt_str(item, "arch"),
        run_at=_opt_str(item, "run_at"),
    )


def parse_replicas(items: Iterable[Any]) -> tuple[Replica, ...]:
    replicas = tuple(parse_replica(item) for item in items)
    if len({r.id for r in replicas}) != len(replicas):
        raise BadResponse("connections: the same replica id appears twice")
    return replicas


def learned_routes(routes: Iterable[Any], own_node_id: str) -> tuple[IPNetwork, ...]:
    """Networks routed to OTHER nodes (what this site must send into the mesh), sorted, unique.

    Routes of our own node are the subnet behind us; sending them into the mesh would loop.
    Unparseable networks are skipped with a warning rather than failing the whole read.
    """
    out: set[IPNetwork] = set()
    for route in routes:
        if not isinstance(route, Mapping) or route.get("deleted_at") or route.get("tunnel_id") == own_node_id:
            continue
        try:
            out.add(ipaddress.ip_network(str(route.get("network")), strict=False))
        except ValueError:
            log.warning("route %s: network %r is not a CIDR; ignored", route.get("id"), route.get("network"))
    return tuple(sorted(out, key=lambda n: (n.version, n.network_address, n.prefixlen)))
