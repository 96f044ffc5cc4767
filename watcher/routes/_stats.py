"""What the actuator reports: repairs by kind, counters and gauges for the metrics exporter."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Literal

RepairKind = Literal[
    "route_replaced",  # a foreign RTM_NEWROUTE took one of our (table, dst, metric) slots
    "route_deleted",  # one of our routes was deleted
    "nexthop_deleted",  # our nexthop object went away (the kernel drops its routes silently)
    "nexthop_replaced",  # our nexthop object was changed by someone else
    "link_event",  # a link or address changed: re-dumped and fixed what differed
    "periodic",  # the periodic full reconcile found something to fix
    "resync",  # the event socket overflowed (ENOBUFS): full re-dump
]
REPAIR_KINDS: tuple[RepairKind, ...] = (
    "route_replaced", "route_deleted", "nexthop_deleted", "nexthop_replaced", "link_event", "periodic",
    "resync",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Repair:
    """One repair pass. `latency` runs from reading the triggering event to the kernel's ack."""

    kind: RepairKind
    count: int  # routes + nexthop objects rewritten
    latency: float | None
    detail: str = ""


@dataclass
class RoutesStats:
    nexthop_objects: bool = False  # True: routes point at nexthop objects; False: per-route gateways
    repairs: Counter[str] = field(default_factory=Counter)  # kind -> objects rewritten by repairs
    reconciles: Counter[str] = field(default_factory=Counter)  # kind -> full re-dumps run
    routes_installed: int = 0  # gauge: routes we own that are right
    route_conflicts: int = 0  # gauge: our prefixes whose slot a foreign route held first
    route_writes: int = 0  # routes created or replaced (all causes)
    route_deletes: int = 0
    nexthop_writes: int = 0
    errors: int = 0
    last_error: str | None = None
    event_overflows: int = 0
    last_apply_seconds: float = 0.0
    repair_latencies: deque[float] = field(default_factory=lambda: deque(maxlen=1024))
