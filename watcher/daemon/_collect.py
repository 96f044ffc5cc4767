"""Scrape-time metrics from counters other modules keep (source, routes actuator, VRRP).

Those modules count in plain attributes and never import prometheus; this collector reads the
numbers when /metrics is scraped, so there is one source of truth and nothing to keep in sync.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)
P = "mesh_watcher_"
VRRP_STATES = ("init", "backup", "master")


class ExternalStats(Collector):
    def __init__(self) -> None:
        self.source: Callable[[], Any] | None = None  # -> watcher.source SourceStats
        self.routes: Callable[[], Mapping[str, Any]] | None = None  # -> {"managed_routes", "drift_repairs"}
        self.vip: Callable[[], Mapping[str, Mapping[str, Any]]] | None = None  # -> VipActuator.stats

    def describe(self) -> list[Metric]:
        # An empty description keeps the registry from calling collect() at registration time.
        return []

    def collect(self) -> Iterator[Metric]:
        for name, fn in (("source", self._source), ("routes", self._routes), ("vip", self._vip)):
            try:
                yield from fn()
            except Exception:  # a broken provider must not take /metrics down with it
                log.exception("metrics: reading %s stats failed", name)

    def _source(self) -> Iterator[Metric]:
        errors = CounterMetricFamily(
            P + "source_errors", "Failed control-plane reads, by kind.", labels=["kind"]
        )
        if self.source is not None:
            stats = self.source()
            for kind, n in sorted(stats.errors.items()):
                errors.add_metric([kind], n)
            requests = CounterMetricFamily(
                P + "api_requests", "Control-plane API requests, by outcome.", labels=["outcome"]
            )
            for outcome, n in sorted(stats.client.requests.items()):
                requests.add_metric([outcome], n)
            observations = CounterMetricFamily(
                P + "observations", "Reads of the node's replicas, by trigger.", labels=["trigger"]
            )
            for trigger, n in sorted(stats.observations.items()):
                observations.add_metric([trigger], n)
            events = CounterMetricFamily(P + "source_events", "Events received on the event stream.")
            events.add_metric([], stats.events)
            yield from (requests, observations, events)
        yield errors

    def _routes(self) -> Iterator[Metric]:
        if self.routes is None:
            return
        stats = self.routes()
        managed = GaugeMetricFamily(P + "managed_routes", "Routes the watcher owns in the kernel.")
        managed.add_metric([], float(stats.get("managed_routes", 0)))
        drift = CounterMetricFamily(
            P + "drift_repairs", "Kernel drift found and repaired, by kind.", labels=["kind"]
        )
        for kind, n in sorted(dict(stats.get("drift_repairs", {})).items()):
            drift.add_metric([str(kind)], n)
        yield from (managed, drift)

    def _vip(self) -> Iterator[Metric]:
        if self.vip is None:
            return
        state = GaugeMetricFamily(
            P + "vrrp_state", "1 for the current VRRP state.", labels=["family", "state"]
        )
        trans = CounterMetricFamily(
            P + "vrrp_transitions", "VRRP state changes, by reason.", labels=["family", "to", "reason"]
        )
        sent = CounterMetricFamily(P + "vrrp_adverts_sent", "VRRP adverts sent.", labels=["family"])
        rcvd = CounterMetricFamily(
            P + "vrrp_adverts_received", "Valid VRRP adverts received.", labels=["family"]
        )
        bad = CounterMetricFamily(
            P + "vrrp_bad_packets", "VRRP packets dropped, by reason.", labels=["family", "reason"]
        )
        prio = GaugeMetricFamily(P + "vrrp_priority", "Our current VRRP priority.", labels=["family"])
        for family, snap in sorted(self.vip().items()):
            for name in VRRP_STATES:
                state.add_metric([family, name], 1.0 if snap.get("state") == name else 0.0)
            merged: dict[tuple[str, str], int] = {}
            for key, n in dict(snap.get("transitions", {})).items():
                # keys look like "backup->master:reason"
                edge, _, reason = str(key).partition(":")
                to = edge.rpartition("->")[2] or edge
                merged[(to, reason or "unknown")] = merged.get((to, reason or "unknown"), 0) + int(n)
            for (to, reason), n in sorted(merged.items()):
                trans.add_metric([family, to, reason], n)
            sent.add_metric([family], snap.get("adverts_sent", 0))
            rcvd.add_metric([family], snap.get("adverts_received", 0))
            for reason, n in sorted(dict(snap.get("bad_packets", {})).items()):
                bad.add_metric([family, str(reason)], n)
            prio.add_metric([family], float(snap.get("priority", 0)))
        yield from (state, trans, sent, rcvd, bad, prio)
