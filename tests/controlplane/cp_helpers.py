"""Helpers for the control-plane tests: real `mesh-watcher control-plane` and `replica` processes.

A uniquely named module (not conftest) so test files can import it under pytest's prepend mode.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from watcher.lab import Host, wait_until
from watcher.lab.stack import AgentProcess, ControlPlaneProcess, watcher_argv

ROOT = Path(__file__).resolve().parents[2]
DETECTION = 0.8
HEARTBEAT = 0.2


def wait_for(
    pred: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, what: str = "condition"
) -> Any:
    return wait_until(pred, timeout, what, interval)


def python_cmd(*args: str) -> list[str]:
    return watcher_argv(*args)


class ControlPlane(ControlPlaneProcess):
    """The launcher run with -vv, one log per start (`current_log`), plus the account and the
    `{a}` (account id) shorthand in paths these tests use."""

    def __init__(
        self, state_dir: Path, log_path: Path, args: Sequence[str], host: Host | None = None
    ) -> None:
        # rate_limit None: make_cp's args carry the flag, so a test may set its own.
        super().__init__(state_dir, host=host, rate_limit=None, args=args, verbose=2, cwd=ROOT, log=log_path)
        self.log_path = log_path
        self.account = ""

    def start(self, listen: str | None = None, timeout: float = 30.0) -> ControlPlane:
        """Start (or restart, on the same address) and wait until ready."""
        if listen is not None:
            self.listen, self.url = listen, ""
        self.log = self.current_log = self.log_path.with_suffix(f".{self.starts + 1}.log")
        super().start(timeout)
        if not self.account:
            self.account = self.ok("GET", "/accounts")[0]["id"]
        return self

    def request(  # type: ignore[override]
        self, method: str, path: str, token: str | None = "admin", **kw: Any
    ) -> httpx.Response:
        """`token`: "admin" (default), None for no Authorization header, or a token."""
        path = path if path.startswith("http") else path.replace("{a}", self.account)
        return super().request(method, path, token=None if token == "admin" else token or "", **kw)

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


AgentProc = AgentProcess


class Agents:
    """Every agent a test starts (state in tmp/agent-NAME, one log per start); killed at teardown."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[AgentProcess] = []

    def start(
        self, cp_base: str, token: str, name: str, *, extra: Sequence[str] = (), host: Host | None = None
    ) -> AgentProcess:
        state = self.tmp / f"agent-{name}"
        log = self.tmp / f"agent-{name}.{sum(1 for p in self.procs if p.state_dir == state)}.log"
        agent = AgentProcess(
            cp_base,
            state,
            token=token,
            host=host,
            device_name=name,
            extra=extra,
            log=log,
            verbose=1,
            cwd=ROOT,
        )
        self.procs.append(agent.start())
        return agent

    def close(self) -> None:
        for agent in self.procs:
            agent.kill()


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
