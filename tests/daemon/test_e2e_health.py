"""The health gate end to end, every part a real process in the mesh lab.

The active replica's LAN next-hop stops answering ARP requests and Neighbor Solicitations while
its agent keeps heartbeating, so the control plane still calls it active: only the watcher's
probes can tell. With `promote_on_unhealthy` the watcher asks the control plane to promote the
healthy passive replica and traffic moves there; without it, it only says so.
"""

from __future__ import annotations

import time

import pytest

from ._stack import Stack, wait

pytestmark = [pytest.mark.netns, pytest.mark.timeout(120)]

HEALTHY = "mesh_watcher_nexthop_healthy"
ALERT = "mesh_watcher_decision_alert"
PROMOTIONS = "mesh_watcher_promotion_requests_total"


def fast_health(promote: bool) -> str:
    return (
        "{probe: true, interval: 0.3, timeout: 0.25, failures: 2,"
        f" promote_on_unhealthy: {str(promote).lower()}}}"
    )


def _start(s: Stack, *, promote: bool) -> tuple[tuple[int, str], tuple[int, str]]:
    """Both replicas up, the watcher targeting the active one, both next-hops seen healthy.
    Returns (active, passive) as (index, replica id)."""
    s.start_cp()
    s.setup_node()
    s.start_agents(1, 2)
    s.write_config(health=fast_health(promote))
    s.start_watcher()
    active, active_id = wait(s.active, 20, "an active replica")
    passive = 3 - active
    passive_id = s.replica_id(passive)
    wait(lambda: s.target() == active_id, 30, "the watcher targets the active replica")
    wait(
        lambda: s.metric(HEALTHY, replica=active_id) == 1 and s.metric(HEALTHY, replica=passive_id) == 1,
        15,
        "both next-hops healthy",
    )
    return (active, active_id), (passive, passive_id)


def _unhealthy(s: Stack, replica_id: str) -> bool:
    return s.metric(HEALTHY, replica=replica_id) == 0


def test_unhealthy_active_nexthop_gets_a_healthy_replica_promoted(stack: Stack) -> None:
    s = stack
    (bad, bad_id), (good, good_id) = _start(s, promote=True)
    s.flows_through(bad)

    s.mute_resolution(bad)
    wait(lambda: _unhealthy(s, bad_id), 15, "the active next-hop reported unhealthy")
    # The watcher, not a heartbeat timeout, moves the node: the control plane promotes on request.
    wait(lambda: (a := s.active()) is not None and a[0] == good, 20, "the healthy replica promoted")
    events = s.events()
    assert ("promoted", "manual", good_id) in [(t, d.get("reason"), d.get("replica_id")) for t, d in events]
    assert not [d for t, d in events if t == "disconnected"], events
    assert {c["id"]: c["ha_status"] for c in s.connections()}[bad_id] == "passive"
    assert s.metric(PROMOTIONS, result="ok") == 1

    wait(lambda: s.target() == good_id, 15, "the watcher follows the promotion")
    s.flows_through(good)
    # The fault stays and is still reported, but it no longer concerns the target.
    assert _unhealthy(s, bad_id) and s.metric(HEALTHY, replica=good_id) == 1
    wait(lambda: s.metric(ALERT, kind="nexthop_unhealthy") == 0, 10, "the unhealthy alert cleared")
    st = s.status()
    assert st is not None
    assert {r["id"]: r["healthy"] for r in st["replicas"]} == {bad_id: False, good_id: True}
    assert "requesting promotion of replica " + good_id in (s.tmp / "watcher.log").read_text()


def test_unhealthy_active_nexthop_without_promotion_only_alerts(stack: Stack) -> None:
    s = stack
    (bad, bad_id), (_, good_id) = _start(s, promote=False)
    promoted_before = [d for t, d in s.events() if t == "promoted"]

    s.mute_resolution(bad)
    wait(
        lambda: _unhealthy(s, bad_id) and s.metric(ALERT, kind="nexthop_unhealthy") == 1,
        15,
        "the active next-hop reported unhealthy, with the alert",
    )
    st = s.status()
    assert st is not None and "next-hop unhealthy" in st["reason"], st
    assert "nexthop_unhealthy" in {a["kind"] for a in st["alerts"]}
    # Several more probe rounds: the watcher reports, it does not act.
    time.sleep(2.0)
    assert s.active() == (bad, bad_id)
    assert [d for t, d in s.events() if t == "promoted"] == promoted_before
    assert s.metric(PROMOTIONS) is None
    assert s.target() == bad_id and s.metric(HEALTHY, replica=good_id) == 1

    # The next-hop answers again: healthy, alert cleared, still no promotion.
    s.mute_resolution(bad, muted=False)
    wait(
        lambda: s.metric(HEALTHY, replica=bad_id) == 1 and s.metric(ALERT, kind="nexthop_unhealthy") == 0,
        15,
        "the next-hop healthy again",
    )
    assert s.active() == (bad, bad_id)
