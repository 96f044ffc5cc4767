"""HA behaviour with real replica agents: failover, rejoin, manual promotion, status, refusals."""

from __future__ import annotations

import signal
import time

from cp_helpers import DETECTION, HEARTBEAT, Agents, ControlPlane, SseReader, wait_for


def _two_replicas(cp: ControlPlane, agents: Agents, name: str) -> tuple[str, str, str, str]:
    nid, token = cp.create_node(name)
    a = agents.start(cp.base, token, f"{name}-a")
    ra = a.wait_registered()
    wait_for(lambda: cp.statuses(nid).get(ra) == "active", what="first replica active")
    b = agents.start(cp.base, token, f"{name}-b")
    rb = b.wait_registered()
    wait_for(lambda: cp.statuses(nid) == {ra: "active", rb: "passive"}, what="second replica passive")
    return nid, token, ra, rb


def test_kill9_active_fails_over_and_rejoins_passive(cp: ControlPlane, agents: Agents) -> None:
    nid, token, ra, rb = _two_replicas(cp, agents, "k9")
    before = {r["id"]: (r["mesh_ipv4"], r["mesh_ipv6"]) for r in cp.replicas(nid)}
    assert before[ra] != before[rb]
    sse = SseReader(f"{cp.base}/accounts/{cp.account}/warp_connector/{nid}/events", cp.admin)
    try:
        time.sleep(0.3)
        killed_at = time.monotonic()
        agents.procs[0].stop(signal.SIGKILL)
        wait_for(lambda: cp.active(nid) == rb, timeout=10, interval=0.02, what="passive promoted")
        took = time.monotonic() - killed_at
        # detection timeout + one heartbeat, plus slack for a loaded 2-core machine
        assert took < DETECTION + HEARTBEAT + 1.5, took
        assert cp.statuses(nid) == {ra: "offline", rb: "active"}
        assert cp.node(nid)["status"] == "degraded"
        # the killed replica comes back: same identity, same Mesh IPs, and it stays passive
        again = agents.start(cp.base, token, "k9-a")
        assert again.wait_registered() == ra
        wait_for(lambda: cp.statuses(nid) == {ra: "passive", rb: "active"}, what="rejoined as passive")
        time.sleep(DETECTION)  # non-preemptive: nothing changes while both heartbeat
        assert cp.statuses(nid) == {ra: "passive", rb: "active"}
        after = {r["id"]: (r["mesh_ipv4"], r["mesh_ipv6"]) for r in cp.replicas(nid)}
        assert after == before
        assert cp.node(nid)["status"] == "healthy"
        wait_for(lambda: any(e["event"] == "promoted" for e in sse.events), what="promotion event")
        kinds = [(e["event"], e["data"]["replica_id"], e["data"]["reason"]) for e in sse.events]
        assert ("disconnected", ra, "timeout") in kinds
        assert kinds.index(("disconnected", ra, "timeout")) < kinds.index(("promoted", rb, "auto"))
    finally:
        sse.close()
    print(f"\nfailover after kill -9: {took:.3f}s (detection {DETECTION}s, heartbeat {HEARTBEAT}s)")


def test_manual_failover_and_graceful_stop(cp: ControlPlane, agents: Agents) -> None:
    nid, _, ra, rb = _two_replicas(cp, agents, "man")
    node = cp.ok("PUT", f"/accounts/{{a}}/warp_connector/{nid}/failover", json={"client_id": rb})
    assert node["id"] == nid and node["active_replica_id"] == rb
    assert cp.statuses(nid) == {ra: "passive", rb: "active"}  # immediate, no heartbeat needed
    # promoting the active one again changes nothing
    cp.ok("PUT", f"/accounts/{{a}}/warp_connector/{nid}/failover", json={"client_id": rb})
    assert cp.statuses(nid) == {ra: "passive", rb: "active"}
    # the agents learn it from their next heartbeat
    wait_for(lambda: "is now passive" in agents.procs[0].log.read_text(), what="agent a saw passive")
    # SIGTERM: graceful disconnect, the other replica takes over at once (no detection wait)
    stopped_at = time.monotonic()
    assert agents.procs[1].stop(signal.SIGTERM) == 0
    wait_for(lambda: cp.active(nid) == ra, timeout=5, interval=0.02, what="graceful failover")
    assert time.monotonic() - stopped_at < DETECTION + 2.0
    sse = SseReader(f"{cp.base}/accounts/{cp.account}/warp_connector/{nid}/events", cp.admin, last_event_id=0)
    try:
        want = [("promoted", rb, "manual"), ("disconnected", rb, "graceful"), ("promoted", ra, "auto")]

        def tail() -> list[tuple[str, str, str]]:
            seen = [(e["event"], e["data"]["replica_id"], e["data"]["reason"]) for e in sse.events]
            return [k for k in seen if k[0] in ("promoted", "disconnected")][-3:]

        wait_for(lambda: tail() == want, what="manual promotion, graceful disconnect, auto promotion")
    finally:
        sse.close()


def test_status_transitions(cp: ControlPlane, agents: Agents) -> None:
    nid, token = cp.create_node("status")
    sse = SseReader(f"{cp.base}/accounts/{cp.account}/warp_connector/{nid}/events", cp.admin)
    try:
        assert cp.node(nid)["status"] == "inactive"
        a = agents.start(cp.base, token, "st-a")
        a.wait_registered()
        wait_for(lambda: cp.node(nid)["status"] == "degraded", what="degraded")
        assert cp.node(nid)["conns_active_at"] is not None
        b = agents.start(cp.base, token, "st-b")
        b.wait_registered()
        wait_for(lambda: cp.node(nid)["status"] == "healthy", what="healthy")
        b.stop(signal.SIGTERM)
        wait_for(lambda: cp.node(nid)["status"] == "degraded", what="degraded again")
        a.stop(signal.SIGKILL)
        wait_for(lambda: cp.node(nid)["status"] == "down", what="down")
        node = cp.node(nid)
        assert node["conns_active_at"] is None and node["conns_inactive_at"] is not None
        wait_for(
            lambda: (
                [e["data"]["status"] for e in sse.events if e["event"] == "status"]
                == ["degraded", "healthy", "degraded", "down"]
            ),
            what="status events",
        )
    finally:
        sse.close()


def test_agent_refusals_exit_nonzero(cp: ControlPlane, agents: Agents) -> None:
    _, token = cp.create_node("refuse-wg")
    wg = agents.start(cp.base, token, "wg", extra=["--transport", "wireguard"])
    assert wg.proc.wait(20) != 0
    assert "MASQUE" in wg.log.read_text()
    bad = agents.start(cp.base, "garbage", "badtoken")
    assert bad.proc.wait(20) != 0
    assert "refused" in bad.log.read_text()


def test_non_ha_node_takes_one_wireguard_replica(cp: ControlPlane, agents: Agents) -> None:
    nid, token = cp.create_node("solo", ha=False)
    one = agents.start(cp.base, token, "solo-1", extra=["--transport", "wireguard"])
    rid = one.wait_registered()
    wait_for(lambda: cp.statuses(nid) == {rid: "active"}, what="solo active")
    assert cp.replicas(nid)[0]["transport"] == "wireguard"
    two = agents.start(cp.base, token, "solo-2", extra=["--transport", "wireguard"])
    assert two.proc.wait(20) != 0
    assert "non-HA" in two.log.read_text() or "not an HA node" in two.log.read_text()
    assert cp.node(nid)["status"] == "healthy"
