"""Types shared by the data path: source -> decide -> actuators.

These are the seams between modules; each side depends only on this file.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

HaStatus = Literal["active", "passive", "offline"]
Trigger = Literal["startup", "poll", "event", "webhook", "manual"]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Replica:
    """One replica of a node as the control plane reports it (a `/connections` item)."""

    id: str
    ha_status: HaStatus
    origin_ips: tuple[str, ...] = ()
    device_name: str | None = None
    # Extension fields: only the embedded control plane reports these.
    lan_addresses: tuple[str, ...] = ()
    mesh_ipv4: str | None = None
    mesh_ipv6: str | None = None
    version: str | None = None
    arch: str | None = None
    run_at: str | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """One read of the control plane's view of a node.

    `replicas is None` means the control plane could not be read (`error` says why).
    `received_at` is the monotonic time the trigger (event, webhook, poll tick) arrived:
    convergence is measured from it.
    """

    received_at: float
    trigger: Trigger
    replicas: tuple[Replica, ...] | None
    error: str | None = None
    routes: tuple[IPNetwork, ...] | None = None  # learned prefixes, when learning is on


@dataclass(frozen=True, slots=True)
class NextHop:
    """Where outbound traffic should go: the active replica's LAN address per family."""

    replica_id: str
    ipv4: ipaddress.IPv4Address | None = None
    ipv6: ipaddress.IPv6Address | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """What the actuators must make true. `nexthop is None` means: nothing known yet."""

    nexthop: NextHop | None
    reason: str
    stale: bool = False
    prefixes: tuple[IPNetwork, ...] = field(default_factory=tuple)


class Actuator(Protocol):
    """Something that makes a Target true in the kernel or on the LAN.

    `apply` is idempotent and must not touch anything the actuator does not own.
    """

    name: str

    async def start(self) -> None: ...

    async def apply(self, target: Target) -> None: ...

    async def close(self, *, withdraw: bool = False) -> None: ...


def parse_ip(value: str) -> IPAddress:
    return ipaddress.ip_address(value)


def as_networks(values: Sequence[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(v, strict=True) for v in values)
