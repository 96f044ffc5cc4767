"""Shipped artifacts: Prometheus rules (promtool) and systemd units (systemd-analyze verify)."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "contrib" / "prometheus"
UNITS = sorted((ROOT / "systemd").glob("*.service"))


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool not installed")
def test_promtool_check_rules() -> None:
    proc = subprocess.run(["promtool", "check", "rules", str(PROM / "alerts.yml")],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 8 rules found" in proc.stdout


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool not installed")
def test_promtool_test_rules() -> None:
    proc = subprocess.run(["promtool", "test", "rules", "alerts_test.yml"], cwd=PROM,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_alerts_use_metrics_the_daemon_exports() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from watcher.daemon.metrics import Metrics

    m = Metrics(CollectorRegistry(), node="n", version="1")
    m.external.routes = lambda: {"managed_routes": 0, "drift_repairs": {}}
    m.failovers.labels("initial")
    m.nexthop_healthy.labels("r")
    m.set_active(None)
    exported = generate_latest(m.registry).decode()
    rules = (PROM / "alerts.yml").read_text()
    names = (
        "mesh_watcher_replicas", "mesh_watcher_control_plane_up", "mesh_watcher_nexthop_healthy",
        "mesh_watcher_failovers_total", "mesh_watcher_drift_repairs_total", "mesh_watcher_apply_errors_total",
        "mesh_watcher_active_replica_info",
    )  # fmt: skip
    for name in names:
        assert name in rules
        assert f"# TYPE {name.removesuffix('_total')} " in exported or f"# HELP {name} " in exported, name


def _unit(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path)
    return parser


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_analyze_verify(unit: Path, tmp_path: Path) -> None:
    # verify insists that ExecStart exists: point it at this checkout's entry point.
    exe = Path(sys.executable).parent / "mesh-watcher"
    if not exe.exists():
        pytest.skip("mesh-watcher entry point not installed in the venv")
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text().replace("/usr/bin/mesh-watcher", str(exe)))
    proc = subprocess.run(["systemd-analyze", "verify", str(copy)],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    # verify exits 0 even for unknown keys; any output is a problem with our unit.
    problems = [ln for ln in (proc.stdout + proc.stderr).splitlines() if unit.name in ln or str(copy) in ln]
    assert proc.returncode == 0 and not problems, proc.stdout + proc.stderr


def test_watcher_unit_hardening() -> None:
    svc = _unit(ROOT / "systemd" / "mesh-watcher.service")["Service"]
    assert svc["Type"] == "notify"
    assert svc["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert svc["WatchdogSec"]
    assert set(svc["CapabilityBoundingSet"].split()) == {"CAP_NET_ADMIN", "CAP_NET_RAW"}
    assert set(svc["AmbientCapabilities"].split()) == {"CAP_NET_ADMIN", "CAP_NET_RAW"}
    assert set(svc["RestrictAddressFamilies"].split()) == {
        "AF_UNIX",
        "AF_INET",
        "AF_INET6",
        "AF_NETLINK",
        "AF_PACKET",
    }
    for key, want in (("ProtectSystem", "strict"), ("PrivateTmp", "yes"), ("NoNewPrivileges", "yes")):
        assert svc[key] == want
    assert "StateDirectory" in svc and "User" in svc
    assert "run --config" in svc["ExecStart"]
