"""Benchmark (not a test): request latency of a real control-plane process.

    .venv/bin/python tests/controlplane/bench_controlplane.py [N]

Prints heartbeat and manual-failover latency (p50/p99). Nothing is asserted: figures for the report.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx


def _measure(label: str, call: Callable[[], httpx.Response], n: int) -> None:
    lat = []
    t0 = time.perf_counter()
    for _ in range(n):
        start = time.perf_counter()
        resp = call()
        lat.append(time.perf_counter() - start)
        assert resp.status_code == 200, resp.text
    elapsed = time.perf_counter() - t0
    lat.sort()
    p50, p99 = lat[n // 2] * 1000, lat[int(n * 0.99)] * 1000
    print(f"{label:<40} {n / elapsed:7.0f}/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")


def main(n: int = 1000) -> None:
    state = Path(tempfile.mkdtemp(prefix="mw-bench-"))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "watcher",
            "control-plane",
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            str(state),
            "--detection-timeout",
            "60",
            "--heartbeat-interval",
            "1",
            "--rate-limit",
            "0",  # a benchmark is far over any client's budget
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        match = re.search(r"http://\S+", proc.stdout.readline())
        assert match, "control plane did not start"
        admin = {"Authorization": f"Bearer {(state / 'admin.token').read_text().strip()}"}
        c = httpx.Client(base_url=match.group(0) + "/client/v4", timeout=10)
        acc = c.get("/accounts", headers=admin).json()["result"][0]["id"]
        nid = c.post(f"/accounts/{acc}/warp_connector", json={"name": "bench", "ha": True}, headers=admin)
        node = nid.json()["result"]["id"]
        tok = c.get(f"/accounts/{acc}/warp_connector/{node}/token", headers=admin).json()["result"]
        agent = {"Authorization": f"Bearer {tok}"}
        rids = [
            c.post("/connector/register", json={}, headers=agent).json()["result"]["replica_id"]
            for _ in range(3)
        ]
        i = iter(range(10**9))
        _measure(
            "heartbeat (keep-alive)",
            lambda: c.post(f"/connector/{rids[next(i) % 3]}/heartbeat", json={}, headers=agent),
            n,
        )
        _measure(
            "GET connections (3 replicas)",
            lambda: c.get(f"/accounts/{acc}/warp_connector/{node}/connections", headers=admin),
            n,
        )
        _measure(
            "PUT failover (SQLite commit, FULL)",
            lambda: c.put(
                f"/accounts/{acc}/warp_connector/{node}/failover",
                json={"client_id": rids[next(i) % 3]},
                headers=admin,
            ),
            max(1, n // 5),
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
