"""The HA decisions, as pure functions over (state, now): no I/O, no clock, so they unit-test fast.

Rules (as Cloudflare's HA Mesh nodes behave):
- one active replica per node; the first replica to connect becomes active;
- an active replica whose last heartbeat is older than the detection timeout goes offline and the
  connected passive replica with the freshest heartbeat is promoted;
- non-preemptive: a replica that comes back stays passive while another one is active;
- manual promotion is immediate and only picks a connected replica of the same HA node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

NodeStatus = Literal["inactive", "degraded", "healthy", "down"]
HaStatus = Literal["active", "passive", "offline"]


@dataclass(slots=True)
class Live:
    """What the engine knows, in memory only, about one replica's connection."""

    connected: bool
    last_seen: float  # monotonic time of the last registration or heartbeat


@dataclass(frozen=True, slots=True)
class Decision:
    offline: tuple[str, ...]  # replicas whose heartbeats stopped: mark them offline
    active: str | None  # the active replica after this step
    status: NodeStatus  # the node status after this step


def expired(replicas: Mapping[str, Live], now: float, timeout: float) -> tuple[str, ...]:
    """Connected replicas that have not been heard from for longer than `timeout`."""
    return tuple(sorted(rid for rid, r in replicas.items() if r.connected and now - r.last_seen > timeout))


def pick_active(current: str | None, replicas: Mapping[str, Live]) -> str | None:
    """Keep a connected active (non-preemptive); else the connected replica heard from last."""
    if current is not None and current in replicas and replicas[current].connected:
        return current
    candidates = [(r.last_seen, rid) for rid, r in replicas.items() if r.connected]
    if not candidates:
        return None
    # Freshest heartbeat wins; ties go to the smallest id so the choice is deterministic.
    best = max(last for last, _ in candidates)
    return min(rid for last, rid in candidates if last == best)


def node_status(ha: bool, ever_connected: bool, connected: int) -> NodeStatus:
    """Cloudflare's four states. An HA node is healthy only with a standby ready to take over."""
    if connected == 0:
        return "down" if ever_connected else "inactive"
    if ha and connected < 2:
        return "degraded"
    return "healthy"


def decide(
    *,
    ha: bool,
    active: str | None,
    replicas: Mapping[str, Live],
    ever_connected: bool,
    now: float,
    timeout: float,
) -> Decision:
    """One engine step for one node: expire silent replicas, then choose the active one."""
    gone = expired(replicas, now, timeout)
    after = {rid: Live(r.connected and rid not in gone, r.last_seen) for rid, r in replicas.items()}
    connected = sum(1 for r in after.values() if r.connected)
    return Decision(
        offline=gone,
        active=pick_active(active, after),
        status=node_status(ha, ever_connected or connected > 0, connected),
    )


def ha_status(replica_id: str, active: str | None, live: Live | None) -> HaStatus:
    if live is None or not live.connected:
        return "offline"
    return "active" if replica_id == active else "passive"


def grace(connected_ids: list[str], started: float) -> dict[str, Live]:
    """After a restart, replicas that were connected count as heard from at start-up.

    So each gets a full detection timeout to resume heartbeats, and roles stay as they were:
    a control-plane restart never causes a failover.
    """
    return {rid: Live(True, started) for rid in connected_ids}
