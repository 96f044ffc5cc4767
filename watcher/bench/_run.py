"""The `mesh-watcher bench` run: pick the figures, run each in its own lab, print the table.

A figure that fails to run becomes a "not available" row with the reason (and the exit code is 1);
the others still run. Targets not met are reported, not errors: the exit code stays 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..lab import Lab
from ._figures import Figure, markdown_table, unavailable
from ._stack import BenchStack, progress

ALL = ("P1", "P3", "P4", "P5", "P6", "P7")
_NAMES = {  # (name, target) of a figure that could not be measured
    "P1": ("promotion → kernel converged", "p99 ≤ 20 ms subscribed"),
    "P3": ("failover flip", "≤ 5 ms"),
    "P4": ("cold install", "≥ `ip -batch`'s rate"),
    "P5": ("VIP takeover / promotion → VIP answering", "ours/keepalived ≤ 1.0; ≤ 50 ms"),
    "P6": ("drift repair", "≤ 50 ms"),
    "P7": ("watcher RSS and idle CPU", "≤ 60 MB, ≤ 0.5 %"),
}


@dataclass(frozen=True)
class Plan:
    p1_sizes: tuple[int, ...]
    p1_sub_iters: int
    p1_poll_iters: int
    p7_window: float
    p3_counts: tuple[int, int]  # (small, large)
    p3_flips: int
    p4_count: int
    p5_iters: int
    p5_promotions: int
    p6_iters: int
    p6_count: int


FULL = Plan((1, 1_000, 10_000), 200, 15, 30.0, (1, 10_000), 50, 100_000, 5, 20, 100, 10_000)
QUICK = Plan((1, 1_000, 10_000), 10, 3, 10.0, (1, 10_000), 10, 100_000, 2, 5, 20, 10_000)
# Checks that every part runs end to end; its numbers mean nothing.
SMOKE = Plan((1, 100), 2, 1, 2.0, (1, 100), 2, 1_000, 1, 2, 3, 100)


def parse_only(text: str | None) -> tuple[str, ...]:
    if not text:
        return ALL
    wanted = [w.strip().upper() for w in text.split(",") if w.strip()]
    bad = [w for w in wanted if w not in ALL]
    if bad or not wanted:
        raise ValueError(f"--only {text!r}: unknown figure(s) {', '.join(bad) or '(none given)'}; "
                         f"choose from {','.join(ALL)}")  # fmt: skip
    return tuple(w for w in ALL if w in wanted)


def _meta(kind: str, only: tuple[str, ...]) -> dict[str, Any]:
    rev = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout.strip()  # fmt: skip
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "load_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "revision": rev or None,
        "run": kind,
        "only": list(only),
    }


def _lab_figures(only: tuple[str, ...], plan: Plan) -> list[Figure]:
    """P1 and P7 share one mesh lab (control plane, agents, daemon restarted per case)."""
    from ._p1 import figures_p1
    from ._p7 import figures_p7

    out: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="mwbench") as tmp, Lab() as lab:
        progress("building the mesh lab: control plane in the router namespace, 3 replica agents")
        stack = BenchStack(lab, Path(tmp))
        try:
            stack.start()
        except Exception as exc:  # without the lab neither figure can run; say so for both
            return [_failure(k, exc) for k in ("P1", "P7") if k in only]
        try:
            if "P1" in only:
                out += _guard(
                    "P1",
                    lambda: figures_p1(stack, plan.p1_sizes, plan.p1_sub_iters, plan.p1_poll_iters, True),
                )
            if "P7" in only:
                out += _guard("P7", lambda: figures_p7(stack, plan.p7_window))
        finally:
            stack.stop_daemon()
    return out


_failed: list[str] = []


def _failure(key: str, exc: Exception) -> Figure:
    traceback.print_exception(exc, file=sys.stderr)
    _failed.append(key)
    why = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return unavailable(key, *_NAMES[key], why[:300])


def _guard(key: str, fn: Callable[[], list[Figure]]) -> list[Figure]:
    try:
        return fn()
    except Exception as exc:  # one broken figure must not lose the others
        return [_failure(key, exc)]


def run(only: tuple[str, ...], plan: Plan) -> list[Figure]:
    from ._others import figures_p3, figures_p4, figures_p5, figures_p6
    from ._vip import figures_vip_promotion

    figures: list[Figure] = []
    if "P1" in only or "P7" in only:
        figures += _lab_figures(only, plan)
    steps: dict[str, Callable[[], list[Figure]]] = {
        "P3": lambda: figures_p3(plan.p3_counts, plan.p3_flips),
        "P4": lambda: figures_p4(plan.p4_count),
        "P5": lambda: (
            _guard("P5", lambda: figures_p5(plan.p5_iters))
            + _guard("P5", lambda: figures_vip_promotion(plan.p5_promotions))
        ),
        "P6": lambda: figures_p6(plan.p6_iters, plan.p6_count),
    }
    for key, step in steps.items():
        if key in only:
            figures += _guard(key, step)
    return sorted(figures, key=lambda f: f.key)  # stable: keeps each figure's own row order


def render(meta: dict[str, Any], figures: list[Figure], seconds: float) -> str:
    head = (
        f"mesh-watcher bench ({meta['run']} run) — {meta['date']}, kernel {meta['kernel']}, "
        f"{meta['cpus']} CPUs, load at start/end {meta['load_at_start'][0]}/{meta['load_at_end'][0]}, "
        f"revision {meta['revision']}, {seconds:.0f} s"
    )
    return head + "\n\n" + markdown_table(figures) + "\n"


def _terminate(signum: int, frame: object) -> None:
    # Unwind like Ctrl-C, so every lab (namespaces and the processes in them) is removed.
    raise KeyboardInterrupt


def main(args: argparse.Namespace) -> int:
    try:
        only = parse_only(args.only)
    except ValueError as exc:
        print(f"mesh-watcher bench: {exc}", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("mesh-watcher bench: needs root (it builds network namespaces)", file=sys.stderr)
        return 2
    plan = SMOKE if args.smoke else QUICK if args.quick else FULL
    meta = _meta("smoke" if args.smoke else "quick" if args.quick else "full", only)
    _failed.clear()
    if not getattr(args, "verbose", 0):
        # The actuators under test log each repair and flip; the table is the output here.
        logging.getLogger("watcher.routes").setLevel(logging.ERROR)
    start = time.monotonic()
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        figures = run(only, plan)
    finally:
        signal.signal(signal.SIGTERM, previous)
    seconds = time.monotonic() - start
    meta["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    text = render(meta, figures, seconds)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)
    if args.json:
        doc = {"meta": {**meta, "seconds": round(seconds, 1), "plan": plan.__dict__},
               "figures": [f.as_dict() for f in figures]}  # fmt: skip
        Path(args.json).write_text(json.dumps(doc, indent=2, default=str) + "\n")
    progress(f"done in {seconds:.0f} s")
    return 1 if _failed else 0
