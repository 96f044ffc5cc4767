"""The whole system in a mesh lab, for the benchmarks: control plane and watcher daemon in the
router namespace, replica agents on the replica hosts. Real processes; the lab removes them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..lab import Lab, MeshLab, build_mesh_lab, replica_lan4, replica_lan6
from ._netns import NetnsHttp

T = TypeVar("T")
PY = sys.executable
# Fixed ports are safe: they live in the lab's own fresh router namespace, not on the host.
CP_ADDR, CP_PORT = "192.0.2.1", 8787
METRICS_PORT = 9477
API_BASE = "/client/v4"
_ROOT = str(Path(__file__).resolve().parents[2])


def progress(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def wait(pred: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")


def _alive(proc: subprocess.Popen[bytes], what: str) -> bool:
    if proc.poll() is not None:
        raise RuntimeError(f"{what} exited with {proc.returncode}")
    return True


class BenchStack:
    """Control plane + `replicas` agents + (re)startable watcher daemon in one mesh lab."""

    def __init__(self, lab: Lab, tmp: Path, replicas: int = 3) -> None:
        self.mesh: MeshLab = build_mesh_lab(lab, replicas=replicas)
        self.router = self.mesh.router
        self.tmp = tmp
        self.admin = "admin-" + os.urandom(16).hex()
        (tmp / "admin.token").write_text(self.admin)
        self.cp_http = NetnsHttp(self.router.netns, CP_ADDR, CP_PORT, token=self.admin)
        self.metrics_http = NetnsHttp(self.router.netns, "127.0.0.1", METRICS_PORT)
        self.account = ""
        self.node = ""
        self.replica_ids: dict[int, str] = {}
        self.daemon: subprocess.Popen[bytes] | None = None

    def _log(self, name: str) -> Any:
        return open(self.tmp / f"{name}.log", "ab")  # the child process owns it

    def log_tail(self, name: str, chars: int = 2000) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    # -- control plane and agents ------------------------------------------------------------
    def start(self) -> None:
        cp = self.router.popen(
            [PY, "-m", "watcher", "control-plane", "--listen", f"{CP_ADDR}:{CP_PORT}",
             "--state-dir", str(self.tmp / "cp"), "--admin-token-file", str(self.tmp / "admin.token")],
            stdout=self._log("cp"), stderr=subprocess.STDOUT, cwd=_ROOT,
        )  # fmt: skip
        try:
            wait(lambda: _alive(cp, "control plane") and self.cp_http.get_text("/readyz") is not None,
                 30, "control plane /readyz", 0.1)  # fmt: skip
        except (TimeoutError, RuntimeError) as exc:
            raise RuntimeError(f"{exc}; control plane log:\n{self.log_tail('cp')}") from None
        self.account = self.cp_http.api("GET", f"{API_BASE}/accounts")[0]["id"]
        node = self.cp_http.api(
            "POST", f"{API_BASE}/accounts/{self.account}/warp_connector", {"name": "bench", "ha": True}
        )
        self.node = node["id"]
        token = self.cp_http.api("GET", f"{self._node_path()}/token")
        (self.tmp / "node.token").write_text(token)
        tok = self.cp_http.api(
            "POST", f"{API_BASE}/accounts/{self.account}/tokens", {"name": "watcher", "scope": "read"}
        )
        (self.tmp / "watcher.token").write_text(tok["value"])
        api = f"http://{CP_ADDR}:{CP_PORT}{API_BASE}"
        for i in range(1, len(self.mesh.replicas) + 1):
            self.mesh.replica(i).popen(
                [PY, "-m", "watcher", "replica", "--token-file", str(self.tmp / "node.token"), "--api", api,
                 "--state-dir", str(self.tmp / f"agent{i}"), "--device-name", f"replica{i}"],
                stdout=self._log(f"agent{i}"), stderr=subprocess.STDOUT, cwd=_ROOT,
            )  # fmt: skip
        try:
            wait(self._all_registered, 30, "every replica online", 0.2)
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}; agent1 log:\n{self.log_tail('agent1')}") from None

    def _node_path(self) -> str:
        return f"{API_BASE}/accounts/{self.account}/warp_connector/{self.node}"

    def events_path(self) -> str:
        return f"{self._node_path()}/events"

    def connections(self) -> list[dict[str, Any]]:
        return list(self.cp_http.api("GET", f"{self._node_path()}/connections"))

    def _index(self, conn: dict[str, Any]) -> int | None:
        for i in range(1, len(self.mesh.replicas) + 1):
            if any(str(a).split("/")[0] == replica_lan4(i) for a in conn.get("lan_addresses") or ()):
                return i
        return None

    def _all_registered(self) -> bool:
        conns = self.connections()
        for c in conns:
            i = self._index(c)
            if i is not None and c["ha_status"] != "offline":
                self.replica_ids[i] = c["id"]
        return len(self.replica_ids) == len(self.mesh.replicas) and any(
            c["ha_status"] == "active" for c in conns
        )

    def active(self) -> int | None:
        for c in self.connections():
            if c["ha_status"] == "active":
                return self._index(c)
        return None

    def failover_request(self, i: int) -> tuple[str, str, bytes]:
        """(method, path, body) of PUT …/failover to replica `i` (the caller sends and times it)."""
        body = json.dumps({"client_id": self.replica_ids[i]}).encode()
        return "PUT", f"{self._node_path()}/failover", body

    @staticmethod
    def gateway(i: int, family: int) -> str:
        return replica_lan4(i) if family == 4 else replica_lan6(i)

    # -- the watcher daemon --------------------------------------------------------------------
    def write_config(
        self, prefixes: Sequence[str], *, subscribe: str = "auto", poll_interval: float = 2.0
    ) -> Path:
        # JSON is YAML; one line even for 10k prefixes.
        doc = {
            "mode": "router",
            "node": {"account_id": self.account, "node_id": self.node},
            "control_plane": {
                "api": f"http://{CP_ADDR}:{CP_PORT}{API_BASE}",
                "token_file": str(self.tmp / "watcher.token"),
                "poll_interval": poll_interval,
                "subscribe": subscribe,
            },
            "routes": {"prefixes": list(prefixes), "withdraw_on_stop": True},
            # No dampening: consecutive promotions a fraction of a second apart must each be applied.
            "decide": {"hold_down": 0},
            "metrics": {"listen": f"127.0.0.1:{METRICS_PORT}"},
        }
        path = self.tmp / "watcher.yaml"
        path.write_text(json.dumps(doc) + "\n")
        return path

    def start_daemon(self, config: Path, timeout: float = 60) -> subprocess.Popen[bytes]:
        self.stop_daemon()
        self.daemon = self.router.popen(
            [PY, "-m", "watcher", "run", "--config", str(config)],
            stdout=self._log("watcher"), stderr=subprocess.STDOUT, cwd=_ROOT,
        )  # fmt: skip
        active = wait(self.active, 10, "an active replica", 0.1)
        try:
            wait(lambda: self.daemon_target() == self.replica_ids[active], timeout, "watcher in sync", 0.1)
        except (TimeoutError, RuntimeError) as exc:
            raise RuntimeError(f"{exc}; watcher log:\n{self.log_tail('watcher')}") from None
        return self.daemon

    def daemon_status(self) -> dict[str, Any] | None:
        if self.daemon is not None and self.daemon.poll() is not None:
            raise RuntimeError(f"watcher exited ({self.daemon.returncode}):\n{self.log_tail('watcher')}")
        text = self.metrics_http.get_text("/status")
        return json.loads(text) if text else None

    def daemon_target(self) -> str | None:
        st = self.daemon_status()
        if not st or not st.get("in_sync") or not st.get("target"):
            return None
        return str(st["target"]["replica"])

    def metrics_text(self) -> str:
        return self.metrics_http.get_text("/metrics") or ""

    def stop_daemon(self) -> None:
        proc, self.daemon = self.daemon, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def our_nexthops(self, protocol: int = 250) -> dict[int, int]:
        """{nexthop id: family (4|6)} of the nexthop objects the watcher installed."""
        out: dict[int, int] = {}
        for family in (4, 6):
            text = self.router.ip(f"-{family}", "-j", "nexthop", "show").stdout
            for nh in json.loads(text or "[]"):
                if str(nh.get("protocol")) == str(protocol):
                    out[int(nh["id"])] = family
        return out
