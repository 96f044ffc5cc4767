"""The HA rules as pure functions: no server, no clock."""

from __future__ import annotations

from watcher.controlplane import Live, decide, expired, grace, ha_status, node_status, pick_active

T = 3.0


def test_first_connected_replica_becomes_active() -> None:
    d = decide(
        ha=True, active=None, replicas={"a": Live(True, 10.0)}, ever_connected=False, now=10.0, timeout=T
    )
    assert d.active == "a" and d.offline == () and d.status == "degraded"


def test_silent_active_is_replaced_by_freshest_passive() -> None:
    replicas = {"a": Live(True, 0.0), "b": Live(True, 9.0), "c": Live(True, 9.5)}
    d = decide(ha=True, active="a", replicas=replicas, ever_connected=True, now=10.0, timeout=T)
    assert d.offline == ("a",)
    assert d.active == "c"
    assert d.status == "healthy"


def test_no_failover_before_the_timeout() -> None:
    replicas = {"a": Live(True, 7.1), "b": Live(True, 9.9)}
    d = decide(ha=True, active="a", replicas=replicas, ever_connected=True, now=10.0, timeout=T)
    assert d.offline == () and d.active == "a"


def test_non_preemptive_recovered_replica_stays_passive() -> None:
    # "a" came back with the freshest heartbeat; "b" is active and healthy: nothing changes.
    replicas = {"a": Live(True, 10.0), "b": Live(True, 9.0)}
    assert pick_active("b", replicas) == "b"


def test_tie_on_freshness_is_deterministic() -> None:
    replicas = {"z": Live(True, 5.0), "m": Live(True, 5.0), "x": Live(False, 9.0)}
    assert pick_active(None, replicas) == "m"


def test_no_connected_replica_means_no_active_and_down() -> None:
    replicas = {"a": Live(True, 0.0)}
    d = decide(ha=True, active="a", replicas=replicas, ever_connected=True, now=10.0, timeout=T)
    assert d.active is None and d.status == "down" and d.offline == ("a",)


def test_status_values() -> None:
    assert node_status(True, False, 0) == "inactive"
    assert node_status(True, True, 1) == "degraded"
    assert node_status(True, True, 2) == "healthy"
    assert node_status(True, True, 0) == "down"
    assert node_status(False, True, 1) == "healthy"
    assert node_status(False, False, 0) == "inactive"


def test_expired_only_counts_connected() -> None:
    replicas = {"a": Live(False, 0.0), "b": Live(True, 0.0), "c": Live(True, 9.0)}
    assert expired(replicas, 10.0, T) == ("b",)


def test_ha_status_derivation() -> None:
    assert ha_status("a", "a", Live(True, 0)) == "active"
    assert ha_status("b", "a", Live(True, 0)) == "passive"
    assert ha_status("a", "a", Live(False, 0)) == "offline"
    assert ha_status("a", "a", None) == "offline"


def test_restart_grace_keeps_roles() -> None:
    # After a restart at t=100 no heartbeat has arrived yet; within the grace period nobody fails over.
    live = grace(["a", "b"], 100.0)
    d = decide(ha=True, active="a", replicas=live, ever_connected=True, now=100.0 + T * 0.99, timeout=T)
    assert d.offline == () and d.active == "a"
    # Only "b" resumed heartbeats: once the grace ends, "a" is treated as dead.
    live["b"].last_seen = 102.0
    d = decide(ha=True, active="a", replicas=live, ever_connected=True, now=100.0 + T + 0.01, timeout=T)
    assert d.offline == ("a",) and d.active == "b"
