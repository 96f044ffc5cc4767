"""VipActuator: Target -> priority mapping and the on_takeover hook (no sockets needed)."""

from __future__ import annotations

from watcher._types import NextHop, Target
from watcher.vip import VipActuator, VipConfig

CFG = VipConfig(interface="eth0", vrid=9, local_replica_id="r-1", addresses=["192.0.2.254", "fe80::254"])


def target(replica: str | None, *, stale: bool = False) -> Target:
    return Target(nexthop=NextHop(replica) if replica else None, reason="test", stale=stale)


async def test_apply_maps_active_replica_to_priorities() -> None:
    act = VipActuator(CFG)
    assert act.name == "vip" and [i.family for i in act.instances] == [4, 6]
    assert all(i.priority == 100 for i in act.instances)
    await act.apply(target("r-1"))
    assert all(i.priority == 250 for i in act.instances) and act.active
    # Stale or unknown: keep the roles as they are.
    await act.apply(target("r-2", stale=True))
    assert all(i.priority == 250 for i in act.instances)
    await act.apply(target(None))
    assert all(i.priority == 250 for i in act.instances)
    await act.apply(target("r-2"))
    assert all(i.priority == 100 for i in act.instances) and not act.active
    assert act.stats["ipv4"]["priority"] == 100 and act.stats["ipv6"]["state"] == "init"


async def test_on_takeover_only_when_not_the_active_replica() -> None:
    calls: list[str] = []
    seen: list[tuple[int, str, str, str]] = []

    async def takeover() -> None:
        calls.append("takeover")

    def transition(family: int, old: str, new: str, reason: str) -> None:
        seen.append((family, old, new, reason))

    act = VipActuator(CFG, on_takeover=takeover, on_transition=transition)
    await act._transition(4, "backup", "master", "master_down")
    assert act._takeover_task is not None
    await act._takeover_task
    assert calls == ["takeover"] and seen == [(4, "backup", "master", "master_down")]
    await act.apply(target("r-1"))
    await act._transition(6, "backup", "master", "priority_raised")
    assert calls == ["takeover"]  # we are the active replica: VRRP only followed the control plane
