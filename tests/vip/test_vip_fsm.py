"""The pure VRRPv3 state machine: every rule of RFC 9568 §6.4 plus our documented deviations."""

from __future__ import annotations

import ipaddress

import pytest

from watcher.vip import Fsm, State, master_down_interval, skew_time
from watcher.vip._fsm import SendAdvert, Transition

ME = ipaddress.ip_address("192.0.2.12")
LOWER = ipaddress.ip_address("192.0.2.11")
HIGHER = ipaddress.ip_address("192.0.2.13")


def fsm(priority: int = 100, interval: float = 1.0, **kw: object) -> Fsm:
    return Fsm(priority=priority, advert_interval=interval, primary_ip=ME, **kw)  # type: ignore[arg-type]


def transitions(actions: list[object]) -> list[tuple[State, State, str]]:
    return [(a.old, a.new, a.reason) for a in actions if isinstance(a, Transition)]


def sends(actions: list[object]) -> list[int]:
    return [a.priority for a in actions if isinstance(a, SendAdvert)]


def master(priority: int = 100, interval: float = 1.0, **kw: object) -> Fsm:
    f = fsm(priority, interval, **kw)
    f.startup(0.0)
    f.on_timer(f.deadline() or 0.0)
    assert f.state is State.MASTER
    return f


def test_timer_formulas_match_rfc() -> None:
    assert skew_time(100, 1.0) == pytest.approx(156 / 256)
    assert master_down_interval(100, 1.0) == pytest.approx(3 + 156 / 256)
    assert master_down_interval(254, 0.1) == pytest.approx(0.3 + 2 * 0.1 / 256)
    assert skew_time(1, 1.0) > skew_time(254, 1.0)  # higher priority -> shorter wait


def test_startup_goes_backup_and_times_out_to_master() -> None:
    f = fsm()
    assert f.state is State.INIT and f.deadline() is None
    acts = f.startup(10.0)
    assert transitions(acts) == [(State.INIT, State.BACKUP, "startup")]
    assert sends(acts) == []
    assert f.deadline() == pytest.approx(10.0 + master_down_interval(100, 1.0))
    assert f.on_timer(10.0 + 1.0) == []  # early tick: nothing
    acts = f.on_timer(f.deadline() or 0)
    assert sends(acts) == [100]
    assert transitions(acts) == [(State.BACKUP, State.MASTER, "master_down")]
    assert f.startup(20.0) == []  # already running


def test_owner_priority_255_is_master_at_once() -> None:
    f = Fsm(priority=255, advert_interval=1.0, primary_ip=ME)
    acts = f.startup(0.0)
    assert sends(acts) == [255] and f.state is State.MASTER


def test_master_sends_every_interval() -> None:
    f = master(interval=0.5)
    t = f.deadline() or 0
    for _ in range(4):
        assert sends(f.on_timer(t)) == [100]
        assert f.deadline() == pytest.approx(t + 0.5)
        t += 0.5


def test_backup_advert_resets_down_timer_and_learns_interval() -> None:
    f = fsm()
    f.startup(0.0)
    f.on_advert(2.0, src=HIGHER, priority=150, max_adver_int=0.5)
    assert f.master_adver_int == 0.5
    assert f.deadline() == pytest.approx(2.0 + master_down_interval(100, 0.5))
    assert f.master_priority == 150 and f.master_ip == HIGHER
    # Down interval computed from the MASTER's interval, not ours.
    assert f.down_interval == pytest.approx(1.5 + 156 * 0.5 / 256)


def test_backup_equal_priority_advert_is_accepted_no_preemption() -> None:
    f = fsm()
    f.startup(0.0)
    assert f.on_advert(1.0, src=LOWER, priority=100, max_adver_int=1.0) == []
    assert f.state is State.BACKUP


