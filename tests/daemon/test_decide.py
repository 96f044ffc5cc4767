"""decide(): the policy table. Pure, so every rule is checked with a controlled clock."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import pytest

from watcher._types import NextHop, Observation, Replica
from watcher.daemon.config import WatcherConfig, parse_config
from watcher.daemon.decide import DecideState, Decision, decide
from watcher.daemon.nexthop import resolve

LAN = (ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("2001:db8:1::/64"))
V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address


def cfg(extra: str = "", mode: str = "router", routes: str = "{}") -> WatcherConfig:
    vip = "vip: {interface: eth0, vrid: 7, addresses: [192.0.2.254/24]}"
    section = f"routes: {routes}" if mode == "router" else vip
    return parse_config(
        f"mode: {mode}\nnode: {{node_id: n1}}\n"
        "control_plane: {api: 'http://127.0.0.1:9/client/v4', token: t}\n"
        f"{section}\n{extra}"
    )


def rep(rid: str, status: str = "passive", i: int | None = None, **kw: Any) -> Replica:
    if i is not None and "lan_addresses" not in kw:
        kw["lan_addresses"] = (f"192.0.2.{10 + i}/24", f"2001:db8:1::{10 + i:x}/64", "fe80::1/64")
    return Replica(rid, status, **kw)  # type: ignore[arg-type]


def obs(t: float, *replicas: Replica, error: str | None = None, unreachable: bool = False) -> Observation:
    return Observation(t, "poll", None if unreachable else tuple(replicas), error=error)


def hop(rid: str, i: int) -> NextHop:
    return NextHop(rid, V4(f"192.0.2.{10 + i}"), V6(f"2001:db8:1::{10 + i:x}"))


def run(
    steps: list[Observation], config: WatcherConfig | None = None, health: dict[str, bool] | None = None
) -> list[Decision]:
    config = config or cfg()
    state = DecideState()
    out = []
    for o in steps:
        d, state = decide(o, state, config, health or {}, connected=LAN)
        out.append(d)
    return out


@dataclass
class Case:
    name: str
    steps: list[Observation]
    nexthop: NextHop | None
    changed: bool
    alerts: set[str] = field(default_factory=set)
    stale: bool = False
    reason_has: str = ""
    config: str = ""


A1, B2, C3 = hop("a", 1), hop("b", 2), hop("c", 3)
CASES = [
    Case("first active", [obs(0, rep("a", "active", 1), rep("b", i=2))], A1, True, reason_has="a is active"),
    Case(
        "unchanged",
        [obs(0, rep("a", "active", 1), rep("b", i=2)), obs(1, rep("a", "active", 1), rep("b", i=2))],
        A1,
        False,
        reason_has="unchanged",
    ),
    Case(
        "failover to b (a offline: no hold-down)",
        [
            obs(0, rep("a", "active", 1), rep("b", i=2)),
            obs(0.1, rep("a", "offline", 1), rep("b", "active", 2)),
        ],
        B2,
        True,
        {"no_redundancy"},
        reason_has="was a",
    ),
    Case(
        "none active keeps last good",
        [
            obs(0, rep("a", "active", 1), rep("b", i=2)),
            obs(5, rep("a", "offline", 1), rep("b", "offline", 2)),
        ],
        A1,
        False,
        {"none_active"},
        reason_has="keeping a via 192.0.2.11",
    ),
    Case(
        "none active, nothing known",
        [obs(0, rep("a", i=1))],
        None,
        False,
        {"none_active"},
        reason_has="no next-hop known yet",
    ),
    Case("no replicas at all", [obs(0)], None, False, {"none_active"}, reason_has="no replicas registered"),
    Case(
        "unreachable keeps last good, stale",
        [obs(0, rep("a", "active", 1), rep("b", i=2)), obs(3, unreachable=True, error="timeout")],
        A1,
        False,
        {"control_plane_unreachable"},
        stale=True,
        reason_has="last success 3.0s ago",
    ),
    Case(
        "unreachable at start",
        [obs(0, unreachable=True, error="refused")],
        None,
        False,
        {"control_plane_unreachable"},
        stale=True,
        reason_has="never reached",
    ),
    Case(
        "two active, keeps current",
        [obs(0, rep("a", "active", 1), rep("b", i=2)), obs(5, rep("a", "active", 1), rep("b", "active", 2))],
        A1,
        False,
        {"two_active", "no_redundancy"},
    ),
    Case(
        "two active, none current: lowest id with a next-hop",
        [obs(0, rep("z", "active"), rep("c", "active", 3), rep("b", "active", 2))],
        B2,
        True,
        {"two_active", "no_redundancy"},
    ),
    Case(
        "unknown next-hop keeps last good",
        [obs(0, rep("a", "active", 1), rep("b", i=2)), obs(5, rep("a", "offline", 1), rep("b", "active"))],
        A1,
        False,
        {"unknown_nexthop", "no_redundancy"},
        reason_has="reported no LAN address",
    ),
    Case(
        "reported addresses outside connected subnets",
        [obs(0, rep("a", "active", lan_addresses=("10.9.9.9/24",)), rep("b", i=2))],
        None,
        False,
        {"unknown_nexthop"},
        reason_has="none in a connected subnet",
    ),
    Case(
        "hold-down defers a switch between live replicas",
        [
            obs(0, rep("a", "active", 1), rep("b", i=2)),
            obs(0.5, rep("a", "passive", 1), rep("b", "active", 2)),
        ],
        A1,
        False,
        reason_has="hold-down",
        config="decide: {hold_down: 2}",
    ),
    Case(
        "hold-down over: switch",
        [
            obs(0, rep("a", "active", 1), rep("b", i=2)),
            obs(2.5, rep("a", "passive", 1), rep("b", "active", 2)),
        ],
        B2,
        True,
        config="decide: {hold_down: 2}",
    ),
    Case(
        "hold-down never keeps a dead replica",
        [obs(0, rep("a", "active", 1), rep("b", i=2)), obs(0.5, rep("b", "active", 2))],
        B2,
        True,
        {"no_redundancy"},
        config="decide: {hold_down: 10}",
    ),
    Case(
        "static map by id beats reported",
        [obs(0, rep("a", "active", 1), rep("b", i=2))],
        NextHop("a", V4("192.0.2.99"), None),
        True,
        config="replicas: {static: [{match: {id: a}, ipv4: 192.0.2.99}]}",
    ),
    Case(
        "static map by device_name",
        [obs(0, rep("a", "active", device_name="gw-a"), rep("b", i=2))],
        NextHop("a", None, V6("2001:db8:1::99")),
        True,
        config="replicas: {static: [{match: {device_name: gw-a}, ipv6: '2001:db8:1::99'}]}",
    ),
    Case(
        "static map by origin_ip",
        [obs(0, rep("a", "active", origin_ips=("198.51.100.7",)), rep("b", i=2))],
        NextHop("a", V4("192.0.2.50"), None),
        True,
        config="replicas: {static: [{match: {origin_ip: 198.51.100.7}, ipv4: 192.0.2.50}]}",
    ),
    Case(
        "ambiguous static match is an unknown next-hop",
        [obs(0, rep("a", "active", device_name="gw-a"), rep("b", i=2))],
        None,
        False,
        {"unknown_nexthop"},
        reason_has="matches 2 static entries",
        config="replicas: {use_reported_lan_addresses: false, static: "
        "[{match: {id: a}, ipv4: 192.0.2.50}, {match: {device_name: gw-a}, ipv4: 192.0.2.51}]}",
    ),
    Case(
        "reported addresses ignored when turned off",
        [obs(0, rep("a", "active", 1), rep("b", i=2))],
        None,
        False,
        {"unknown_nexthop"},
        reason_has="use_reported_lan_addresses is off",
        config="replicas: {use_reported_lan_addresses: false}",
    ),
    Case(
        "address change of the same replica is applied at once",
        [
            obs(0, rep("a", "active", 1), rep("b", i=2)),
            obs(0.1, rep("a", "active", lan_addresses=("192.0.2.77/24",)), rep("b", i=2)),
        ],
        NextHop("a", V4("192.0.2.77"), None),
        True,
        reason_has="changed address",
        config="decide: {hold_down: 5}",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decide_table(case: Case) -> None:
    decisions = run(case.steps, cfg(case.config))
    last = decisions[-1]
    assert last.nexthop == case.nexthop, last.reason
    assert last.changed is case.changed, last.reason
    assert last.stale is case.stale
    assert set(last.alert_kinds()) == case.alerts, last.alerts
    assert case.reason_has in last.reason
    assert last.reason  # every decision explains itself
    assert last.target().nexthop == last.nexthop


def test_hold_down_sets_recheck_and_switches_later() -> None:
    config = cfg("decide: {hold_down: 2}")
    state = DecideState()
    d, state = decide(obs(10, rep("a", "active", 1), rep("b", i=2)), state, config, {}, connected=LAN)
    d, state = decide(
        obs(11, rep("a", "passive", 1), rep("b", "active", 2)), state, config, {}, connected=LAN
    )
    assert d.nexthop == A1 and d.recheck_at == 12
    d, state = decide(
        obs(12, rep("a", "passive", 1), rep("b", "active", 2)), state, config, {}, connected=LAN
    )
    assert d.nexthop == B2 and d.changed and d.recheck_at is None


def test_flapping_alert_after_threshold() -> None:
    config = cfg("decide: {hold_down: 0, flap_threshold: 3, flap_window: 60}")
    seq = [("a", 1), ("b", 2)] * 3
    steps = [
        obs(t, rep(name, "active", i), rep("b" if name == "a" else "a", i=3 - i))
        for t, (name, i) in enumerate(seq)
    ]
    decisions = run(steps, config)
    assert all(d.changed for d in decisions)
    assert ["flapping" in d.alert_kinds() for d in decisions] == [False, False, True, True, True, True]
    # Outside the window the count starts again.
    config = cfg("decide: {hold_down: 0, flap_threshold: 3, flap_window: 1.5}")
    assert not any("flapping" in d.alert_kinds() for d in run(steps, config))


def test_unhealthy_nexthop_alert_without_promotion() -> None:
    d = run([obs(0, rep("a", "active", 1), rep("b", i=2))], health={"a": False, "b": True})[-1]
    assert d.nexthop == A1 and "nexthop_unhealthy" in d.alert_kinds() and d.promote is None


def test_unhealthy_promotes_healthiest_passive_with_cooldown() -> None:
    config = cfg("health: {promote_on_unhealthy: true, promote_cooldown: 30}")
    health = {"a": False, "b": False, "c": True}
    state = DecideState()
    view = (rep("a", "active", 1), rep("b", i=2), rep("c", i=3), rep("d", "offline", 4))
    d, state = decide(obs(0, *view), state, config, health, connected=LAN)
    assert d.promote == "c" and "promotion of c" in d.reason
    d, state = decide(obs(10, *view), state, config, health, connected=LAN)
    assert d.promote is None  # cooldown
    d, state = decide(obs(31, *view), state, config, health, connected=LAN)
    assert d.promote == "c"
    # Unknown health (never probed) is second choice; known-bad and offline never.
    d, _ = decide(obs(0, *view), DecideState(), config, {"a": False, "b": False}, connected=LAN)
    assert d.promote == "c"
    d, _ = decide(obs(0, *view), DecideState(), config, {"a": False, "b": False, "c": False}, connected=LAN)
    assert d.promote is None and "no_promotion_candidate" in d.alert_kinds()


def test_vip_mode_needs_no_address() -> None:
    d = run([obs(0, rep("a", "active"), rep("b"))], cfg(mode="vip"))[-1]
    assert d.nexthop == NextHop("a") and d.changed and not d.alerts


def test_learned_prefixes_pass_through_and_survive_outage() -> None:
    nets = (ipaddress.ip_network("100.96.0.0/12"),)
    o1 = Observation(0, "poll", (rep("a", "active", 1), rep("b", i=2)), routes=nets)
    o2 = Observation(1, "poll", None, error="down")
    o3 = Observation(2, "poll", (rep("a", "active", 1), rep("b", i=2)))
    d = run([o1, o2, o3], cfg(routes="{learn: {teamnet_routes: true}}"))
    assert [x.prefixes for x in d] == [nets, nets, nets]
    assert d[1].target().stale and not d[2].stale
    # Learning off (e.g. turned off by a reload): learned prefixes are dropped, so withdrawn.
    assert [x.prefixes for x in run([o1, o3])] == [(), ()]


def test_resolution_prefers_first_ipv4_and_ipv6_and_skips_link_local() -> None:
    r = rep("a", lan_addresses=("fe80::5/64", "10.1.1.1/8", "192.0.2.20", "192.0.2.21/24", "2001:db8:1::20"))
    res = resolve(r, cfg().replicas, LAN)
    assert res.nexthop == NextHop("a", V4("192.0.2.20"), V6("2001:db8:1::20")) and res.source == "reported"


def test_decide_is_deterministic_and_does_not_mutate_state() -> None:
    config = cfg()
    state = DecideState()
    o = obs(0, rep("a", "active", 1), rep("b", i=2))
    d1, s1 = decide(o, state, config, {}, connected=LAN)
    d2, s2 = decide(o, state, config, {}, connected=LAN)
    assert d1 == d2 and s1 == s2 and state == DecideState()
