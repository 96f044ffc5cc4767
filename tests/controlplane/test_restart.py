"""Control-plane restarts (SIGTERM and kill -9): state survives and no failover happens."""

from __future__ import annotations

import signal
import time

import pytest
from cp_helpers import DETECTION, Agents, ControlPlane, SseReader, wait_for


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill9"])
def test_restart_keeps_state_and_roles(cp: ControlPlane, agents: Agents, sig: int) -> None:
    nid, token = cp.create_node("restart")
    a = agents.start(cp.base, token, "rs-a")
    ra = a.wait_registered()
    wait_for(lambda: cp.active(nid) == ra, what="a active")
    b = agents.start(cp.base, token, "rs-b")
    rb = b.wait_registered()
    wait_for(lambda: cp.statuses(nid) == {ra: "active", rb: "passive"}, what="b passive")
    url = f"{cp.base}/accounts/{cp.account}/warp_connector/{nid}/events"
    sse = SseReader(url, cp.admin, last_event_id=0)
    read = cp.ok("POST", "/accounts/{a}/tokens", json={"name": "r", "scope": "read"})["value"]
    replicas_before = {r["id"]: (r["mesh_ipv4"], r["mesh_ipv6"], r["device_name"]) for r in cp.replicas(nid)}
    node_before = cp.node(nid)
    # acknowledged just before the crash: must survive kill -9
    route = cp.ok("POST", "/accounts/{a}/teamnet/routes", json={"network": "10.9.0.0/16", "tunnel_id": nid})
    wait_for(lambda: sse.events and sse.events[-1]["id"] >= 1, what="events read")
    time.sleep(0.3)
    last_gen = sse.events[-1]["id"]

    stopped_at = time.monotonic()
    code = cp.stop(sig)
    if sig == signal.SIGTERM:
        assert code == 0
        assert time.monotonic() - stopped_at < 5  # the open event stream does not hold the shutdown
    sse.close()
    time.sleep(DETECTION * 2)  # down for longer than the detection timeout: still no failover after
    cp.start()
    # roles kept through the grace period and after heartbeats resumed
    time.sleep(DETECTION * 2.5)
    assert cp.statuses(nid) == {ra: "active", rb: "passive"}
    node = cp.node(nid)
    assert node["status"] == "healthy" and node["active_replica_id"] == ra
    assert (
        node["created_at"] == node_before["created_at"]
        and node["conns_active_at"] == node_before["conns_active_at"]
    )
    after = SseReader(url, cp.admin, last_event_id=last_gen)
    try:
        time.sleep(0.5)
        kinds = [e["event"] for e in after.events]
        assert "promoted" not in kinds and "disconnected" not in kinds, after.events
    finally:
        after.close()
    assert {
        r["id"]: (r["mesh_ipv4"], r["mesh_ipv6"], r["device_name"]) for r in cp.replicas(nid)
    } == replicas_before
    assert cp.ok("GET", f"/accounts/{{a}}/teamnet/routes/{route['id']}")["network"] == "10.9.0.0/16"
    assert cp.ok("GET", "/accounts/{a}/warp_connector", token=read)  # hashed tokens still valid
    assert cp.ok("GET", f"/accounts/{{a}}/warp_connector/{nid}/token") == token
    # the engine still works after the restart: kill the active one, the other takes over
    agents.procs[0].stop(signal.SIGKILL)
    wait_for(lambda: cp.active(nid) == rb, timeout=10, what="failover after restart")


def test_active_dead_during_downtime_fails_over_after_grace(cp: ControlPlane, agents: Agents) -> None:
    nid, token = cp.create_node("grace")
    a = agents.start(cp.base, token, "gr-a")
    ra = a.wait_registered()
    wait_for(lambda: cp.active(nid) == ra, what="a active")
    b = agents.start(cp.base, token, "gr-b")
    rb = b.wait_registered()
    wait_for(lambda: cp.statuses(nid) == {ra: "active", rb: "passive"}, what="b passive")
    cp.stop(signal.SIGTERM)
    a.stop(signal.SIGKILL)
    cp.start()
    started = time.monotonic()
    # a is presumed alive for one detection timeout from the start, then replaced by b
    assert cp.statuses(nid)[ra] == "active" or time.monotonic() - started > DETECTION
    wait_for(lambda: cp.active(nid) == rb, timeout=10, interval=0.02, what="b promoted after grace")
    # (measured from when we saw "listening", a little after the engine started its clock)
    assert time.monotonic() - started >= DETECTION * 0.5
