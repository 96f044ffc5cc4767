"""`VipActuator`: the Actuator (watcher._types) that turns a Target into VRRP priorities."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .._types import Target
from ._fsm import State
from .config import VipConfig
from .instance import TransitionCallback, VrrpInstance

log = logging.getLogger(__name__)


class VipActuator:
    """Holds the VIPs on the host whose replica is active, by VRRP priority.

    The active replica's host runs at `priority_active`, every other host at `priority_passive`;
    VRRP then moves the VIPs (and fails over by itself if the active host dies before the control
    plane notices). A stale or empty target changes nothing: the election keeps its current master.
    """

    name = "vip"

    def __init__(
        self,
        config: VipConfig,
        *,
        on_takeover: Callable[[], Awaitable[None]] | None = None,
        on_transition: TransitionCallback | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.on_takeover = on_takeover
        self._user_transition = on_transition
        self.instances = [
            VrrpInstance(
                config,
                family,
                priority=config.priority_passive,
                on_transition=self._transition,
                on_change=on_change,
            )
            for family in config.families()
        ]
        self.active = False  # our replica is the active one, as far as the last target said
        self._takeover_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        started: list[VrrpInstance] = []
        try:
            for inst in self.instances:
                await inst.start()
                started.append(inst)
        except BaseException:
            for inst in started:
                await inst.close()
            raise

    async def apply(self, target: Target) -> None:
        if target.stale or target.nexthop is None:
            return
        active = (
            self.config.local_replica_id is not None
            and target.nexthop.replica_id == self.config.local_replica_id
        )
        self.active = active
        prio = self.config.priority_active if active else self.config.priority_passive
        for inst in self.instances:
            if inst.priority != prio:
                log.info("vip: IPv%d priority %d -> %d (%s)", inst.family, inst.priority, prio, target.reason)
                inst.set_priority(prio)

    async def close(self, *, withdraw: bool = False) -> None:
        # Always resign and drop the VIPs: a VIP held without VRRP running is a split brain.
        await asyncio.gather(*(inst.close() for inst in self.instances))
        if self._takeover_task is not None:
            self._takeover_task.cancel()

    async def _takeover(self) -> None:
        # Backups of equal priority time out together and all become master; the losers step
        # down within about one advert interval. Only the host still master asks to be promoted.
        await asyncio.sleep(1.5 * self.config.advert_interval)
        if self.active or self.instances[0].state is not State.MASTER:
            return
        assert self.on_takeover is not None
        await self.on_takeover()

    def set_priority(self, priority: int) -> None:
        """Direct override (standalone runner, tests)."""
        for inst in self.instances:
            inst.set_priority(priority)

    @property
    def stats(self) -> dict[str, dict[str, Any]]:
        """Per family ("ipv4"/"ipv6"): state, priority, transitions, adverts, bad packets, GARPs."""
        return {f"ipv{inst.family}": inst.snapshot() for inst in self.instances}

    async def _transition(self, family: int, old: str, new: str, reason: str) -> None:
        # VRRP made us master (the active host died or resigned) ahead of the control plane.
        # Only a takeover from a master we heard counts: the first election of a cold start
        # (no master yet, every host times out) must not steal the active role from a healthy replica.
        # The first family's instance alone decides: between equal passive priorities each family
        # breaks the tie on its own primary address, so IPv4 and IPv6 may pick different hosts.
        idle = self._takeover_task is None or self._takeover_task.done()
        lead = self.instances[0]
        heard = lead.stats.adverts_received > 0
        takeover = (
            family == lead.family
            and new == "master"
            and reason == "master_down"
            and heard
            and not self.active
        )
        if takeover and self.on_takeover is not None and idle:
            self._takeover_task = asyncio.ensure_future(self._takeover())
        if self._user_transition is not None:
            result = self._user_transition(family, old, new, reason)
            if result is not None:
                await result
