"""P1: promotion -> kernel converged, for N prefixes, subscribed (SSE) and poll-only.

t0 = just before `PUT …/failover` is written to an already-connected socket; t1 = when the
bench's own netlink monitor in the router namespace reads the kernel's RTM_NEWNEXTHOP for every
nexthop object of the watcher now pointing at the promoted replica. Both are this process's
time.monotonic(). The watcher's own convergence histogram (trigger -> kernel ack) is read from
/metrics before and after the iterations, for comparison.
"""

from __future__ import annotations

import ipaddress
import random
import time
from dataclasses import dataclass
from typing import Any

from ._figures import Figure, fmt_hist, fmt_ms, histogram, histogram_delta, p50_p99, summary_ms
from ._host import HostLoad
from ._netns import NexthopMonitor
from ._sse import EventListener
from ._stack import BenchStack, progress, wait

HIST = "mesh_watcher_convergence_seconds"
TARGET_P99_MS = 20.0
_LABELS = {
    "auto": "subscribed (SSE)",
    "off": "poll-only (2 s)",
    "compat0": "subscribed, nexthop_compat_mode=0",
}
_ORDER = {"auto": 0, "compat0": 1, "off": 2}
_MESH = ipaddress.IPv4Network("100.96.0.0/12")


def bench_prefixes(count: int) -> list[str]:
    """`count` /28s carved from 100.96.0.0/12 (65536 fit): used only inside the lab's router."""
    if not 1 <= count <= 65536:
        raise ValueError(f"prefix count {count} is outside 1..65536")
    base = int(_MESH.network_address)
    return [str(ipaddress.IPv4Network((base + 16 * i, 28))) for i in range(count)]


SATURATED_PCT = 90.0  # host CPU busy at or above this during an iteration: "saturated"


@dataclass
class _Probes:
    monitor: NexthopMonitor
    events: EventListener
    load: HostLoad


def _one(
    stack: BenchStack, probes: _Probes, nhs: dict[int, int], to: int, timeout: float
) -> tuple[float | None, float, float | None]:
    """(t1 - t0 or None when the kernel did not converge in time, PUT answered, event heard)."""
    monitor = probes.monitor
    wanted = {nh: stack.gateway(to, family) for nh, family in nhs.items()}
    method, path, body = stack.failover_request(to)
    conn = stack.cp_http.connection()  # connected before t0: the figure has no TCP handshake
    try:
        mark, ev_mark = monitor.mark(), probes.events.mark()
        t0 = time.monotonic()
        conn.request(method, path, body=body, headers=stack.cp_http.headers(body))
        resp = conn.getresponse()
        data = resp.read()
        answered = time.monotonic() - t0
    finally:
        conn.close()
    if resp.status != 200:
        raise RuntimeError(f"PUT failover -> HTTP {resp.status}: {data[:300]!r}")
    t1 = monitor.wait_for(mark, wanted, timeout)
    heard = probes.events.wait_for(ev_mark, stack.replica_ids[to], 1.0 if t1 is not None else 0.0)
    return (None if t1 is None else t1 - t0), answered, (None if heard is None else heard - t0)


def measure(
    stack: BenchStack,
    probes: _Probes,
    count: int,
    *,
    subscribe: str,
    iterations: int,
    poll_interval: float = 2.0,
    seed: int = 1,
) -> dict[str, Any]:
    """Run `iterations` promotions against a watcher routing `count` prefixes; returns figures."""
    config = stack.write_config(bench_prefixes(count), subscribe=subscribe, poll_interval=poll_interval)
    stack.start_daemon(config)
    try:
        nhs = stack.our_nexthops()
        if not nhs:
            raise RuntimeError("the watcher installed no nexthop objects (protocol 250): nothing to time")
        n_replicas = len(stack.mesh.replicas)
        current = wait(stack.active_index, 10, "an active replica")
        before = histogram(stack.metrics_text(), HIST)
        rng = random.Random(seed)
        samples: list[float] = []
        answers: list[float] = []
        heard: list[float] = []
        after_event: list[float] = []
        calm: list[float] = []  # iterations during which the host had CPU to spare
        saturated = 0
        misses = 0
        # Subscribed: the event arrives at once. Poll-only: up to one interval, plus slack.
        timeout = 5.0 if subscribe != "off" else poll_interval * 2 + 5.0
        for _ in range(iterations):
            to = current % n_replicas + 1
            started = time.monotonic()
            got, answered, event = _one(stack, probes, nhs, to, timeout)
            busy = probes.load.busiest(started, time.monotonic())
            if busy is not None and busy >= SATURATED_PCT:
                saturated += 1
            elif got is not None:
                calm.append(got)
            answers.append(answered)
            if event is not None:
                heard.append(event)
                if got is not None:
                    after_event.append(got - event)
            if got is None:
                misses += 1
            else:
                samples.append(got)
            current = to
            want = stack.replica_ids[to]
            wait(lambda w=want: stack.daemon_target() == w, 15, "watcher in sync", 0.02)  # type: ignore[misc]
            # A random gap so promotions land at every phase of the poll cycle (and of heartbeats).
            time.sleep(rng.uniform(0.05, 0.3) if subscribe != "off" else rng.uniform(0.0, poll_interval))
        after = histogram(stack.metrics_text(), HIST)
    finally:
        stack.stop_daemon()
    return {
        "prefixes": count,
        "subscribe": subscribe,
        "poll_interval_s": poll_interval,
        "nexthop_objects": len(nhs),
        "misses": misses,
        "monitor_overruns": probes.monitor.overruns,
        "promotion_to_kernel": summary_ms(samples),
        "daemon_histogram": histogram_delta(before, after),
        # Context: when the control plane answered the PUT (the kernel may converge before that).
        "put_answered": summary_ms(answers),
        # Breakdown, from a second subscriber to the event stream in this process: PUT -> the
        # `promoted` event delivered, and that event -> kernel converged (the watcher's share).
        "event_heard": summary_ms(heard),
        "event_to_kernel": summary_ms(after_event),
        # The host's CPUs (shared with everything else) were >= 90 % busy during this many
        # iterations; the figure over the others says what the watcher does with CPU to spare.
        "host_saturated_iterations": saturated,
        "promotion_to_kernel_host_not_saturated": summary_ms(calm),
    }


