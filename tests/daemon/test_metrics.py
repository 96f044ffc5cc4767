"""Metrics on an injected registry, served over the daemon's own HTTP server and parsed back."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from watcher._aio import wait_for
from watcher._types import NextHop, Replica
from watcher.cfapi import ClientStats
from watcher.daemon._http import StatusServer
from watcher.daemon.metrics import Metrics
from watcher.source import SourceStats


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text)[(name, tuple(sorted(labels.items())))]


async def scrape(server_addr: tuple[str, int], path: str = "/metrics") -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(f"http://{server_addr[0]}:{server_addr[1]}{path}", timeout=5)


async def test_exposition_parses_and_tracks_updates() -> None:
    registry = CollectorRegistry()
    m = Metrics(registry, node="n1", version="9.9.9")
    source = SourceStats(client=ClientStats())
    source.errors["unreachable"] += 3
    source.client.requests["ok"] += 7
    m.external.source = lambda: source
    m.external.routes = lambda: {"managed_routes": 2, "drift_repairs": {"route_deleted": 4}}
    vip: dict[str, dict[str, Any]] = {
        "ipv4": {
            "state": "master", "priority": 250, "adverts_sent": 11, "adverts_received": 5,
            "transitions": {"init->backup:startup": 1, "backup->master:master_down": 2},
            "bad_packets": {"ttl": 1},
        }
    }  # fmt: skip
    m.external.vip = lambda: vip
    status: dict[str, Any] = {"target": None}
    server = StatusServer(registry, lambda: status)
    addr = await server.start("127.0.0.1", 0)
    try:
        text = (await scrape(addr)).text
        assert value(text, "mesh_watcher_build_info", version="9.9.9") == 1
        assert value(text, "mesh_watcher_control_plane_up") == 0
        assert value(text, "mesh_watcher_source_errors_total", kind="unreachable") == 3
        assert value(text, "mesh_watcher_api_requests_total", outcome="ok") == 7
        assert value(text, "mesh_watcher_managed_routes") == 2
        assert value(text, "mesh_watcher_drift_repairs_total", kind="route_deleted") == 4
        assert value(text, "mesh_watcher_vrrp_state", family="ipv4", state="master") == 1
        assert value(text, "mesh_watcher_vrrp_state", family="ipv4", state="backup") == 0
        assert (
            value(
                text, "mesh_watcher_vrrp_transitions_total", family="ipv4", to="master", reason="master_down"
            )
            == 2
        )
        assert value(text, "mesh_watcher_vrrp_adverts_sent_total", family="ipv4") == 11
        assert value(text, "mesh_watcher_vrrp_bad_packets_total", family="ipv4", reason="ttl") == 1

        hop = NextHop("r2", ipaddress.IPv4Address("192.0.2.12"), None)
        m.set_active(NextHop("r1", ipaddress.IPv4Address("192.0.2.11"), None))
        m.set_active(hop)
        m.set_replicas((Replica("r1", "offline"), Replica("r2", "active"), Replica("r3", "passive")))
        m.failovers.labels("replica_changed").inc()
        m.convergence.observe(0.0015)
        m.hook_runs.labels("timeout").inc()
        m.set_stale(True)
        m.set_health({"r2": True, "r3": False})
        m.set_alerts(frozenset({"no_redundancy"}), ("no_redundancy", "two_active"))
        m._clock = lambda: 100.0
        m.observed(True, at_monotonic=90.0)
        text = (await scrape(addr)).text
        s = samples(text)
        info = [k for k in s if k[0] == "mesh_watcher_active_replica_info"]
        assert info == [
            (
                "mesh_watcher_active_replica_info",
                (("nexthop_ipv4", "192.0.2.12"), ("nexthop_ipv6", ""), ("node", "n1"), ("replica", "r2")),
            )
        ]
        assert value(text, "mesh_watcher_replicas", ha_status="active") == 1
        assert value(text, "mesh_watcher_replicas", ha_status="offline") == 1
        assert value(text, "mesh_watcher_failovers_total", reason="replica_changed") == 1
        assert value(text, "mesh_watcher_convergence_seconds_bucket", le="0.001") == 0
        assert value(text, "mesh_watcher_convergence_seconds_bucket", le="0.0025") == 1
        assert value(text, "mesh_watcher_hook_runs_total", result="timeout") == 1
        assert value(text, "mesh_watcher_decision_stale") == 1
        assert value(text, "mesh_watcher_decision_age_seconds") == 10.0
        assert value(text, "mesh_watcher_control_plane_up") == 1
        assert value(text, "mesh_watcher_nexthop_healthy", replica="r3") == 0
        assert value(text, "mesh_watcher_decision_alert", kind="no_redundancy") == 1
        assert value(text, "mesh_watcher_decision_alert", kind="two_active") == 0

        resp = await scrape(addr, "/status")
        assert resp.status_code == 200 and resp.json() == status
        assert (await scrape(addr, "/nope")).status_code == 404
    finally:
        await server.close()


async def test_registries_are_independent() -> None:
    a, b = CollectorRegistry(), CollectorRegistry()
    Metrics(a, node="a", version="1").failovers.labels("initial").inc()
    Metrics(b, node="b", version="1")  # no "duplicated timeseries": nothing global
    assert a.get_sample_value("mesh_watcher_failovers_total", {"reason": "initial"}) == 1
    assert b.get_sample_value("mesh_watcher_failovers_total", {"reason": "initial"}) is None


async def test_server_survives_garbage_and_broken_status() -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("boom")

    server = StatusServer(CollectorRegistry(), broken)
    host, port = await server.start("127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"\x00garbage\r\n\r\n")
        await writer.drain()
        head = await wait_for(reader.read(), 5)
        writer.close()
        assert head.startswith(b"HTTP/1.1 400")
        assert (await scrape((host, port), "/status")).status_code == 500
        assert (await scrape((host, port))).status_code == 200
    finally:
        await server.close()
