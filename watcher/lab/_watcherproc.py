"""Launcher for the watcher daemon (`mesh-watcher run`) and what is read back from it."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ._netns import Host
from ._proc import LabProcess, http_request, watcher_argv
from ._wait import wait_until

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class WatcherProcess(LabProcess):
    """`mesh-watcher run --config CONFIG`; `metrics` is the config's metrics.listen (/status and
    /metrics are read there). With `notify_socket` it gets NOTIFY_SOCKET and its sd_notify
    messages are collected by `notifications()`."""

    what = "watcher"

    def __init__(
        self,
        config: Path,
        *,
        host: Host | None = None,
        metrics: str = "127.0.0.1:9477",
        log: Path | None = None,
        cwd: Path | None = None,
        notify_socket: Path | None = None,
        verbose: int = 1,
    ) -> None:
        env: dict[str, str] = {}
        self._notify: socket.socket | None = None
        if notify_socket is not None:
            self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._notify.bind(str(notify_socket))
            self._notify.setblocking(False)
            env["NOTIFY_SOCKET"] = str(notify_socket)
        super().__init__(log or config.with_suffix(".log"), host=host, cwd=cwd, env=env)
        self.config = config
        self.metrics_url = f"http://{metrics}"
        self.verbose = verbose

    def write_config(self, doc: str | Mapping[str, Any]) -> Path:
        """Write the config (YAML text, or a mapping written as JSON, which is YAML)."""
        self.config.write_text(doc if isinstance(doc, str) else yaml.safe_dump(dict(doc), sort_keys=False))
        return self.config

    def start(self) -> WatcherProcess:
        if self.cwd is not None:
            self.cwd.mkdir(parents=True, exist_ok=True)
        self._spawn(watcher_argv("run", "--config", str(self.config), verbose=self.verbose))
        return self

    def reload(self) -> None:
        self.send(signal.SIGHUP)

    def wait_in_sync(self, replica_id: str | None = None, timeout: float = 30.0) -> str:
        """Wait for the first reconcile (in sync on a target; on `replica_id` if given)."""
        what = f"{self.what} in sync" + (f" on {replica_id}" if replica_id else "")

        def synced() -> str | None:
            got = self.live(self.target())
            return got if got is not None and replica_id in (None, got) else None

        return wait_until(synced, timeout, what)

    def notifications(self) -> list[str]:
        """sd_notify lines received since the last call."""
        out: list[str] = []
        if self._notify is not None:
            with contextlib.suppress(BlockingIOError):
                while True:
                    out += self._notify.recv(4096).decode().split("\n")
        return out

    # -- reading it back -----------------------------------------------------------------------
    def _get(self, path: str) -> str | None:
        try:
            resp = http_request(self.host, "GET", self.metrics_url + path, timeout=5.0)
        except httpx.HTTPError:
            return None
        return resp.text if resp.status_code == 200 else None

    def status(self) -> dict[str, Any] | None:
        """GET /status; None while nothing answers."""
        text = self._get("/status")
        return dict(json.loads(text)) if text else None

    def target(self) -> str | None:
        """The replica the applied state points at, once in sync; else None."""
        st = self.status()
        if not st or not st.get("in_sync") or not st.get("target"):
            return None
        return str(st["target"]["replica"])

    def status_command(self, *, as_json: bool = False) -> subprocess.CompletedProcess[str]:
        """`mesh-watcher status [--json] --url METRICS`, run where the daemon runs."""
        argv = watcher_argv("status", *(["--json"] if as_json else []), "--url", self.metrics_url)
        if self.host is not None:
            return self.host.run(argv, check=False, timeout=20)
        return subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)

    def metrics_text(self) -> str:
        return self._get("/metrics") or ""

    def samples(self) -> Samples:
        """Every metric sample: {(name, sorted labels): value}."""
        out: Samples = {}
        for family in text_string_to_metric_families(self.metrics_text()):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
        return out

    def metric(self, name: str, **labels: str) -> float | None:
        """The first sample `name` whose labels include `labels`; None if absent or no answer."""
        for family in text_string_to_metric_families(self.metrics_text()):
            for s in family.samples:
                if s.name == name and labels.items() <= s.labels.items():
                    return float(s.value)
        return None

    def close(self) -> None:
        if self._notify is not None:
            self._notify.close()
            self._notify = None