def figures_p1(
    stack: BenchStack, sizes: tuple[int, ...], sub_iters: int, poll_iters: int, compat_off: bool
) -> list[Figure]:
    """P1 rows: each size subscribed (beside its poll-only anchor), then poll-only."""
    probes = _Probes(
        NexthopMonitor(stack.router), EventListener(stack.cp_http, stack.events_path()), HostLoad()
    )
    results: dict[tuple[int, str], dict[str, Any]] = {}
    try:
        for mode, iters in (("off", poll_iters), ("auto", sub_iters)):
            for count in sizes:
                progress(f"P1 {count} prefixes, {_LABELS[mode]}: {iters} promotions")
                results[(count, mode)] = measure(stack, probes, count, subscribe=mode, iterations=iters)
        if compat_off:
            count = max(sizes)
            progress(f"P1 {count} prefixes, subscribed, nexthop_compat_mode=0: {sub_iters} promotions")
            stack.router.sysctl("net.ipv4.nexthop_compat_mode", 0)
            try:
                results[(count, "compat0")] = measure(
                    stack, probes, count, subscribe="auto", iterations=sub_iters
                )
            finally:
                stack.router.sysctl("net.ipv4.nexthop_compat_mode", 1)
    finally:
        probes.monitor.close()
        probes.events.close()
        probes.load.close()
    out: list[Figure] = []
    for (count, mode), res in sorted(results.items(), key=lambda kv: (_ORDER[kv[0][1]], kv[0][0])):
        stats = res["promotion_to_kernel"]
        value = p50_p99(stats) + (f", {res['misses']} missed" if res["misses"] else "")
        calm = res["promotion_to_kernel_host_not_saturated"]
        if res["host_saturated_iterations"] and calm.get("n"):
            value += (
                f"; host CPUs ≥ {SATURATED_PCT:g} % busy in {res['host_saturated_iterations']} of them,"
                f" the other {calm['n']}: p99 {fmt_ms(calm['p99_ms'])}"
            )
        label = _LABELS[mode]
        name = f"promotion → kernel converged, {count} prefix{'es' if count != 1 else ''}, {label}"
        if mode == "off":
            target, met = "— (bounded by the 2 s poll)", None
            anchor = fmt_hist(res["daemon_histogram"]) + " (from the poll tick)"
        else:
            poll = results.get((count, "off"), {}).get("promotion_to_kernel", {})
            parts = [f"poll-only p50 {fmt_ms(poll.get('p50_ms'))}"] if poll.get("n") else []
            heard, rest = res["event_heard"], res["event_to_kernel"]
            if heard.get("n") and rest.get("n"):
                parts.append(
                    f"split: PUT → event p50/p99 {fmt_ms(heard['p50_ms'])}/{fmt_ms(heard['p99_ms'])},"
                    f" event → kernel {fmt_ms(rest['p50_ms'])}/{fmt_ms(rest['p99_ms'])}"
                )
            anchor = "; ".join([*parts, fmt_hist(res["daemon_histogram"])])
            target = f"p99 ≤ {TARGET_P99_MS:g} ms"
            met = bool(stats.get("n")) and not res["misses"] and stats["p99_ms"] <= TARGET_P99_MS
        out.append(Figure("P1", name, value, target, anchor, met, res))
    return out
