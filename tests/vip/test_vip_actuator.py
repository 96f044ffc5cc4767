"""VipActuator: Target -> priority mapping and the on_takeover hook (no sockets needed)."""

from __future__ import annotations

import ipaddress

from watcher._types import NextHop, Target
from watcher.vip import Fsm, State, VipActuator, VipConfig

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

    cfg = CFG.model_copy(update={"advert_interval": 0.02})
    act = VipActuator(cfg, on_takeover=takeover, on_transition=transition)
    lead = act.instances[0]
    lead.fsm = Fsm(priority=100, advert_interval=0.02, primary_ip=ipaddress.IPv4Address("192.0.2.11"))
    lead.fsm.state = State.MASTER

    async def settle() -> None:
        if act._takeover_task is not None:
            await act._takeover_task

    # Cold start: no master was ever heard, so winning the first election is no takeover.
    await act._transition(4, "backup", "master", "master_down")
    await settle()
    assert calls == [] and seen == [(4, "backup", "master", "master_down")]
    lead.stats.adverts_received = 3
    # Only the first family decides (IPv4 and IPv6 may break an equal-priority tie differently).
    await act._transition(6, "backup", "master", "master_down")
    await settle()
    assert calls == []
    await act._transition(4, "backup", "master", "master_down")
    await settle()
    assert calls == ["takeover"]
    # Lost the tie-break while settling: another host is master, it asks, not us.
    await act._transition(4, "backup", "master", "master_down")
    lead.fsm.state = State.BACKUP
    await settle()
    assert calls == ["takeover"]
    lead.fsm = None  # not started: apply only records the priority
    await act.apply(target("r-1"))
    await act._transition(4, "backup", "master", "master_down")
    await settle()
    assert calls == ["takeover"]  # we are the active replica: VRRP only followed the control plane
