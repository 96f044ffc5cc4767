"""P3, P4, P6 (watcher.routes.bench) and P5 (watcher.vip.bench) as report rows.

Those modules own the measurements and return raw numbers (each call runs in a child process,
see _isolate); this module only chooses the sizes, turns the numbers into rows beside their
targets and anchors, and says "not available" when a benchmark is missing from this tree.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._figures import Figure, fmt_ms, unavailable
from ._isolate import call
from ._stack import progress

_ROUTES = "watcher.routes.bench"
P3_TARGET_MS = 5.0
P6_TARGET_MS = 50.0
P5_PROMOTION_TARGET_MS = 50.0


def _p50_p99(d: dict[str, Any]) -> str:
    return f"p50 {fmt_ms(d['p50_ms'])}, p99 {fmt_ms(d['p99_ms'])}"


def figures_p3(counts: tuple[int, int], flips: int) -> list[Figure]:
    small, large = counts
    progress(f"P3 failover flip, {small} and {large} prefixes: {flips} flips (nexthop objects, per-route)")
    res = call(_ROUTES, "bench_failover", {"prefix_counts": [small, large], "flips": flips}, 600)
    out = []
    for count, key, label in (
        (large, f"nexthop_objects_{large}", "nexthop_compat_mode=1 (kernel default)"),
        (large, f"nexthop_objects_{large}_compat_off", "nexthop_compat_mode=0"),
        (small, f"nexthop_objects_{small}", "nexthop_compat_mode=1 (kernel default)"),
    ):
        d = res[key]
        per_route = res[f"per_route_{count}"]
        anchor = f"per-route replace (fallback): {_p50_p99(per_route)}"
        if key.endswith("compat_off"):
            anchor = f"compat_mode=1: {_p50_p99(res[f'nexthop_objects_{large}'])}; " + anchor
        out.append(
            Figure(
                "P3",
                f"failover flip (apply → kernel ack), {count} prefix{'es' if count != 1 else ''}, {label}",
                f"{_p50_p99(d)} (n={d['flips']})",
                f"≤ {P3_TARGET_MS:g} ms (p99)",
                anchor,
                d["p99_ms"] <= P3_TARGET_MS,
                {"result": d, "anchor": per_route},
            )
        )
    return out


def figures_p4(count: int) -> list[Figure]:
    progress(f"P4 cold install of {count} prefixes, ours then `ip -batch`")
    res = call(_ROUTES, "bench_cold_install", {"count": count}, 600)
    return [
        Figure(
            "P4",
            f"cold install of {count} prefixes",
            f"{res['ours_routes_per_s']:,.0f} routes/s ({res['ours_seconds']:.2f} s)",
            "≥ `ip -batch`'s rate",
            f"`ip -batch`: {res['ip_batch_routes_per_s']:,.0f} routes/s ({res['ip_batch_seconds']:.2f} s);"
            f" ours is {res['speedup_vs_ip_batch']:.2f} times that",
            res["speedup_vs_ip_batch"] >= 1.0,
            res,
        )
    ]


def figures_p6(iterations: int, count: int) -> list[Figure]:
    progress(f"P6 drift repair: {iterations} foreign `ip route replace` of owned routes ({count} installed)")
    res = call(_ROUTES, "bench_drift_repair", {"iterations": iterations, "count": count}, 600)
    missed = res["iterations"] - res["repaired"]
    note = f", {missed} not repaired" if missed > 0 else ""
    anchor = "periodic full reconcile (backstop): every 30 s"
    out = []
    ev = res.get("event_to_ack")
    if ev:
        out.append(
            Figure(
                "P6",
                "drift repair, drift event read → repair acked by the kernel",
                f"{_p50_p99(ev)} (n={res['iterations']}{note})",
                f"≤ {P6_TARGET_MS:g} ms (p99)",
                anchor,
                ev["p99_ms"] <= P6_TARGET_MS and missed <= 0,
                res,
            )
        )
    e2e = res["foreign_command_to_repair"]
    out.append(
        Figure(
            "P6",
            "drift repair, foreign `ip route replace` spawned → repaired (incl. the `ip` process)",
            f"{_p50_p99(e2e)} (n={res['iterations']}{note})",
            f"≤ {P6_TARGET_MS:g} ms (p99)",
            anchor,
            e2e["p99_ms"] <= P6_TARGET_MS and missed <= 0,
            res,
        )
    )
    return out


def figures_p5(iterations: int) -> list[Figure]:
    name = "VIP takeover after the master host dies, 0.1 s adverts"
    prom = "VIP moves on a priority raise (standalone VRRP: SIGUSR1 → first echo reply from the new master)"
    try:
        if not callable(getattr(importlib.import_module("watcher.vip.bench"), "bench_vip", None)):
            raise AttributeError("watcher.vip.bench has no bench_vip()")
    except (ImportError, AttributeError) as exc:
        why = f"watcher.vip.bench not available ({exc})"
        return [
            unavailable("P5", name, "ours/keepalived ≤ 1.0", why),
            unavailable("P5", prom, "≤ 50 ms", why),
        ]
    progress(f"P5 VIP takeover, ours and keepalived: {iterations} iterations each")
    res: dict[str, Any] = call(
        "watcher.vip.bench", "bench_vip", {"iterations": iterations, "interval": 0.1}, 900
    )
    ours, ka = res["ours"], res["keepalived"]

    def med(d: dict[str, Any]) -> str:
        if not d.get("n"):
            return "no samples"
        return f"median {fmt_ms(d['median_ms'])}, max {fmt_ms(d['max_ms'])} (n={d['n']})"

    ratio = res.get("takeover_ratio_ours_over_keepalived")
    takeover = Figure(
        "P5",
        name,
        med(ours["takeover"]) + (f", ratio {ratio:.2f}" if ratio is not None else ""),
        "ours/keepalived ≤ 1.0 (medians)",
        f"keepalived 2.2.7, same settings: {med(ka['takeover'])}",
        None if ratio is None else ratio <= 1.0,
        res,
    )
    move = ours["priority_move"]
    promotion = Figure(
        "P5",
        prom,
        med(move),
        f"≤ {P5_PROMOTION_TARGET_MS:g} ms (median)",
        f"keepalived, priority via track_file: {med(ka['priority_move'])}",
        None if not move.get("n") else move["median_ms"] <= P5_PROMOTION_TARGET_MS,
        res,
    )
    return [takeover, promotion]
