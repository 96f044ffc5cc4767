"""The whole system in a mesh lab, for the benchmarks: `watcher.lab.stack.MeshStack` plus the
bench's own view of it (a pre-connectable HTTP client for timed calls, nexthop objects)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ..lab import Lab, build_mesh_lab
from ..lab import wait_until as wait
from ..lab.stack import API_PREFIX, CP_ADDR, CP_PORT, MeshStack
from ._netns import NetnsHttp

__all__ = ["BenchStack", "progress", "wait"]


def progress(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchStack(MeshStack):
    """Control plane + `replicas` agents + (re)startable watcher daemon in one mesh lab."""

    def __init__(self, lab: Lab, tmp: Path, replicas: int = 3) -> None:
        # The plane's own timings (detection 3 s, heartbeat 1 s): what production runs.
        super().__init__(build_mesh_lab(lab, replicas=replicas), tmp, detection_timeout=None,
                         heartbeat_interval=None)  # fmt: skip
        self.replica_ids: dict[int, str] = {}
        self.cp_http = NetnsHttp(self.router, CP_ADDR, CP_PORT)

    def log_tail(self, name: str, chars: int = 2000) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    # -- control plane and agents ------------------------------------------------------------
    def start(self) -> None:
        try:
            self.start_cp()
            self.cp_http.token = self.cp.admin
            self.setup_node("bench", watcher_scope="read")
            self.replica_ids = self.start_agents(*range(1, len(self.mesh.replicas) + 1), dataplane=False)
        except (TimeoutError, RuntimeError) as exc:
            raise RuntimeError(f"{exc}; logs:\n{self.dump_logs(2000)}") from None

    def events_path(self) -> str:
        return f"{API_PREFIX}{self.node_path()}/events"

    def active_index(self) -> int | None:
        got = self.active()
        return None if got is None else got[0]

    def failover_request(self, i: int) -> tuple[str, str, bytes]:
        """(method, path, body) of PUT …/failover to replica `i` (the caller sends and times it)."""
        body = json.dumps({"client_id": self.replica_ids[i]}).encode()
        return "PUT", f"{API_PREFIX}{self.node_path()}/failover", body

    # -- the watcher daemon --------------------------------------------------------------------
    def write_config(
        self, prefixes: Sequence[str], *, subscribe: str = "auto", poll_interval: float = 2.0
    ) -> Path:
        control_plane = {"poll_interval": poll_interval, "subscribe": subscribe}
        doc = self.router_config(prefixes, control_plane=control_plane)
        doc["routes"]["withdraw_on_stop"] = True
        # One line even for 10k prefixes (JSON is YAML).
        self.watcher.config.write_text(json.dumps(doc) + "\n")
        return self.watcher.config

    def start_daemon(self, config: Path, timeout: float = 60) -> subprocess.Popen[bytes]:
        self.stop_daemon()
        self.watcher.config = config
        self.watcher.start()
        active = wait(self.active_index, 10, "an active replica", 0.1)
        try:
            self.watcher.wait_in_sync(self.replica_ids[active], timeout)
        except (TimeoutError, RuntimeError) as exc:
            raise RuntimeError(f"{exc}; watcher log:\n{self.log_tail('watcher')}") from None
        assert self.watcher.proc is not None
        return self.watcher.proc

    def daemon_target(self) -> str | None:
        return self.watcher.live(self.watcher.target())

    def metrics_text(self) -> str:
        return self.watcher.metrics_text()

    def stop_daemon(self) -> None:
        if self.watcher.running:
            self.watcher.stop(timeout=20)

    def our_nexthops(self, protocol: int = 250) -> dict[int, int]:
        """{nexthop id: family (4|6)} of the nexthop objects the watcher installed."""
        out: dict[int, int] = {}
        for family in (4, 6):
            text = self.router.ip(f"-{family}", "-j", "nexthop", "show").stdout
            for nh in json.loads(text or "[]"):
                if str(nh.get("protocol")) == str(protocol):
                    out[int(nh["id"])] = family
        return out
