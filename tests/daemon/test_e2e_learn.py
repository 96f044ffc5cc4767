"""Learned routes end to end, and what a watcher restart starts from. Real processes in the mesh lab.

With `routes.learn.teamnet_routes` the teamnet routes of OTHER nodes (other sites, reached through
the mesh) become owned routes on the router, on the same nexthop objects as the configured Mesh
range; this node's own routes (the subnet behind it) never do. The watcher keeps no state of its
own: after a restart it rebuilds everything from the control plane and the kernel.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import pytest

from watcher.daemon.config import parse_config
from watcher.lab import replica_lan4

from ._stack import API, Stack, wait

pytestmark = [pytest.mark.netns, pytest.mark.timeout(120)]

MESH4, MESH6 = "100.96.0.0/12", "2001:db8:96::/48"
OTHER4, OTHER6 = "100.100.0.0/16", "2001:db8:aaaa::/48"  # another site's subnets
OTHER_SITE6 = "2001:db8:aaaa::1"  # a host there, reached only through the mesh
OWN4, OWN6 = "198.51.100.0/24", "2001:db8:c::/64"  # this node's own subnet (the client LAN)


def _start(s: Stack) -> tuple[str, tuple[int, str]]:
    """Node, a second node "branch" (returned), this node's own routes, the other site behind
    the mesh, agents and the watcher with learning on, in sync. Returns (branch id, active)."""
    s.start_cp()
    s.setup_node()
    branch = s.add_node("branch")
    s.add_route(OWN4, s.node)
    s.add_route(OWN6, s.node)
    s.mesh.meshhost.ip("addr", "add", f"{OTHER_SITE6}/128", "dev", "lo")
    for host in s.mesh.replicas:
        host.ip("-6", "route", "add", OTHER6, "via", "2001:db8:f::100")
    s.start_agents(1, 2)
    s.write_config(learn_routes=True)
    s.start_watcher()
    active = wait(s.active, 20, "an active replica")
    wait(lambda: s.target() == active[1], 30, "the watcher targets the active replica")
    return branch, active


def _owned_if(s: Stack, pred: Callable[[dict[str, str]], bool]) -> dict[str, str] | None:
    owned = s.owned_routes()
    return owned if pred(owned) else None


def _nhid(route: str) -> str:
    fields = route.split()
    assert fields[0] == "nhid", route  # owned routes point at the watcher's nexthop objects
    return fields[1]


def test_routes_of_other_nodes_are_learned_and_withdrawn(stack: Stack) -> None:
    s = stack
    branch, (active, _) = _start(s)
    static = s.owned_routes()
    assert set(static) == {MESH4, MESH6}, static  # the own node's routes are not learned
    assert not s.mesh.client.ping(OTHER_SITE6, timeout=1)

    learned = [s.add_route(OTHER4, branch), s.add_route(OTHER6, branch)]
    owned = wait(lambda: _owned_if(s, lambda o: {OTHER4, OTHER6} <= o.keys()), 15, "the learned routes")
    assert set(owned) == {MESH4, MESH6, OTHER4, OTHER6}, owned
    assert _nhid(owned[OTHER4]) == _nhid(owned[MESH4]) and _nhid(owned[OTHER6]) == _nhid(owned[MESH6])
    assert {k: owned[k] for k in static} == static  # the Mesh range untouched
    before = s.mesh.forwarded_packets(active)
    wait(lambda: s.mesh.client.ping(OTHER_SITE6, timeout=1), 10, "the other site reachable")
    assert s.mesh.forwarded_packets(active) > before
    st = s.status()
    assert st is not None and {OTHER4, OTHER6} <= set(st["applied"]["prefixes"]), st

    s.delete_route(learned[1])
    wait(lambda: s.owned_routes() == {**static, OTHER4: owned[OTHER4]}, 15, "the deleted route withdrawn")
    assert not s.mesh.client.ping(OTHER_SITE6, timeout=1)

    # Learning turned off by a reload: what was learned goes, the Mesh range stays.
    assert s.watcher is not None
    s.write_config()
    os.kill(s.watcher.pid, signal.SIGHUP)
    wait(lambda: s.owned_routes() == static, 15, "the learned routes withdrawn after the reload")


def test_restart_rebuilds_from_the_control_plane_and_keeps_no_state(stack: Stack) -> None:
    s = stack
    branch, (active, _) = _start(s)
    route_id = s.add_route(OTHER4, branch)
    wait(lambda: OTHER4 in s.owned_routes(), 15, "the learned route installed")
    files_before = {p.name for p in s.tmp.iterdir()}

    # While the watcher is down, the route goes away and another replica becomes active.
    s.kill_watcher()
    s.delete_route(route_id)
    other = 3 - active
    other_id = s.replica_id(other)
    s.failover(other_id)
    wait(lambda: s.active() == (other, other_id), 15, "the failover")

    s.start_watcher()
    wait(lambda: s.target() == other_id, 30, "the restarted watcher follows the new active replica")
    owned = wait(lambda: _owned_if(s, lambda o: set(o) == {MESH4, MESH6}), 15, "the stale route withdrawn")
    assert f"via {replica_lan4(other)} dev eth1" in owned[MESH4], owned
    s.flows_through(other)

    # Nothing written but its log; the token appears in no output.
    assert list(s.watcher_cwd.iterdir()) == []
    assert {p.name for p in s.tmp.iterdir()} - files_before == set()
    token = (s.tmp / "watcher.token").read_text().strip()
    st = s.status()
    assert st is not None
    for where, text in (
        ("log", (s.tmp / "watcher.log").read_text()),
        ("status", str(st)),
        ("metrics", s.metrics_text()),
    ):
        assert token not in text, f"the API token leaks into the watcher's {where}"
    assert os.stat(s.tmp / "watcher.yaml").st_size > 0


CONFIG = f"""mode: router
node: {{node_id: n}}
control_plane: {{api: "{API}", token: t, poll_interval: %s}}
routes: {{prefixes: ["{MESH4}"] %s}}
"""


def test_teamnet_learning_is_switched_on_by_the_routes_section() -> None:
    on = parse_config(CONFIG % (2, ", learn: {teamnet_routes: true}"))
    assert not on.control_plane.learn_routes and on.source_config().learn_routes
    off = parse_config(CONFIG % (2, ""))
    assert off.source_config() is off.control_plane and not off.source_config().learn_routes
    # Reading routes too must fit the rate budget: 0.6 s polls alone fit, plus routes every 1 s not.
    text = CONFIG.replace("token: t", "token: t, routes_interval: 1")
    parse_config(text % (0.6, ""))
    with pytest.raises(ValueError, match=r"w.yaml:4: routes: .*learn.teamnet_routes.*poll_interval 0.6"):
        parse_config(text % (0.6, ", learn: {teamnet_routes: true}"), "w.yaml")
    # Learning in the source alone would read routes that nothing installs.
    with pytest.raises(ValueError, match=r"learn_routes .* learn.teamnet_routes: false"):
        parse_config(CONFIG.replace("poll_interval: %s", "poll_interval: %s, learn_routes: true") % (2, ""))
