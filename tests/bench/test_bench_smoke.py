"""`mesh-watcher bench` runs end to end and prints its table. Benchmarks are not tests: nothing
here asserts a timing, only that every figure was measured (samples taken, no figure missing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from watcher.bench._figures import histogram, histogram_delta, percentile
from watcher.bench._netns import NetnsHttp, NexthopMonitor
from watcher.lab import Lab

ROOT = Path(__file__).resolve().parents[2]
HEADER = "| figure | value | target | anchor | met? |"


def bench(*args: str, timeout: float = 170) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watcher", "bench", *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False,
    )  # fmt: skip


def rows(stdout: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip("|").split(" | ")]
        for line in stdout.splitlines()
        if line.startswith("| P")
    ]


@pytest.mark.netns
@pytest.mark.timeout(200)
def test_smoke_run_prints_every_figure(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the bench needs root")
    out_json, out_md = tmp_path / "bench.json", tmp_path / "bench.md"
    proc = bench("--smoke", "--only", "P1,P3,P4,P6,P7", "--json", str(out_json), "--markdown", str(out_md))
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    assert HEADER in proc.stdout
    table = rows(proc.stdout)
    assert {r[0].split()[0] for r in table} == {"P1", "P3", "P4", "P6", "P7"}, proc.stdout
    assert all(len(r) == 5 and r[1] != "not available" for r in table), proc.stdout
    assert out_md.read_text().strip() == proc.stdout.strip()

    figures = json.loads(out_json.read_text())["figures"]
    p1 = [f["data"] for f in figures if f["key"] == "P1"]
    # 2 sizes subscribed + 2 poll-only + the compat_mode=0 case, each with every promotion seen.
    assert len(p1) == 5
    for d in p1:
        assert d["misses"] == 0 and d["promotion_to_kernel"]["n"] >= 1, d
        assert d["nexthop_objects"] >= 1 and d["daemon_histogram"]["count"] >= 1, d
    p7 = next(f["data"] for f in figures if f["key"] == "P7")
    assert p7["rss_mb_max"] > 5 and p7["cpu_percent"] >= 0 and p7["api_requests_per_s"] > 0, p7
    p4 = next(f["data"] for f in figures if f["key"] == "P4")
    assert p4["ip_batch_installed"] == p4["prefixes"] == 1000


@pytest.mark.netns
@pytest.mark.timeout(200)
def test_smoke_vip_figures(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the bench needs root")
    out_json = tmp_path / "bench.json"
    proc = bench("--smoke", "--only", "P5", "--json", str(out_json))
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    table = rows(proc.stdout)
    assert [r[0].split()[0] for r in table] == ["P5"] * 3, proc.stdout
    assert all(r[1] != "not available" for r in table), proc.stdout
    # The end-to-end figure: every promotion made the new master answer on the VIP.
    e2e = [f["data"] for f in json.loads(out_json.read_text())["figures"] if "promotion_to_vip" in f["data"]]
    assert len(e2e) == 1 and e2e[0]["misses"] == 0 and e2e[0]["promotion_to_vip"]["n"] == 2, e2e


def test_only_rejects_unknown_figures() -> None:
    proc = bench("--only", "P1,P2")
    assert proc.returncode == 2
    assert "P2" in proc.stderr and "P1,P3,P4,P5,P6,P7" in proc.stderr


def test_nexthop_monitor_times_the_kernel_announcement(lab: Lab) -> None:
    host = lab.add_host("r")
    lab.add_switch("lan")
    lab.connect(host, "lan", ["192.0.2.1/24", "2001:db8:1::1/64"])
    mon = NexthopMonitor(host)
    try:
        mark = mon.mark()
        host.ip("nexthop", "add", "id", "4711", "via", "192.0.2.11", "dev", "eth0")
        host.ip("nexthop", "add", "id", "4712", "via", "2001:db8:1::b", "dev", "eth0")
        assert mon.wait_for(mark, {4711: "192.0.2.11", 4712: "2001:db8:1::b"}, 5) is not None
        mark = mon.mark()
        host.ip("nexthop", "replace", "id", "4711", "via", "192.0.2.12", "dev", "eth0")
        # Only events after the mark count, and the gateway must match.
        assert mon.wait_for(mark, {4711: "192.0.2.11"}, 0.3) is None
        assert mon.wait_for(mark, {4711: "192.0.2.12"}, 5) is not None
    finally:
        mon.close()


def test_netns_http_reaches_a_server_inside_the_namespace(lab: Lab, tmp_path: Path) -> None:
    # The server exists only inside the namespace (a fresh one: a fixed port cannot clash there).
    host = lab.add_host("srv")
    (tmp_path / "probe.txt").write_text("inside\n")
    argv = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "8000"]
    server = host.popen(argv, cwd=str(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    http = NetnsHttp(host, "127.0.0.1", 8000)
    try:
        lab.wait_for(lambda: http.get_text("/probe.txt") == "inside\n", timeout=15)
        assert http.get_text("/missing") is None  # a 404 is "nothing", not an exception
    finally:
        server.kill()


def test_percentile_and_histogram_delta() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0 and percentile([1.0, 2.0], 99) == 2.0
    text_a = (
        'h_bucket{le="0.01"} 1.0\nh_bucket{le="0.1"} 2.0\nh_bucket{le="+Inf"} 2.0\nh_sum 0.05\nh_count 2.0\n'
    )
    text_b = (
        'h_bucket{le="0.01"} 1.0\nh_bucket{le="0.1"} 4.0\nh_bucket{le="+Inf"} 5.0\nh_sum 1.25\nh_count 5.0\n'
    )
    delta = histogram_delta(histogram(text_a, "h"), histogram(text_b, "h"))
    assert delta == {"count": 3, "mean_ms": 400.0, "p50_le_ms": 100.0, "p99_le_ms": None}


def test_a_figure_that_fails_is_reported_not_available(monkeypatch: pytest.MonkeyPatch) -> None:
    from watcher.bench import _others, _run

    def broken(count: int) -> list[object]:
        raise RuntimeError("no kernel today\nsecond line")

    monkeypatch.setattr(_others, "figures_p4", broken)
    _run._failed.clear()
    figures = _run.run(("P4",), _run.SMOKE)
    assert [(f.key, f.value) for f in figures] == [("P4", "not available")]
    assert figures[0].anchor == "failed: RuntimeError: no kernel today" and figures[0].met is None
    assert _run._failed == ["P4"]