def test_backup_priority_zero_means_take_over_after_skew() -> None:
    f = fsm(priority=200)
    f.startup(0.0)
    f.on_advert(1.0, src=HIGHER, priority=250, max_adver_int=1.0)
    assert f.on_advert(2.0, src=HIGHER, priority=0, max_adver_int=1.0) == []
    assert f.deadline() == pytest.approx(2.0 + skew_time(200, 1.0))
    acts = f.on_timer(2.0 + skew_time(200, 1.0))
    assert transitions(acts) == [(State.BACKUP, State.MASTER, "master_down")]


def test_backup_preempts_lower_priority_master_at_once() -> None:
    f = fsm(priority=200)
    f.startup(0.0)
    acts = f.on_advert(1.0, src=HIGHER, priority=100, max_adver_int=1.0)
    assert sends(acts) == [200]
    assert transitions(acts) == [(State.BACKUP, State.MASTER, "preempt")]


def test_backup_without_preempt_accepts_lower_priority_master() -> None:
    f = fsm(priority=200, preempt=False)
    f.startup(0.0)
    assert f.on_advert(1.0, src=HIGHER, priority=100, max_adver_int=1.0) == []
    assert f.state is State.BACKUP
    assert f.set_priority(2.0, 250) == []  # no preemption on priority rise either
    assert f.state is State.BACKUP


def test_preempt_delay_counts_from_startup() -> None:
    f = fsm(priority=200, preempt_delay=5.0)
    f.startup(0.0)
    assert f.on_advert(1.0, src=HIGHER, priority=100, max_adver_int=1.0) == []
    assert f.state is State.BACKUP
    acts = f.on_advert(5.5, src=HIGHER, priority=100, max_adver_int=1.0)
    assert transitions(acts) == [(State.BACKUP, State.MASTER, "preempt")]


def test_master_steps_down_for_higher_priority() -> None:
    f = master()
    acts = f.on_advert(5.0, src=LOWER, priority=150, max_adver_int=0.2)
    assert transitions(acts) == [(State.MASTER, State.BACKUP, "higher_priority")]
    assert sends(acts) == []
    assert f.master_adver_int == 0.2
    assert f.deadline() == pytest.approx(5.0 + master_down_interval(100, 0.2))


def test_master_equal_priority_tie_broken_by_primary_address() -> None:
    f = master()
    acts = f.on_advert(5.0, src=LOWER, priority=100, max_adver_int=1.0)
    assert f.state is State.MASTER and sends(acts) == [100]  # we have the higher address: reassert
    acts = f.on_advert(5.1, src=HIGHER, priority=100, max_adver_int=1.0)
    assert transitions(acts) == [(State.MASTER, State.BACKUP, "higher_address")]


def test_master_lower_priority_advert_answered_at_once() -> None:
    f = master(priority=200)
    acts = f.on_advert(5.0, src=HIGHER, priority=100, max_adver_int=1.0)
    assert sends(acts) == [200] and f.state is State.MASTER
    assert f.deadline() == pytest.approx(6.0)


def test_master_priority_zero_received_sends_advert_at_once() -> None:
    f = master()
    acts = f.on_advert(5.3, src=HIGHER, priority=0, max_adver_int=1.0)
    assert sends(acts) == [100] and f.state is State.MASTER
    assert f.deadline() == pytest.approx(6.3)


def test_shutdown_master_sends_priority_zero() -> None:
    f = master()
    acts = f.shutdown(9.0)
    assert sends(acts) == [0]
    assert transitions(acts) == [(State.MASTER, State.INIT, "shutdown")]
    assert f.deadline() is None
    assert f.on_advert(9.5, src=HIGHER, priority=200, max_adver_int=1.0) == []


def test_shutdown_backup_is_silent() -> None:
    f = fsm()
    f.startup(0.0)
    acts = f.shutdown(1.0)
    assert sends(acts) == [] and transitions(acts) == [(State.BACKUP, State.INIT, "shutdown")]
    assert fsm().shutdown(0.0) == []


def test_priority_raise_above_master_takes_over_at_once() -> None:
    f = fsm(priority=100)
    f.startup(0.0)
    f.on_advert(1.0, src=HIGHER, priority=100, max_adver_int=1.0)
    acts = f.set_priority(1.5, 250)
    assert sends(acts) == [250]
    assert transitions(acts) == [(State.BACKUP, State.MASTER, "priority_raised")]


