"""P7: the watcher's resident memory and idle CPU (router mode, subscribed, 2 s poll, 1 prefix).

Read from /proc/PID/status (VmRSS, VmHWM) and /proc/PID/stat (utime + stime, in clock ticks) over
a bounded window after the daemon is in sync and has settled. Anchor: a bare Python interpreter's
RSS on this host, measured in the same run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

from ._figures import Figure
from ._p1 import bench_prefixes
from ._stack import BenchStack, progress

RSS_TARGET_MB = 60.0
CPU_TARGET_PCT = 0.5


def _status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no {key}")


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        # Fields after the command name (which may hold spaces): state is [0], utime [11], stime [12].
        fields = fh.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _counter_sum(text: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


def _bare_python_rss_mb() -> float:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.5)
        return _status_kb(proc.pid, "VmRSS") / 1024
    finally:
        proc.kill()
        proc.wait(timeout=5)


def measure(stack: BenchStack, window: float, settle: float = 3.0) -> dict[str, Any]:
    proc = stack.start_daemon(stack.write_config(bench_prefixes(1), subscribe="auto", poll_interval=2.0))
    try:
        pid = proc.pid  # `ip netns exec` execs the command: this pid is the daemon itself
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            if b"watcher" not in fh.read():
                raise RuntimeError(f"pid {pid} is not the watcher")
        time.sleep(settle)
        req0 = _counter_sum(stack.metrics_text(), "mesh_watcher_api_requests_total")
        ticks0, t0 = _cpu_ticks(pid), time.monotonic()
        rss: list[int] = []
        end = t0 + window
        while time.monotonic() < end:
            rss.append(_status_kb(pid, "VmRSS"))
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
        ticks1, t1 = _cpu_ticks(pid), time.monotonic()
        hwm = _status_kb(pid, "VmHWM")
        req1 = _counter_sum(stack.metrics_text(), "mesh_watcher_api_requests_total")
    finally:
        stack.stop_daemon()
    cpu_s = (ticks1 - ticks0) / os.sysconf("SC_CLK_TCK")
    return {
        "window_s": round(t1 - t0, 1),
        "rss_mb_max": round(max(rss) / 1024, 1),
        "rss_mb_last": round(rss[-1] / 1024, 1),
        "rss_peak_since_start_mb": round(hwm / 1024, 1),
        "cpu_seconds": cpu_s,
        "cpu_percent": round(cpu_s / (t1 - t0) * 100, 3),
        # Shows the 2 s poll was running during the window (≈ 0.5 requests/s).
        "api_requests_per_s": round((req1 - req0) / (t1 - t0), 2),
    }


def figures_p7(stack: BenchStack, window: float) -> list[Figure]:
    progress(f"P7 watcher footprint: {window:g} s idle window at a 2 s poll, subscribed")
    res = measure(stack, window)
    res["bare_python_rss_mb"] = round(_bare_python_rss_mb(), 1)
    rss = Figure(
        "P7",
        "watcher RSS (router mode, subscribed, 2 s poll)",
        f"{res['rss_mb_max']:.1f} MB (peak since start {res['rss_peak_since_start_mb']:.1f} MB)",
        f"≤ {RSS_TARGET_MB:g} MB",
        f"bare Python interpreter: {res['bare_python_rss_mb']:.1f} MB",
        res["rss_mb_max"] <= RSS_TARGET_MB,
        res,
    )
    cpu = Figure(
        "P7",
        "watcher idle CPU (same daemon)",
        f"{res['cpu_percent']:.2f} % ({res['cpu_seconds']:.2f} s CPU over {res['window_s']:g} s,"
        f" {res['api_requests_per_s']:g} API requests/s)",
        f"≤ {CPU_TARGET_PCT:g} %",
        f"clock-tick resolution {100 / os.sysconf('SC_CLK_TCK') / res['window_s']:.2f} %",
        res["cpu_percent"] <= CPU_TARGET_PCT,
        res,
    )
    return [rss, cpu]
