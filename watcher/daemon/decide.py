"""The policy: from what the control plane says to where outbound traffic must go. Pure, no I/O.

    decision, state = decide(observation, state, config, health, connected=...)

Rules, in order:
- control plane unreachable -> fail static: keep the last good next-hop, mark the decision stale;
- exactly one active replica -> its next-hop (see `nexthop.resolve`);
- two or more active -> alert; keep the current one if it is among them, else the lowest id that
  has a next-hop;
- none active, or an active replica without a known next-hop (router mode) -> alert, keep the last
  good next-hop (a route to a dead replica costs nothing more than no route);
- hold-down: a switch to another replica within `decide.hold_down` seconds of the previous switch is
  deferred (`recheck_at` says when to decide again) — unless the current replica is offline or gone,
  since holding traffic on a dead replica would only lengthen the outage;
- flapping: `flap_threshold` switches within `flap_window` seconds raise an alert;
- the targeted next-hop unhealthy (ARP/NDP) -> alert, and with `health.promote_on_unhealthy` a
  request to promote the healthiest passive replica (at most once per `promote_cooldown`).
Time is `observation.received_at` (monotonic seconds), so tests control the clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, get_args

from .._types import IPNetwork, NextHop, Observation, Replica, Target
from .config import WatcherConfig
from .nexthop import Resolution, describe, resolve

AlertKind = Literal[
    "control_plane_unreachable",
    "none_active",
    "two_active",
    "unknown_nexthop",
    "no_redundancy",
    "flapping",
    "nexthop_unhealthy",
    "no_promotion_candidate",
]
ALERT_KINDS: tuple[str, ...] = get_args(AlertKind)


@dataclass(frozen=True, slots=True)
class Alert:
    kind: AlertKind
    message: str


@dataclass(frozen=True, slots=True)
class DecideState:
    """What decide remembers between observations. Start with `DecideState()`."""

    nexthop: NextHop | None = None
    prefixes: tuple[IPNetwork, ...] = ()
    replicas: tuple[Replica, ...] | None = None  # last successful view
    last_success_at: float | None = None
    last_change_at: float | None = None
    changes: tuple[float, ...] = ()  # switch times within the flap window
    last_promotion_at: float | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    nexthop: NextHop | None
    reason: str
    stale: bool = False
    changed: bool = False
    alerts: tuple[Alert, ...] = ()
    previous: NextHop | None = None
    active: tuple[str, ...] = ()  # replica ids the control plane reports active
    prefixes: tuple[IPNetwork, ...] = ()
    promote: str | None = None  # replica id to promote through the failover API
    recheck_at: float | None = None  # decide again at this time (hold-down expiry)
    resolutions: Mapping[str, Resolution] = field(default_factory=dict)

    def target(self) -> Target:
        return Target(nexthop=self.nexthop, reason=self.reason, stale=self.stale, prefixes=self.prefixes)

    def alert_kinds(self) -> frozenset[str]:
        return frozenset(a.kind for a in self.alerts)


def decide(
    observation: Observation,
    state: DecideState,
    config: WatcherConfig,
    health: Mapping[str, bool],
    *,
    connected: Sequence[IPNetwork] = (),
) -> tuple[Decision, DecideState]:
    """`health` maps replica id -> next-hop reachable (absent: not probed / unknown)."""
    now = observation.received_at
    if observation.replicas is None:
        return _unreachable(observation, state)

    replicas = observation.replicas
    learning = config.routes is not None and config.routes.learn.teamnet_routes
    # Learned prefixes live only while learning is on: a reload that turns it off withdraws them.
    prefixes = (observation.routes if observation.routes is not None else state.prefixes) if learning else ()
    state = replace(state, replicas=replicas, last_success_at=now, prefixes=prefixes)
    resolutions = {r.id: resolve(r, config.replicas, connected) for r in replicas}
    active = tuple(r.id for r in replicas if r.ha_status == "active")
    alerts: list[Alert] = []

    def make(
        nexthop: NextHop | None, reason: str, *, changed: bool = False, recheck: float | None = None
    ) -> Decision:
        return Decision(
            nexthop,
            reason,
            changed=changed,
            alerts=tuple(alerts),
            previous=previous,
            active=active,
            prefixes=prefixes,
            recheck_at=recheck,
            resolutions=resolutions,
        )

    previous = state.nexthop

    chosen = _choose_active(active, state, resolutions, alerts)
    wanted: NextHop | None = None
    problem: str
    if chosen is None:
        problem = f"no replica is active ({_summary(replicas)})"
        alerts.append(
            Alert("none_active", f"the control plane reports no active replica ({_summary(replicas)})")
        )
    else:
        res = resolutions[chosen]
        wanted = res.nexthop
        problem = res.problem or ""
        if wanted is None and config.mode == "vip":
            wanted = NextHop(chosen)  # VIP mode needs only who is active, not where
        elif wanted is None:
            alerts.append(Alert("unknown_nexthop", problem))

    if active and not any(r.ha_status == "passive" for r in replicas):
        alerts.append(Alert("no_redundancy", f"no passive replica is online ({_summary(replicas)})"))

    if wanted is None:
        keep = f"keeping {describe(state.nexthop)}" if state.nexthop else "no next-hop known yet"
        decision = make(state.nexthop, f"{problem}; {keep}")
        return _health(decision, state=state, config=config, health=health, replicas=replicas, now=now)

    if wanted == state.nexthop:
        reason = f"replica {wanted.replica_id} is active; next-hop unchanged ({describe(wanted)})"
        decision = make(wanted, reason)
        return _health(decision, state=state, config=config, health=health, replicas=replicas, now=now)

    held = _hold_down(wanted, state, config, replicas, now)
    if held is not None:
        reason = (
            f"hold-down: replica {wanted.replica_id} is active {now - (state.last_change_at or now):.3f}s "
            f"after the last switch; keeping {describe(state.nexthop)} until the hold-down "
            f"({config.decide.hold_down}s) ends"
        )
        decision = make(state.nexthop, reason, recheck=held)
        return _health(decision, state=state, config=config, health=health, replicas=replicas, now=now)

    changes = (*(t for t in state.changes if now - t < config.decide.flap_window), now)
    if len(changes) >= config.decide.flap_threshold:
        alerts.append(
            Alert("flapping", f"{len(changes)} next-hop changes within {config.decide.flap_window:g}s")
        )
    if state.nexthop is None:
        reason = f"replica {wanted.replica_id} is active: next-hop {describe(wanted)}"
    elif state.nexthop.replica_id == wanted.replica_id:
        reason = (
            f"replica {wanted.replica_id} changed address: {describe(state.nexthop)} -> {describe(wanted)}"
        )
    else:
        was = state.nexthop.replica_id
        reason = f"replica {wanted.replica_id} is active (was {was}): next-hop {describe(wanted)}"
    new_state = replace(state, nexthop=wanted, last_change_at=now, changes=changes)
    decision = make(wanted, reason, changed=True)
    return _health(decision, state=new_state, config=config, health=health, replicas=replicas, now=now)


def _unreachable(observation: Observation, state: DecideState) -> tuple[Decision, DecideState]:
    error = observation.error or "no answer"
    if state.last_success_at is not None:
        age = f"; last success {observation.received_at - state.last_success_at:.1f}s ago"
    else:
        age = "; never reached"
    keep = f"keeping {describe(state.nexthop)}" if state.nexthop else "no next-hop known yet"
    decision = Decision(
        state.nexthop,
        f"control plane unreachable ({error}){age}; {keep}",
        stale=True,
        alerts=(Alert("control_plane_unreachable", f"control plane unreachable: {error}"),),
        previous=state.nexthop,
        prefixes=state.prefixes,
    )
    return decision, state


def _choose_active(
    active: tuple[str, ...], state: DecideState, resolutions: Mapping[str, Resolution], alerts: list[Alert]
) -> str | None:
    if len(active) <= 1:
        return active[0] if active else None
    current = state.nexthop.replica_id if state.nexthop else None
    if current in active:
        pick = current
    else:
        with_hop = sorted(a for a in active if resolutions[a].nexthop is not None)
        pick = (with_hop or sorted(active))[0]
    alerts.append(
        Alert("two_active", f"{len(active)} replicas report active ({', '.join(active)}); using {pick}")
    )
    return pick


def _hold_down(
    wanted: NextHop, state: DecideState, config: WatcherConfig, replicas: tuple[Replica, ...], now: float
) -> float | None:
    """The time the switch may happen, or None to switch now."""
    if state.nexthop is None or state.last_change_at is None:
        return None
    if state.nexthop.replica_id == wanted.replica_id:
        return None  # an address change of the same replica is not a flap
    until = state.last_change_at + config.decide.hold_down
    if now >= until:
        return None
    current = next((r for r in replicas if r.id == state.nexthop.replica_id), None)
    if current is None or current.ha_status == "offline":
        return None
    return until


def _health(
    decision: Decision,
    *,
    state: DecideState,
    config: WatcherConfig,
    health: Mapping[str, bool],
    replicas: tuple[Replica, ...],
    now: float,
) -> tuple[Decision, DecideState]:
    target = decision.nexthop
    if target is None or health.get(target.replica_id, True):
        return decision, state
    alerts = [
        *decision.alerts,
        Alert("nexthop_unhealthy", f"next-hop {describe(target)} does not answer ARP/NDP"),
    ]
    promote: str | None = None
    if config.health.promote_on_unhealthy:
        candidates = [
            r.id
            for r in replicas
            if r.ha_status == "passive"
            and r.id != target.replica_id
            and health.get(r.id) is not False
            and (decision.resolutions.get(r.id) or Resolution(None, "none")).nexthop is not None
        ]
        # Replicas that answered a probe beat ones never probed; the control plane's order breaks ties.
        candidates.sort(key=lambda rid: health.get(rid) is not True)
        cooled = (
            state.last_promotion_at is None or now - state.last_promotion_at >= config.health.promote_cooldown
        )
        if not candidates:
            alerts.append(Alert("no_promotion_candidate", "no healthy passive replica to promote"))
        elif cooled:
            promote = candidates[0]
            state = replace(state, last_promotion_at=now)
    reason = (
        decision.reason + f"; next-hop unhealthy{f', requesting promotion of {promote}' if promote else ''}"
    )
    return replace(decision, alerts=tuple(alerts), promote=promote, reason=reason), state


def _summary(replicas: tuple[Replica, ...]) -> str:
    if not replicas:
        return "no replicas registered"
    return ", ".join(f"{r.id}={r.ha_status}" for r in replicas)
