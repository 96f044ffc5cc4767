"""Benchmarks for router mode (P3 failover, P4 cold install, P6 drift repair). Not tests.

Each function builds its own lab namespaces (root needed), runs bounded iterations and returns
figures as a dict. `python -m watcher.routes.bench` runs all of them and prints JSON.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import statistics
import time
from typing import Any

from .._types import IPNetwork, NextHop, Target
from ..lab import Lab, MeshLab, build_mesh_lab
from .actuator import RoutesActuator
from .config import RoutesConfig

R1 = ("192.0.2.11", "2001:db8:1::b")
R2 = ("192.0.2.12", "2001:db8:1::c")


def _prefixes(count: int) -> tuple[IPNetwork, ...]:
    # /30s from the Mesh range: 100k of them fit in 100.96.0.0/12 (installed only in the bench's netns).
    start = int(ipaddress.IPv4Address("100.96.0.0"))
    return tuple(ipaddress.IPv4Network((start + (i << 2), 30)) for i in range(count))


def _target(replica: tuple[str, str], prefixes: tuple[IPNetwork, ...]) -> Target:
    hop = NextHop(replica[0], ipaddress.IPv4Address(replica[0]), ipaddress.IPv6Address(replica[1]))
    return Target(hop, "bench", prefixes=prefixes)


def _ms(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    p99 = values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]
    return {"p50_ms": statistics.median(values) * 1e3, "p99_ms": p99 * 1e3, "max_ms": values[-1] * 1e3}


def _lab(lab: Lab) -> MeshLab:
    return build_mesh_lab(lab, replicas=2)


async def _flips(mlab: MeshLab, count: int, flips: int, mode: str) -> dict[str, Any]:
    cfg = RoutesConfig(use_nexthop_objects=mode)  # type: ignore[arg-type]
    act = RoutesActuator(cfg, netns=mlab.router.netns)
    await act.start()
    prefixes = _prefixes(count)
    await act.apply(_target(R1, prefixes))
    times = []
    for i in range(flips):
        t0 = time.perf_counter()
        await act.apply(_target(R2 if i % 2 == 0 else R1, prefixes))
        times.append(time.perf_counter() - t0)
    await act.close(withdraw=True)
    return {"prefixes": count, "flips": flips, "mode": mode, **_ms(times)}


def bench_failover(prefix_counts: tuple[int, ...] = (1, 10_000), flips: int = 20) -> dict[str, Any]:
    """P3: apply() call to the kernel's ack, for a failover of N prefixes (both modes)."""
    out: dict[str, Any] = {}
    with Lab() as lab:
        mlab = _lab(lab)
        for count in prefix_counts:
            out[f"nexthop_objects_{count}"] = asyncio.run(_flips(mlab, count, flips, "on"))
            out[f"per_route_{count}"] = asyncio.run(_flips(mlab, count, min(flips, 6), "off"))
        # The kernel's compat mode re-announces every route of a replaced nexthop (inside our
        # ack's time); with it off a failover is one message per family end to end.
        mlab.router.sysctl("net.ipv4.nexthop_compat_mode", 0)
        for count in prefix_counts:
            out[f"nexthop_objects_{count}_compat_off"] = asyncio.run(_flips(mlab, count, flips, "on"))
    return out


async def _cold(mlab: MeshLab, count: int) -> float:
    act = RoutesActuator(RoutesConfig(), netns=mlab.router.netns)
    await act.start()
    t0 = time.perf_counter()
    await act.apply(_target(R1, _prefixes(count)))
    elapsed = time.perf_counter() - t0
    assert act.stats.routes_installed == count, act.stats
    await act.close(withdraw=True)
    return elapsed


def bench_cold_install(count: int = 100_000) -> dict[str, Any]:
    """P4: install `count` prefixes from nothing, ours vs `ip -batch` of the same routes."""
    cfg = RoutesConfig()
    with Lab() as lab:
        mlab = _lab(lab)
        ours = asyncio.run(_cold(mlab, count))
        router = mlab.router
        nh = cfg.nexthop_ids.ipv4
        router.ip("nexthop", "add", "id", str(nh), "via", R1[0], "dev", "eth1", "proto", "250")
        lines = "".join(f"route add {net} nhid {nh} proto 250 metric 1024\n" for net in _prefixes(count))
        t0 = time.perf_counter()
        router.run(["ip", "-batch", "-"], input_=lines, timeout=300)
        ip_batch = time.perf_counter() - t0
        installed = router.ip("route").stdout.count(f"nhid {nh}")
    return {
        "prefixes": count,
        "ours_seconds": ours,
        "ours_routes_per_s": count / ours,
        "ip_batch_seconds": ip_batch,
        "ip_batch_routes_per_s": count / ip_batch,
        "ip_batch_installed": installed,
        "speedup_vs_ip_batch": ip_batch / ours,
    }


async def _drift(mlab: MeshLab, iterations: int, count: int) -> dict[str, Any]:
    act = RoutesActuator(RoutesConfig(), netns=mlab.router.netns)
    await act.start()
    prefixes = _prefixes(count)
    await act.apply(_target(R1, prefixes))
    end_to_end: list[float] = []
    for i in range(iterations):
        net = str(prefixes[(i * 7919) % count])
        before = act.stats.repairs["route_replaced"]
        t0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            "ip", "-n", mlab.router.netns, "route", "replace", net, "via", "192.0.2.13", "metric", "1024"
        )  # fmt: skip
        await proc.wait()
        deadline = time.monotonic() + 5
        while act.stats.repairs["route_replaced"] == before and time.monotonic() < deadline:
            await asyncio.sleep(0.0005)
        end_to_end.append(time.perf_counter() - t0)
    latencies = list(act.stats.repair_latencies)[-iterations:]
    repaired = act.stats.repairs["route_replaced"]
    await act.close(withdraw=True)
    return {
        "iterations": iterations,
        "prefixes": count,
        "repaired": repaired,
        "event_to_ack": _ms(latencies) if latencies else None,
        "foreign_command_to_repair": _ms(end_to_end),
    }


def bench_drift_repair(iterations: int = 50, count: int = 10_000) -> dict[str, Any]:
    """P6: a foreign `ip route replace` of one of ours -> repaired (event read -> our ack)."""
    with Lab() as lab:
        return asyncio.run(_drift(_lab(lab), iterations, count))


def run_all() -> dict[str, Any]:
    return {
        "P3_failover": bench_failover(),
        "P4_cold_install": bench_cold_install(),
        "P6_drift_repair": bench_drift_repair(),
    }


if __name__ == "__main__":
    print(json.dumps(run_all(), indent=2))
