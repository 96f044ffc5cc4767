"""Install, failover, ownership, adoption, withdraw, fallback: against a real kernel in a lab netns."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable

import pytest

from watcher.lab import MeshLab
from watcher.routes import RoutesActuator, RoutesConfig, RoutesError, check_onlink
from watcher.routes._kernel import Kernel
from watcher.routes._netlink import NetlinkError
from watcher.routes._state import FamilyState, Outcome, nexthop_error, sync_nexthop

from ._helpers import NH4, NH6, R1, R2, Monitor, eventually, nets4, nets6, routes, target

MESH = ("100.96.0.0/12", "2001:db8:96::/48")


def _config(**kw: object) -> RoutesConfig:
    return RoutesConfig.model_validate({"prefixes": list(MESH), "reconcile_interval": 30, **kw})


def _foreign(mlab: MeshLab) -> list[str]:
    """Routes that are not ours: same table other dst, same dst other metric, another table."""
    r = mlab.router
    r.ip("route", "add", "203.0.113.0/24", "via", "192.0.2.13", "proto", "static")
    r.ip("route", "add", "100.96.0.0/12", "via", "192.0.2.13", "metric", "50", "proto", "static")
    r.ip("-6", "route", "add", "2001:db8:96::/48", "via", "2001:db8:1::d", "metric", "2000")
    r.ip("route", "add", "100.96.0.0/12", "via", "192.0.2.13", "table", "100", "proto", "250")
    r.ip("nexthop", "add", "id", "7", "via", "192.0.2.13", "dev", "eth1")
    r.ip("route", "add", "100.100.0.0/16", "nhid", "7")
    return sorted(_foreign_now(mlab))


def _foreign_now(mlab: MeshLab) -> list[str]:
    r = mlab.router
    lines = routes(r, "route", "show", "table", "all").splitlines() + routes(r, "-6", "route").splitlines()
    lines += routes(r, "nexthop").splitlines()
    return sorted(line.strip() for line in lines if "192.0.2.13" in line or "2001:db8:1::d" in line)


async def test_install_failover_withdraw_leave_foreign_routes(mlab: MeshLab) -> None:
    foreign = _foreign(mlab)
    act = RoutesActuator(_config(), netns=mlab.router.netns)
    await act.start()
    assert act.nexthop_objects
    await act.apply(target(R1, nets4(20) + nets6(5)))
    r = mlab.router
    v4, v6 = routes(r, "route"), routes(r, "-6", "route")
    assert f"100.96.0.0/12 nhid {NH4} via 192.0.2.11 dev eth1 proto 250 metric 1024" in v4
    assert f"2001:db8:96::/48 nhid {NH6} via 2001:db8:1::b dev eth1 proto 250 metric 1024" in v6
    assert v4.count(f"nhid {NH4}") == 21 and v6.count(f"nhid {NH6}") == 6
    assert act.stats.routes_installed == 27 and act.stats.errors == 0
    await act.apply(target(R2, nets4(10)))  # failover, and 10 + 5 learned prefixes withdrawn
    v4, v6 = routes(r, "route"), routes(r, "-6", "route")
    assert v4.count("via 192.0.2.12 dev eth1 proto 250") == 11 and "2001:db8:a:" not in v6
    assert "2001:db8:96::/48 nhid" in v6 and "via 2001:db8:1::c" in v6
    assert _foreign_now(mlab) == foreign
    await act.close(withdraw=True)
    assert "proto 250" not in routes(r, "route") and "proto 250" not in routes(r, "-6", "route")
    assert str(NH4) not in routes(r, "nexthop") and str(NH6) not in routes(r, "nexthop")
    assert _foreign_now(mlab) == foreign


async def test_failover_of_10k_prefixes_rewrites_one_nexthop_per_family(
    mlab: MeshLab, monitor: Callable[[], Monitor]
) -> None:
    act = RoutesActuator(_config(), netns=mlab.router.netns)
    await act.start()
    await act.apply(target(R1, nets4(10_000) + nets6(100)))
    assert act.stats.routes_installed == 10_102
    # In compat mode (the default) the kernel itself re-announces every route using a replaced
    # nexthop; off, the monitor shows exactly what changed.
    mlab.router.sysctl("net.ipv4.nexthop_compat_mode", 0)
    writes = act.stats.route_writes
    mon = monitor()
    await act.apply(target(R2, nets4(10_000) + nets6(100)))
    lines = mon.stop()
    assert act.stats.route_writes == writes and act.stats.nexthop_writes == 4
    assert len(lines) == 2, lines
    assert any(f"id {NH4} via 192.0.2.12" in line for line in lines)
    assert any(f"id {NH6} via 2001:db8:1::c" in line for line in lines)
    # (with compat mode off, route dumps no longer spell out the nexthop's gateway)
    assert routes(mlab.router, "route").count(f"nhid {NH4} proto 250 metric 1024") == 10_001
    assert "via 192.0.2.12 dev eth1" in routes(mlab.router, "route", "get", "100.96.6.49")
    await act.close()


_CHILD = """
import asyncio, sys
from watcher.routes import RoutesActuator, RoutesConfig
from tests.routes._helpers import R1, nets4, nets6, target
async def main():
    act = RoutesActuator(RoutesConfig(prefixes=["100.96.0.0/12", "2001:db8:96::/48"]), netns=sys.argv[1])
    await act.start()
    await act.apply(target(R1, nets4(500) + nets6(20)))
    print("ready", flush=True)
    await asyncio.sleep(60)
