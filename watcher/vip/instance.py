"""One VRRPv3 virtual router for one address family: state machine + sockets + VIPs + GARP."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .._aio import wait_for
from ._addrs import AddressManager
from ._fsm import Action, Fsm, SendAdvert, State, Transition
from ._garp import Announcer
from ._io import VrrpSocket
from ._packet import Addr, Advert, build_advert, parse_advert
from .config import VipConfig

log = logging.getLogger(__name__)

# on_transition(family, old_state, new_state, reason); may be a coroutine function.
TransitionCallback = Callable[[int, str, str, str], Awaitable[None] | None]


@dataclass
class VrrpStats:
    """Counters for metrics. States are "init" | "backup" | "master"."""

    family: int
    state: str = "init"
    priority: int = 0
    transitions: Counter[str] = field(default_factory=Counter)  # key "old->new:reason"
    adverts_sent: int = 0
    adverts_received: int = 0
    bad_packets: Counter[str] = field(default_factory=Counter)  # key: drop reason
    garp_sent: int = 0
    master_ip: str | None = None
    vip_held: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "state": self.state,
            "priority": self.priority,
            "transitions": dict(self.transitions),
            "adverts_sent": self.adverts_sent,
            "adverts_received": self.adverts_received,
            "bad_packets": dict(self.bad_packets),
            "garp_sent": self.garp_sent,
            "master_ip": self.master_ip,
            "vip_held": self.vip_held,
        }


class VrrpInstance:
    """VRRPv3 for the `family` addresses of `config`. Start with `await start()`."""

    def __init__(
        self,
        config: VipConfig,
        family: int,
        *,
        priority: int | None = None,
        on_transition: TransitionCallback | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        if not config.addresses_for(family):
            raise ValueError(f"vip: no IPv{family} addresses configured")
        self.config = config
        self.family = family
        self.initial_priority = priority if priority is not None else config.priority_passive
        self.on_transition = on_transition
        self.on_change = on_change  # cheap "something changed" hook (status files, metrics)
        self.stats = VrrpStats(family=family, priority=self.initial_priority)
        self.fsm: Fsm | None = None
        self.primary: Addr | None = None
        self._addrs = AddressManager(config.interface, family, config.addresses_for(family))
        self._sock: VrrpSocket | None = None
        self._garp: Announcer | None = None
        self._peers = config.peers_for(family)
        self._allowed = config.allowlist_for(family)
        self._wake = asyncio.Event()
        self._vip_wanted = False
        self._vip_held = False  # what the VIP worker (or the takeover fast path) last applied
        self._adverts: dict[tuple[int, Addr], bytes] = {}  # (priority, dst) -> message
        self._vip_kick = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    # lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        await self._addrs.open()
        try:
            self.primary = await self._addrs.resolve()
            # Every instance starts as Backup: a VIP left by a crashed run is removed, then re-added
            # if the election makes us master again.
            if await self._addrs.present():
                log.info("vip: removing stale VIPs from %s", self.config.interface)
            await self._addrs.remove_all()
            self._sock = VrrpSocket(
                self.family, self.config.interface, self.primary, multicast=not self._peers
            )
        except BaseException:
            await self._addrs.close()
            raise
        # Adverts are built with scapy (import ~0.1 s, ~1 ms a build): build the one a takeover
        # sends now; every later one comes from the cache too.
        for dst in self._targets():
            self._advert(self.initial_priority, dst)
        ll = str(self.primary) if self.family == 6 else None
        self._garp = Announcer(
            self.config.interface, [v.ip for v in self._addrs.vips], self.config.garp, ll_source=ll
        )
        self.fsm = Fsm(
            priority=self.initial_priority,
            advert_interval=self.config.advert_interval,
            primary_ip=self.primary,
            preempt=self.config.preempt,
            preempt_delay=self.config.preempt_delay,
        )
        loop = asyncio.get_running_loop()
        self._sock.attach(loop, self._on_packet)
        self._run(self.fsm.startup(time.monotonic()))
        self._tasks = [
            loop.create_task(self._timer_loop(), name=f"vrrp{self.family}-timer"),
            loop.create_task(self._vip_loop(), name=f"vrrp{self.family}-vip"),
        ]
        log.info(
            "vrrp: IPv%d vrid %d on %s from %s, priority %d, interval %.2fs, %s",
            self.family, self.config.vrid, self.config.interface, self.primary, self.initial_priority,
            self.config.advert_interval, f"unicast to {[str(p) for p in self._peers]}" if self._peers
            else "multicast",
        )  # fmt: skip

    async def close(self) -> None:
        """Resign (priority-0 advert when master), remove the VIPs, release everything."""
        if self._closing:
            return
        self._closing = True
        if self.fsm is not None:
            self._run(self.fsm.shutdown(time.monotonic()))
        timer, vip = self._tasks or (None, None)
        if timer is not None:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
        if self._garp is not None:
            await self._garp.wait_stopped()
        if vip is not None:
            # Let the worker finish removing the VIPs: cancelling it inside a netlink request
            # would leave the socket waiting for a reply that never gets read.
            self._vip_wanted = False
            self._vip_kick.set()
            try:
                await wait_for(asyncio.shield(vip), 5.0)
            except TimeoutError:
                vip.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await vip
                log.error("vip: removing the VIPs took too long on %s", self.config.interface)
        self.stats.vip_held = False
        if self._sock is not None:
            self._sock.close()
        await self._addrs.close()

    # control ----------------------------------------------------------------------------
    @property
    def state(self) -> State:
        return self.fsm.state if self.fsm is not None else State.INIT

    @property
    def priority(self) -> int:
        return self.fsm.priority if self.fsm is not None else self.initial_priority

    def snapshot(self) -> dict[str, Any]:
        """The stats as a plain dict (for status files and metrics)."""
        if self._garp is not None:
            self.stats.garp_sent = self._garp.sent
        return self.stats.as_dict()

    def set_priority(self, priority: int) -> None:
        if self.fsm is None:
            self.initial_priority = priority
        else:
            self._run(self.fsm.set_priority(time.monotonic(), priority))
        self.stats.priority = priority
        self._changed()

    # internals --------------------------------------------------------------------------
    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def _on_packet(self, message: bytes, src: Addr, dst: Addr, ttl: int) -> None:
        assert self.fsm is not None and self.primary is not None
        got = parse_advert(
            message, src=src, dst=dst, ttl=ttl, vrid=self.config.vrid, mode=self.config.checksum_mode,
            allowed=self._allowed, own={self.primary},
        )  # fmt: skip
        if not isinstance(got, Advert):
            if got != "own_packet":
                self.stats.bad_packets[got] += 1
                log.debug("vrrp: dropped advert from %s: %s", src, got)
                self._changed()
            return
        self.stats.adverts_received += 1
        if got.priority:
            self.stats.master_ip = str(src) if self.fsm.state is not State.MASTER else self.stats.master_ip
        self._run(
            self.fsm.on_advert(
                time.monotonic(), src=src, priority=got.priority, max_adver_int=got.max_adver_int
            )
        )
        self._changed()

    def _run(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, SendAdvert):
                self._send(action.priority)
            elif isinstance(action, Transition):
                self._transition(action)
        self._wake.set()

    def _targets(self) -> list[Addr]:
        assert self._sock is not None
        return list(self._peers) if self._peers else [self._sock.group]

    def _advert(self, priority: int, dst: Addr) -> bytes:
        # Everything but (priority, dst) is fixed for the instance's life: build each message once.
        msg = self._adverts.get((priority, dst))
        if msg is None:
            assert self._sock is not None and self.primary is not None
            ck_dst = self._sock.group if self._peers and self.config.unicast_checksum_dst == "group" else dst
            msg = build_advert(
                src=self.primary, dst=dst, vrid=self.config.vrid, priority=priority,
                interval=self.config.advert_interval, addresses=[v.ip for v in self._addrs.vips],
                mode=self.config.checksum_mode, checksum_dst=ck_dst,
            )  # fmt: skip
            self._adverts[(priority, dst)] = msg
        return msg

    def _send(self, priority: int) -> None:
        assert self._sock is not None
        for dst in self._targets():
            if self._sock.send(self._advert(priority, dst), dst):
                self.stats.adverts_sent += 1

    def _take_vips_now(self) -> None:
        """Takeover fast path: VIPs on, first GARP/NA out, before any logging or callbacks."""
        t0 = time.perf_counter_ns()
        if self._vip_held or self._garp is None or not self._addrs.add_now():
            return  # the VIP worker adds them (and logs why) on its next turn
        t1 = time.perf_counter_ns()
        self._garp.announce_now()
        t2 = time.perf_counter_ns()
        self._garp.start()
        self._vip_held = self.stats.vip_held = True
        log.debug(
            "vrrp: IPv%d takeover: VIPs added in %d us, first GARP/NA in %d us",
            self.family, (t1 - t0) // 1000, (t2 - t1) // 1000,
        )  # fmt: skip

    def _transition(self, tr: Transition) -> None:
        self._vip_wanted = tr.new is State.MASTER
        if tr.new is State.MASTER:
            self._take_vips_now()
        log.info(
            "vrrp: IPv%d vrid %d %s -> %s (%s)",
            self.family,
            self.config.vrid,
            tr.old.value,
            tr.new.value,
            tr.reason,
        )
        self.stats.state = tr.new.value
        self.stats.transitions[f"{tr.old.value}->{tr.new.value}:{tr.reason}"] += 1
        if tr.new is State.MASTER:
            self.stats.master_ip = str(self.primary)
        elif tr.old is State.MASTER:
            self.stats.master_ip = None
        self._vip_kick.set()
        if tr.new is not State.MASTER and self._garp is not None:
            self._garp.stop()
        if self.on_transition is not None:
            result = self.on_transition(self.family, tr.old.value, tr.new.value, tr.reason)
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                task.add_done_callback(_log_failure)
        self._changed()

    async def _timer_loop(self) -> None:
        assert self.fsm is not None
        # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel that races a wakeup.
        while not self._closing:
            self._wake.clear()
            deadline = self.fsm.deadline()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(None if deadline is None else _loop_time(deadline)):
                    await self._wake.wait()
            now = time.monotonic()
            if deadline is not None and now >= deadline and self.fsm.state is State.BACKUP:
                log.debug("vrrp: IPv%d Master_Down timer %.2f ms late", self.family, (now - deadline) * 1e3)
            self._run(self.fsm.on_timer(now))

    async def _vip_loop(self) -> None:
        # One worker applies the latest wanted state, so fast flaps never reorder add/remove.
        # The takeover fast path may have applied "held" already (synchronously, so no reordering).
        while True:
            await self._vip_kick.wait()
            self._vip_kick.clear()
            wanted = self._vip_wanted
            if wanted == self._vip_held:
                if self._closing and not self._vip_held:
                    return
                continue
            try:
                if wanted:
                    await self._addrs.add_all()
                    if self._garp is not None and self._vip_wanted:
                        self._garp.start()
                else:
                    await self._addrs.remove_all()
                self._vip_held = self.stats.vip_held = wanted
                self._changed()
                if self._closing and not wanted:
                    return
            except Exception:
                log.exception("vip: cannot update addresses on %s", self.config.interface)
                await asyncio.sleep(0.5)
                self._vip_kick.set()


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("vrrp: transition callback failed: %r", task.exception())


def _loop_time(monotonic_deadline: float) -> float:
    # The FSM runs on time.monotonic(); the loop clock may differ (it is monotonic too, but offset).
    loop = asyncio.get_running_loop()
    return loop.time() + (monotonic_deadline - time.monotonic())
