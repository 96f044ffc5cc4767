"""Prometheus metrics of the watcher, on a registry the caller owns (tests make their own).

Names: prefix `mesh_watcher_`, base units, `_total` counters, `_info` for metadata.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .._types import NextHop, Replica
from ._collect import ExternalStats

P = "mesh_watcher_"
# From 1 ms: a nexthop-object swap converges in milliseconds, a poll-detected failover in seconds.
CONVERGENCE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
HA_STATUSES = ("active", "passive", "offline")


class Metrics:
    def __init__(self, registry: CollectorRegistry, *, node: str, version: str) -> None:
        self.registry = registry
        self.node = node
        r = registry
        self.build_info = Gauge(P + "build_info", "Version of this watcher.", ["version"], registry=r)
        self.build_info.labels(version).set(1)
        self.active_replica_info = Gauge(
            P + "active_replica_info",
            "The replica outbound traffic is sent to (1 for the current one).",
            ["node", "replica", "nexthop_ipv4", "nexthop_ipv6"],
            registry=r,
        )
        self.failovers = Counter(
            P + "failovers", "Next-hop changes applied, by reason.", ["reason"], registry=r
        )
        self.convergence = Histogram(
            P + "convergence_seconds",
            "From the trigger (event, webhook, poll tick) to the kernel acknowledging the change.",
            buckets=CONVERGENCE_BUCKETS,
            registry=r,
        )
        self.control_plane_up = Gauge(
            P + "control_plane_up", "1 if the last read of the control plane succeeded.", registry=r
        )
        self.control_plane_last_success = Gauge(
            P + "control_plane_last_success_timestamp_seconds",
            "Unix time of the last successful read of the control plane.",
            registry=r,
        )
        self.decision_stale = Gauge(
            P + "decision_stale",
            "1 while the applied decision rests on an old view (fail-static).",
            registry=r,
        )
        self.decision_age = Gauge(
            P + "decision_age_seconds",
            "Seconds since the control plane was last read successfully.",
            registry=r,
        )
        self._last_success_monotonic: float | None = None
        self.decision_age.set_function(self._age)
        self.decision_alert = Gauge(
            P + "decision_alert", "1 while decide reports this condition.", ["kind"], registry=r
        )
        self.hook_runs = Counter(P + "hook_runs", "Hook command runs, by result.", ["result"], registry=r)
        self.promotions = Counter(
            P + "promotion_requests",
            "Failover API calls made by the watcher, by result.",
            ["result"],
            registry=r,
        )
        self.apply_errors = Counter(
            P + "apply_errors", "Targets the actuator failed to apply (retried on the next read).", registry=r
        )
        self.replicas = Gauge(
            P + "replicas", "Replicas of the node, by HA status.", ["ha_status"], registry=r
        )
        for status in HA_STATUSES:
            self.replicas.labels(status).set(0)
        self.nexthop_healthy = Gauge(
            P + "nexthop_healthy", "1 if the replica's next-hop answers ARP/NDP.", ["replica"], registry=r
        )
        # Counters other modules keep (source, routes, VRRP) are read at scrape time.
        self.external = ExternalStats()
        registry.register(self.external)
        self._clock: Callable[[], float] = time.monotonic

    def _age(self) -> float:
        if self._last_success_monotonic is None:
            return 0.0
        return max(0.0, self._clock() - self._last_success_monotonic)

    # -- updates from the service -------------------------------------------------------
    def observed(self, ok: bool, *, at_monotonic: float) -> None:
        self.control_plane_up.set(1 if ok else 0)
        if ok:
            self._last_success_monotonic = at_monotonic
            self.control_plane_last_success.set(time.time() - (self._clock() - at_monotonic))

    def set_replicas(self, replicas: tuple[Replica, ...]) -> None:
        for status in HA_STATUSES:
            self.replicas.labels(status).set(sum(1 for r in replicas if r.ha_status == status))

    def set_active(self, nexthop: NextHop | None) -> None:
        self.active_replica_info.clear()
        if nexthop is not None:
            self.active_replica_info.labels(
                self.node, nexthop.replica_id, str(nexthop.ipv4 or ""), str(nexthop.ipv6 or "")
            ).set(1)

    def set_stale(self, stale: bool) -> None:
        self.decision_stale.set(1 if stale else 0)

    def set_alerts(self, active: frozenset[str], known: tuple[str, ...]) -> None:
        for kind in known:
            self.decision_alert.labels(kind).set(1 if kind in active else 0)

    def set_health(self, health: dict[str, bool]) -> None:
        self.nexthop_healthy.clear()
        for replica, ok in health.items():
            self.nexthop_healthy.labels(replica).set(1 if ok else 0)