def test_priority_raise_not_above_master_waits() -> None:
    f = fsm(priority=100)
    f.startup(0.0)
    f.on_advert(1.0, src=HIGHER, priority=250, max_adver_int=1.0)
    before = f.deadline() or 0
    assert f.set_priority(1.5, 200) == []
    # Skew shrinks with a higher priority: the pending down timer follows.
    assert f.deadline() == pytest.approx(before - (skew_time(100, 1.0) - skew_time(200, 1.0)))


def test_priority_raise_before_any_advert_does_not_jump() -> None:
    f = fsm()
    f.startup(0.0)
    assert f.set_priority(0.1, 250) == []
    assert f.state is State.BACKUP


def test_master_priority_drop_advertises_and_keeps_role_until_outranked() -> None:
    f = master(priority=250)
    acts = f.set_priority(3.0, 100)
    assert sends(acts) == [100] and f.state is State.MASTER
    assert f.on_advert(3.1, src=LOWER, priority=90, max_adver_int=1.0) == [SendAdvert(100)]
    acts = f.on_advert(3.2, src=LOWER, priority=250, max_adver_int=1.0)
    assert transitions(acts) == [(State.MASTER, State.BACKUP, "higher_priority")]


def test_set_same_priority_is_noop_and_bounds_checked() -> None:
    f = master()
    assert f.set_priority(1.0, 100) == []
    with pytest.raises(ValueError):
        f.set_priority(1.0, 0)
    with pytest.raises(ValueError):
        f.set_priority(1.0, 255)
    with pytest.raises(ValueError):
        Fsm(priority=0, advert_interval=1.0, primary_ip=ME)


def test_init_ignores_everything() -> None:
    f = fsm()
    assert f.on_timer(100.0) == []
    assert f.on_advert(1.0, src=HIGHER, priority=200, max_adver_int=1.0) == []
    assert f.set_priority(1.0, 200) == []
    assert f.state is State.INIT


def test_two_fsms_converge_on_the_higher_priority() -> None:
    """Wire two machines together with zero delay and check the election end to end."""
    a = Fsm(priority=100, advert_interval=1.0, primary_ip=LOWER)
    b = Fsm(priority=200, advert_interval=1.0, primary_ip=HIGHER)
    a.startup(0.0)
    b.startup(0.0)
    t = 0.0
    for _ in range(200):
        t += 0.05
        for me, other, src in ((a, b, LOWER), (b, a, HIGHER)):
            for act in me.on_timer(t):
                if isinstance(act, SendAdvert):
                    other.on_advert(t, src=src, priority=act.priority, max_adver_int=1.0)
    assert b.state is State.MASTER and a.state is State.BACKUP
    # b resigns: a takes over after its skew time.
    for act in b.shutdown(t):
        if isinstance(act, SendAdvert):
            a.on_advert(t, src=HIGHER, priority=act.priority, max_adver_int=1.0)
    assert a.deadline() == pytest.approx(t + skew_time(100, 1.0))
    assert transitions(a.on_timer(t + skew_time(100, 1.0))) == [(State.BACKUP, State.MASTER, "master_down")]


def test_master_adverts_keep_their_period_when_the_timer_fires_late() -> None:
    f = fsm(255, interval=0.1)
    f.startup(0.0)
    late = 0.0
    for _ in range(10):  # every wakeup 0.7 ms late, as an asyncio loop does
        deadline = f.deadline()
        assert deadline is not None
        late = deadline + 0.0007
        assert sends(f.on_timer(late)) == [255]
    assert f.deadline() == pytest.approx(1.1)
    assert late == pytest.approx(1.0007)


def test_master_adverts_restart_from_now_after_a_long_stall() -> None:
    f = fsm(255, interval=0.1)
    f.startup(0.0)
    assert sends(f.on_timer(0.55)) == [255]  # four intervals missed: no catch-up burst
    assert f.deadline() == pytest.approx(0.65)
    assert f.on_timer(0.6) == []
