"""The VRRPv3 state machine (RFC 5798 §6.4, RFC 9568 §6.4) as a pure object: no I/O, no clock.

Every input takes `now` (monotonic seconds) and returns the actions to carry out, in order.
`deadline()` says when `on_timer` must be called next. Deviations from the RFC, on purpose:
- A Backup with preempt that sees an advert of lower priority than its own takes over at once
  (sends an advert and becomes Master) instead of waiting out Master_Down_Interval; the same on a
  runtime priority rise above the master's. The result is the same master, sooner: this is what
  moves the VIP when the active replica changes.
- `preempt_delay`: for this long after startup, adverts of lower priority are accepted as
  if preempt were off (keepalived's meaning: let a freshly booted host settle first).
- A Master that receives an advert of lower priority answers with its own advert at once, so the
  other (split-brain) master steps down within one round trip instead of one interval.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass

Addr = ipaddress.IPv4Address | ipaddress.IPv6Address


class State(enum.Enum):
    INIT = "init"
    BACKUP = "backup"
    MASTER = "master"


@dataclass(frozen=True, slots=True)
class SendAdvert:
    priority: int


@dataclass(frozen=True, slots=True)
class Transition:
    old: State
    new: State
    reason: str


Action = SendAdvert | Transition


def skew_time(priority: int, master_adver_int: float) -> float:
    return ((256 - priority) * master_adver_int) / 256


def master_down_interval(priority: int, master_adver_int: float) -> float:
    return 3 * master_adver_int + skew_time(priority, master_adver_int)


class Fsm:
    def __init__(
        self,
        *,
        priority: int,
        advert_interval: float,
        primary_ip: Addr,
        preempt: bool = True,
        preempt_delay: float = 0.0,
    ) -> None:
        if not 1 <= priority <= 255:
            raise ValueError(f"priority {priority} outside 1..255")
        self.priority = priority
        self.advert_interval = advert_interval
        self.primary_ip = primary_ip
        self.preempt = preempt
        self.preempt_delay = preempt_delay
        self.state = State.INIT
        self.master_adver_int = advert_interval
        self.master_priority: int | None = None  # of the master we last accepted an advert from
        self.master_ip: Addr | None = None
        self._adver_timer: float | None = None
        self._down_timer: float | None = None
        self._started_at = 0.0

    # queries --------------------------------------------------------------------------
    @property
    def skew(self) -> float:
        return skew_time(self.priority, self.master_adver_int)

    @property
    def down_interval(self) -> float:
        return master_down_interval(self.priority, self.master_adver_int)

    def deadline(self) -> float | None:
        if self.state is State.MASTER:
            return self._adver_timer
        if self.state is State.BACKUP:
            return self._down_timer
        return None

    # inputs ---------------------------------------------------------------------------
    def startup(self, now: float) -> list[Action]:
        if self.state is not State.INIT:
            return []
        self._started_at = now
        if self.priority == 255:
            return self._become_master(now, "owner")
        return self._become_backup(now, "startup", master_adver_int=self.advert_interval)

    def shutdown(self, now: float) -> list[Action]:
        """Leave the protocol. A Master resigns with a priority-0 advert: others take over after Skew_Time."""
        old = self.state
        self.state = State.INIT
        self._adver_timer = self._down_timer = None
        if old is State.MASTER:
            return [SendAdvert(0), Transition(old, State.INIT, "shutdown")]
        if old is State.BACKUP:
            return [Transition(old, State.INIT, "shutdown")]
        return []

    def on_timer(self, now: float) -> list[Action]:
        if self.state is State.MASTER and self._adver_timer is not None and now >= self._adver_timer:
            # Schedule from the deadline, not from `now`: the loop wakes up to ~1 ms late, and
            # re-arming from `now` would stretch every interval (adverts drifting later, so
            # backups' Master_Down fires later after a death). After a long stall, restart.
            nxt = self._adver_timer + self.advert_interval
            self._adver_timer = nxt if nxt > now else now + self.advert_interval
            return [SendAdvert(self.priority)]
        if self.state is State.BACKUP and self._down_timer is not None and now >= self._down_timer:
            return self._become_master(now, "master_down")
        return []

    def on_advert(self, now: float, *, src: Addr, priority: int, max_adver_int: float) -> list[Action]:
        if self.state is State.BACKUP:
            return self._backup_rx(now, src, priority, max_adver_int)
        if self.state is State.MASTER:
            return self._master_rx(now, src, priority, max_adver_int)
        return []

    def set_priority(self, now: float, priority: int) -> list[Action]:
        if not 1 <= priority <= 254:
            raise ValueError(f"priority {priority} outside 1..254")
        old, self.priority = self.priority, priority
        if priority == old:
            return []
        if self.state is State.MASTER:
            # Tell the backups now: one of them may outrank us and preempt at once.
            self._adver_timer = now + self.advert_interval
            return [SendAdvert(priority)]
        if self.state is State.BACKUP:
            if (
                self._may_preempt(now)
                and self.master_priority is not None
                and priority > self.master_priority
            ):
                return self._become_master(now, "priority_raised")
            if self._down_timer is not None and self.master_priority is not None:
                # Skew_Time depends on our priority: keep the timer consistent with the new one.
                self._down_timer += skew_time(priority, self.master_adver_int) - skew_time(
                    old, self.master_adver_int
                )
        return []

    # internals ------------------------------------------------------------------------
    def _may_preempt(self, now: float) -> bool:
        return self.preempt and now - self._started_at >= self.preempt_delay

    def _backup_rx(self, now: float, src: Addr, priority: int, max_adver_int: float) -> list[Action]:
        if priority == 0:
            # The master resigned: take over after Skew_Time, so the highest priority wins the race.
            self._down_timer = now + self.skew
            self.master_priority = None
            return []
        if not self._may_preempt(now) or priority >= self.priority:
            self.master_adver_int = max_adver_int
            self.master_priority, self.master_ip = priority, src
            self._down_timer = now + self.down_interval
            return []
        return self._become_master(now, "preempt")

    def _master_rx(self, now: float, src: Addr, priority: int, max_adver_int: float) -> list[Action]:
        if priority == 0:
            self._adver_timer = now + self.advert_interval
            return [SendAdvert(self.priority)]
        if priority > self.priority or (
            priority == self.priority and _ip_key(src) > _ip_key(self.primary_ip)
        ):
            reason = "higher_priority" if priority > self.priority else "higher_address"
            return self._become_backup(now, reason, master_adver_int=max_adver_int, master=(src, priority))
        self._adver_timer = now + self.advert_interval
        return [SendAdvert(self.priority)]

    def _become_master(self, now: float, reason: str) -> list[Action]:
        old = self.state
        self.state = State.MASTER
        self._down_timer = None
        self._adver_timer = now + self.advert_interval
        self.master_priority, self.master_ip = self.priority, self.primary_ip
        return [SendAdvert(self.priority), Transition(old, State.MASTER, reason)]

    def _become_backup(
        self, now: float, reason: str, *, master_adver_int: float, master: tuple[Addr, int] | None = None
    ) -> list[Action]:
        old = self.state
        self.state = State.BACKUP
        self._adver_timer = None
        self.master_adver_int = master_adver_int
        self.master_ip, self.master_priority = master if master else (None, None)
        self._down_timer = now + self.down_interval
        return [Transition(old, State.BACKUP, reason)]


def _ip_key(addr: Addr) -> int:
    return int(addr)
