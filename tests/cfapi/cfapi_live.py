"""Real processes for integration tests: the embedded control plane and replica agents."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

PY = [sys.executable, "-m", "watcher"]
# Faster than the defaults so a test sees a failover in about a second.
HEARTBEAT, DETECTION = "0.3", "1.5"


def wait_until(predicate: object, timeout: float, what: str, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


class ControlPlane:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None
        self.log = state_dir / "control-plane.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/client/v4"

    @property
    def admin_token(self) -> str:
        return (self.state_dir / "admin.token").read_text().strip()

    def start(self, timeout: float = 30.0) -> ControlPlane:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "a")  # noqa: SIM115 - the child keeps writing to it
        cmd = [
            *PY,
            "control-plane",
            "--listen",
            f"127.0.0.1:{self.port}",
            "--state-dir",
            str(self.state_dir),
            "--heartbeat-interval",
            HEARTBEAT,
            "--detection-timeout",
            DETECTION,
        ]
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True)
        out.close()

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"control plane exited {self.proc.returncode}: {self.log.read_text()[-2000:]}"
                )
            if not self.port:
                found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", self.log.read_text())
                if not found:
                    return False
                self.port = int(found.group(1))
            try:
                return httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout, "the control plane to be ready")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


class Agent:
    """`mesh-watcher replica` as a subprocess."""

    def __init__(self, api: str, token: str, state_dir: Path, name: str, lan: str) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        token_file = state_dir / "token"
        token_file.write_text(token)
        os.chmod(token_file, 0o600)
        self.log = state_dir / "agent.log"
        out = open(self.log, "a")  # noqa: SIM115
        cmd = [
            *PY,
            "replica",
            "--api",
            api,
            "--token-file",
            str(token_file),
            "--state-dir",
            str(state_dir),
            "--device-name",
            name,
            "--lan-address",
            lan,
        ]
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True)
        out.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
