"""`mesh-watcher control-plane` and `replica` command lines: flags, supplied tokens, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx
from cp_helpers import ROOT, ControlPlane, python_cmd


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        python_cmd(*args), capture_output=True, text=True, timeout=30, cwd=ROOT, env=env, check=False
    )


def test_bad_flags_are_refused_with_a_clear_message(tmp_path: Path) -> None:
    state = str(tmp_path / "s")
    cases = [
        (["--listen", "nohost"], "--listen"),
        (["--listen", "127.0.0.1:99999"], "out of range"),
        (["--detection-timeout", "0.5", "--heartbeat-interval", "0.5"], "--heartbeat-interval"),
        (["--mesh-ipv4-range", "100.96.0.1/12"], "--mesh-ipv4-range"),
        (["--admin-token-file", str(tmp_path / "missing")], "--admin-token-file"),
        (["--rate-limit", "1200"], "--rate-limit"),
        (["--rate-limit", "0/300"], "--rate-limit"),
        (["--event-retention", "0"], "--event-retention"),
        (["--detection-timeout", "inf"], "--detection-timeout"),
    ]
    for extra, needle in cases:
        proc = _run("control-plane", "--state-dir", state, *extra)
        assert proc.returncode == 2 and needle in proc.stderr, (extra, proc.stderr)
    assert not (tmp_path / "s").exists()  # bad input changes nothing
    proc = _run(
        "replica",
        "--api",
        "http://127.0.0.1:9/client/v4",
        "--state-dir",
        state,
        env={k: v for k, v in os.environ.items() if k != "MESH_NODE_TOKEN"},
    )
    assert proc.returncode == 2 and "token" in proc.stderr
    proc = _run("replica", "--api", "x", "--token", "t", "--state-dir", state, "--lan-address", "nope")
    assert proc.returncode == 2 and "nope" in proc.stderr


def test_supplied_admin_token_file_and_ipv6_listen(tmp_path: Path) -> None:
    token_file = tmp_path / "admin"
    token_file.write_text("my-own-admin-token\n")
    cp = ControlPlane(
        state_dir=tmp_path / "state",
        log_path=tmp_path / "cp",
        args=["--admin-token-file", str(token_file), "--colo-name", "AMS"],
    )
    cp.admin = "my-own-admin-token"
    cp.start(listen="[::1]:0")
    try:
        assert cp.url.startswith("http://[::1]:")
        assert not (tmp_path / "state" / "admin.token").exists()
        assert httpx.get(cp.base + "/accounts", headers={"Authorization": "Bearer wrong"}).status_code == 401
        nid, token = cp.create_node("cli")
        cp.ok("POST", "/connector/register", token=token, json={})
        assert cp.replicas(nid)[0]["conns"][0]["colo_name"] == "AMS"
        assert cp.replicas(nid)[0]["conns"][0]["origin_ip"] == "::1"
    finally:
        assert cp.stop(signal.SIGTERM) == 0