asyncio.run(main())
"""


async def test_restart_after_sigkill_adopts_without_kernel_changes(
    mlab: MeshLab, monitor: Callable[[], Monitor]
) -> None:
    child = subprocess.Popen(  # noqa: ASYNC220 - the child must outlive nothing: it is killed below
        [sys.executable, "-c", _CHILD, mlab.router.netns], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    before = routes(mlab.router, "route") + routes(mlab.router, "-6", "route")
    mon = monitor()
    act = RoutesActuator(_config(), netns=mlab.router.netns)
    await act.start()
    assert act.state()["families"]["ipv4"]["gateway"] == R1[0]  # adopted from the nexthop object
    await act.apply(target(R1, nets4(500) + nets6(20)))
    await act.reconcile()
    assert mon.stop() == []
    assert act.stats.route_writes == 0 and act.stats.nexthop_writes == 0 and act.stats.routes_installed == 522
    assert routes(mlab.router, "route") + routes(mlab.router, "-6", "route") == before
    await act.close()


async def test_close_without_withdraw_keeps_routes_and_fail_static(mlab: MeshLab) -> None:
    act = RoutesActuator(_config(), netns=mlab.router.netns)
    await act.start()
    await act.apply(target(R1, nets4(3)))
    before = routes(mlab.router, "route")
    await act.apply(target(None))  # nothing known
    await act.apply(target(R2, (), stale=True))  # the control plane is unreachable
    assert routes(mlab.router, "route") == before
    await act.close()
    assert routes(mlab.router, "route") == before and before.count("proto 250") == 4


async def test_fallback_without_nexthop_objects(mlab: MeshLab, monitor: Callable[[], Monitor]) -> None:
    # A previous run with nexthop objects: its objects must go once the routes no longer use them.
    first = RoutesActuator(_config(), netns=mlab.router.netns)
    await first.start()
    await first.apply(target(R1, nets4(50)))
    await first.close()
    foreign = _foreign(mlab)
    act = RoutesActuator(_config(use_nexthop_objects="off"), netns=mlab.router.netns)
    await act.start()
    assert not act.nexthop_objects
    await act.apply(target(R1, nets4(50)))
    await act.reconcile()
    r = mlab.router
    assert str(NH4) not in routes(r, "nexthop")
    v4 = routes(r, "route")
    assert "100.96.0.0/12 via 192.0.2.11 dev eth1 proto 250 metric 1024" in v4
    assert "nhid" not in v4.split("100.100.0.0/16")[0]
    mon = monitor()
    await act.apply(target(R2, nets4(50)))
    lines = mon.stop()
    assert sum("via 192.0.2.12" in line for line in lines) == 51 and not any("id " in ln[:40] for ln in lines)
    assert "2001:db8:96::/48 via 2001:db8:1::c dev eth1 proto 250 metric 1024" in routes(r, "-6", "route")
    r.ip("route", "del", "100.96.0.112/28", "metric", "1024")
    await eventually(lambda: "100.96.0.112/28 via 192.0.2.12" in routes(r, "route"), 5, "fallback repair")
    assert _foreign_now(mlab) == foreign
    await act.close(withdraw=True)
    assert "proto 250" not in routes(r, "route") and _foreign_now(mlab) == foreign


async def test_foreign_route_at_our_slot_and_foreign_nexthop_id_are_not_taken(mlab: MeshLab) -> None:
    r = mlab.router
    r.ip("route", "add", "100.96.0.0/12", "via", "192.0.2.13", "metric", "1024", "proto", "static")
    act = RoutesActuator(_config(), netns=r.netns)
    await act.start()
    await act.apply(target(R1, nets4(2)))
    assert "100.96.0.0/12 via 192.0.2.13 dev eth1 proto static metric 1024" in routes(r, "route")
    assert act.stats.route_conflicts == 1 and act.state()["families"]["ipv4"]["conflicts"] == 1
    await act.close(withdraw=True)
    assert "192.0.2.13" in routes(r, "route")
    r.ip("nexthop", "add", "id", str(NH6), "via", "2001:db8:1::d", "dev", "eth1")
    with pytest.raises(RoutesError, match=r"nexthop id 0x6d770006 exists with protocol .* not ours"):
        await RoutesActuator(_config(), netns=r.netns).start()


async def test_gateway_not_on_link_is_a_clear_error(mlab: MeshLab) -> None:
    ns = mlab.router.netns
    assert await check_onlink("192.0.2.11", ns) is None
    assert await check_onlink("2001:db8:1::c", ns) is None
    assert "is an address of this host" in (await check_onlink("192.0.2.1", ns) or "")
    assert "unreachable" in (await check_onlink("203.0.113.250", ns) or "")
    assert "must be a unicast address" in (await check_onlink("fe80::1", ns) or "")
    assert "does not exist" in (await check_onlink("192.0.2.11", "mwl-no-such-ns") or "")
    act = RoutesActuator(_config(), netns=ns)
    await act.start()
    await act.apply(target(R1, ()))
    with pytest.raises(
        RoutesError, match=r"replica 203\.0\.113\.250: next hop 203\.0\.113\.250 is unreachable"
    ):
        await act.apply(target(("203.0.113.250", R1[1]), ()))
    assert "via 192.0.2.11" in routes(mlab.router, "route")  # the old next hop stays
    await act.close()
    # The kernel's own verdict when the interface is wrong, mapped to a message that says why.
    kernel = await asyncio.to_thread(Kernel, ns)
    fam = FamilyState(2, 0x6D7700AA, act._spec, True, gw="192.0.2.11", oif=2)  # eth0: wrong LAN
    out = Outcome()
    sync_nexthop(kernel, fam, None, out)
    kernel.close()
    assert out.errors and "connected subnet" in out.errors[0] and "0x6d7700aa" in out.errors[0]
    assert "Invalid argument" in nexthop_error(fam, NetlinkError(22, "Nexthop has invalid gateway"))


_CYCLES = """
import asyncio, ipaddress, sys, time
from watcher._types import NextHop, Target
from watcher.routes import RoutesActuator, RoutesConfig

