"""Helpers for the control-plane tests: real `mesh-watcher control-plane` and `replica` processes.

A uniquely named module (not conftest) so test files can import it under pytest's prepend mode.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
DETECTION = 0.8
HEARTBEAT = 0.2


def wait_for(
    pred: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        time.sleep(interval)


def python_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "watcher", *args]


@dataclass
class ControlPlane:
    state_dir: Path
    log_path: Path
    args: list[str]
    prefix: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    url: str = ""
    admin: str = ""
    account: str = ""
    starts: int = 0

    @property
    def base(self) -> str:
        return self.url + "/client/v4"

    def start(self, listen: str | None = None, *, probe: bool = True) -> ControlPlane:
        """Start (or restart, on the same address) and wait for 'listening on'. `probe=False`: the
        test cannot reach the API over HTTP from here (a lab namespace) and fills `account` itself."""
        self.starts += 1
        log = self.log_path.with_suffix(f".{self.starts}.log")
        listen = listen or (self.url.removeprefix("http://") if self.url else "127.0.0.1:0")
        out = log.open("wb")
        self.proc = subprocess.Popen(
            [
                *self.prefix,
                *python_cmd(
                    "-vv", "control-plane", "--listen", listen, "--state-dir", str(self.state_dir), *self.args
                ),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        out.close()

        def listening() -> str | None:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"control plane exited {self.proc.returncode}: {log.read_text()}")
            for line in log.read_text().splitlines():
                if line.startswith("listening on http://"):
                    return line.removeprefix("listening on ").strip()
            return None

        self.url = wait_for(listening, 30, what="control plane listening")
        self.current_log = log
        if not self.admin:
            self.admin = (self.state_dir / "admin.token").read_text().strip()
        if probe and not self.account:
            self.account = self.get("/accounts").json()["result"][0]["id"]
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        return self.proc.wait(timeout)

    def request(self, method: str, path: str, token: str | None = "admin", **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if token == "admin":
            token = self.admin
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        url = path if path.startswith("http") else self.base + path.replace("{a}", self.account)
        return httpx.request(method, url, headers=headers, timeout=10, **kw)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def ok(self, method: str, path: str, **kw: Any) -> Any:
        resp = self.request(method, path, **kw)
        body = resp.json()
        assert resp.status_code == 200 and body["success"], f"{method} {path}: {resp.status_code} {body}"
        return body["result"]

    # conveniences ---------------------------------------------------------------------------
    def create_node(self, name: str, ha: bool = True) -> tuple[str, str]:
        node = self.ok("POST", "/accounts/{a}/warp_connector", json={"name": name, "ha": ha})
        token = self.ok("GET", f"/accounts/{{a}}/warp_connector/{node['id']}/token")
        return node["id"], token

    def node(self, node_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.ok("GET", f"/accounts/{{a}}/warp_connector/{node_id}")
        return result

    def replicas(self, node_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.ok("GET", f"/accounts/{{a}}/warp_connector/{node_id}/connections")
        return result

    def statuses(self, node_id: str) -> dict[str, str]:
        return {r["id"]: r["ha_status"] for r in self.replicas(node_id)}

    def active(self, node_id: str) -> str | None:
        return next((rid for rid, s in self.statuses(node_id).items() if s == "active"), None)


@dataclass
class AgentProc:
    state_dir: Path
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def replica_id(self) -> str | None:
        try:
            return str(json.loads((self.state_dir / "replica.json").read_text())["replica_id"])
        except (OSError, ValueError, KeyError):
            return None

    def wait_registered(self, timeout: float = 20) -> str:
        return str(wait_for(lambda: self.replica_id, timeout, what=f"agent {self.state_dir.name} registered"))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        return self.proc.wait(timeout)


class Agents:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[AgentProc] = []

    def start(
        self, cp_base: str, token: str, name: str, *, extra: Sequence[str] = (), prefix: Sequence[str] = ()
    ) -> AgentProc:
        state = self.tmp / f"agent-{name}"
        log = self.tmp / f"agent-{name}.{sum(1 for p in self.procs if p.state_dir == state)}.log"
        out = log.open("wb")
        env = {**os.environ, "MESH_NODE_TOKEN": token}
        proc = subprocess.Popen(
            [
                *prefix,
                *python_cmd(
                    "-v",
                    "replica",
                    "--api",
                    cp_base,
                    "--state-dir",
                    str(state),
                    "--device-name",
                    name,
                    *extra,
                ),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        out.close()
        agent = AgentProc(state, proc, log)
        self.procs.append(agent)
        return agent

    def close(self) -> None:
        for agent in self.procs:
            if agent.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(agent.proc.pid, signal.SIGKILL)
                agent.proc.wait(10)


def make_cp(
    tmp: Path, *extra: str, detection: float = DETECTION, heartbeat: float = HEARTBEAT
) -> ControlPlane:
    return ControlPlane(
        state_dir=tmp / "cp-state",
        log_path=tmp / "cp",
        # No rate limit unless a test asks (later flags win): tests poll far faster than a client may.
        args=[
            "--detection-timeout",
            str(detection),
            "--heartbeat-interval",
            str(heartbeat),
            "--rate-limit",
            "0",
            *extra,
        ],
    )


class SseReader:
    """Reads an event stream in a thread and keeps every event (id, type, data)."""

    def __init__(self, url: str, token: str, last_event_id: int | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.status: int | None = None
        self._stop = threading.Event()
        headers = {"Authorization": f"Bearer {token}"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        self._thread = threading.Thread(target=self._run, args=(url, headers), daemon=True)
        self._client = httpx.Client(timeout=httpx.Timeout(5.0, read=None))
        self._thread.start()

    def _run(self, url: str, headers: dict[str, str]) -> None:
        with (
            contextlib.suppress(httpx.HTTPError, RuntimeError),
            self._client.stream("GET", url, headers=headers) as resp,
        ):
            self.status = resp.status_code
            current: dict[str, Any] = {}
            for line in resp.iter_lines():
                if self._stop.is_set():
                    return
                if line.startswith("id: "):
                    current["id"] = int(line[4:])
                elif line.startswith("event: "):
                    current["event"] = line[7:]
                elif line.startswith("data: "):
                    current["data"] = json.loads(line[6:])
                elif line == "" and current:
                    if self._stop.is_set():
                        return
                    self.events.append(current)
                    current = {}

    def close(self) -> None:
        self._stop.set()
        self._client.close()
        # The reader may sit in a blocking read until the next keep-alive; it is a daemon thread
        # and appends nothing once stopped, so there is no need to wait for it.
        self._thread.join(0.2)


class WebhookReceiver:
    """A tiny real HTTP server on 127.0.0.1 recording every POST (headers and JSON body)."""

    def __init__(self, statuses: Sequence[int] = ()) -> None:
        self.calls: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.statuses = list(statuses)  # answers for the first calls, then 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.calls.append(({k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
