"""The /status document: what the daemon wants, what it last applied, and why."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .. import __version__
from .._types import NextHop, Target
from ._parts import actuator_stats
from .decide import Decision
from .nexthop import describe

if TYPE_CHECKING:
    from .service import Watcher


def nexthop_dict(nexthop: NextHop | None) -> dict[str, Any] | None:
    if nexthop is None:
        return None
    return {
        "replica": nexthop.replica_id,
        "ipv4": str(nexthop.ipv4) if nexthop.ipv4 else None,
        "ipv6": str(nexthop.ipv6) if nexthop.ipv6 else None,
    }


def target_dict(target: Target | None) -> dict[str, Any] | None:
    if target is None:
        return None
    return {
        "nexthop": nexthop_dict(target.nexthop),
        "stale": target.stale,
        "prefixes": [str(p) for p in target.prefixes],
        "reason": target.reason,
    }


def build_status(w: Watcher) -> dict[str, Any]:
    now = w.clock()
    d = w.decision
    obs = w.last_observation
    desired = d.target() if d else None
    replicas = []
    if w.state.replicas is not None:
        for r in w.state.replicas:
            res = d.resolutions.get(r.id) if d else None
            replicas.append({
                "id": r.id,
                "ha_status": r.ha_status,
                "device_name": r.device_name,
                "nexthop": nexthop_dict(res.nexthop) if res else None,
                "nexthop_source": res.source if res else None,
                "nexthop_problem": res.problem if res else None,
                "healthy": w.health.get(r.id),
            })  # fmt: skip
    last_success = w.state.last_success_at
    in_sync = (
        desired is not None
        and w.applied is not None
        and (
            (desired.nexthop, desired.stale, desired.prefixes)
            == (w.applied.nexthop, w.applied.stale, w.applied.prefixes)
        )
    )
    out: dict[str, Any] = {
        "version": __version__,
        "node_id": w.config.node.node_id,
        "mode": w.config.mode,
        "ready": w.ready,
        "uptime_seconds": round(time.time() - w.started_at, 3),
        "target": nexthop_dict(d.nexthop) if d else None,
        "active_replicas": list(d.active) if d else [],
        "reason": d.reason if d else "no observation yet",
        "stale": d.stale if d else False,
        "alerts": [{"kind": a.kind, "message": a.message} for a in d.alerts] if d else [],
        "last_event": None if obs is None else {
            "trigger": obs.trigger,
            "age_seconds": round(now - obs.received_at, 3),
            "ok": obs.replicas is not None,
            "error": obs.error,
        },
        "control_plane": {
            "up": obs is not None and obs.replicas is not None,
            "last_success_age_seconds": None if last_success is None else round(now - last_success, 3),
        },
        "desired": target_dict(desired),
        "applied": target_dict(w.applied),
        "in_sync": in_sync,
        "apply_error": w.apply_error,
        "replicas": replicas,
        "hooks": dict(w.hooks.counts),
        "hold_down_remaining_seconds": (
            None if d is None or d.recheck_at is None else round(d.recheck_at - now, 3)
        ),
    }  # fmt: skip
    if w.actuator is not None:
        out["actuator"] = {"name": w.actuator.name, **actuator_stats(w.actuator)}
    if w.vrrp_state is not None:
        out["vrrp_state"] = w.vrrp_state
    return out


def differs(a: Target, b: Target) -> bool:
    return (a.nexthop, a.stale, a.prefixes) != (b.nexthop, b.stale, b.prefixes)


def change_kind(decision: Decision) -> str:
    if decision.previous is None:
        return "initial"
    if decision.nexthop is not None and decision.previous.replica_id == decision.nexthop.replica_id:
        return "address_changed"
    return "replica_changed"


def short(decision: Decision) -> str:
    text = ("STALE: " if decision.stale else "") + f"target {describe(decision.nexthop)}"
    return text[:200]