async def cycle(netns, i):
    act = RoutesActuator(RoutesConfig.model_validate({"prefixes": ["100.96.0.0/12"]}), netns=netns)
    await act.start()
    gw = ("192.0.2.11", "2001:db8:1::b") if i % 2 else ("192.0.2.12", "2001:db8:1::c")
    hop = NextHop(gw[0], ipaddress.IPv4Address(gw[0]), ipaddress.IPv6Address(gw[1]))
    await act.apply(Target(hop, "test"))
    await act.close(withdraw=i % 3 == 0)

worst = 0.0
for i in range(int(sys.argv[2])):
    t0 = time.monotonic()
    asyncio.run(cycle(sys.argv[1], i))  # the whole asyncio.run, executor shutdown included
    worst = max(worst, time.monotonic() - t0)
print(f"worst {worst:.3f}")
"""


def test_start_close_cycles_each_return_promptly(mlab: MeshLab) -> None:
    # Each cycle is its own asyncio.run(), as the benchmarks do: a hang in the loop's shutdown
    # (default executor) is a timeout here, in a child process that can be killed.
    proc = subprocess.run(
        [sys.executable, "-c", _CYCLES, mlab.router.netns, "25"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    worst = float(proc.stdout.split()[-1])
    assert worst < 10.0, proc.stdout  # seconds; a cycle takes ~50 ms
