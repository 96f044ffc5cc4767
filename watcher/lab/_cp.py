"""Launchers for the embedded control plane and the replica agent."""

from __future__ import annotations

import json
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from ._netns import Host
from ._proc import InHost, LabProcess, http_request, watcher_argv
from ._wait import wait_until

API_PREFIX = "/client/v4"
_LISTENING = "listening on http://"


class ApiCallFailed(RuntimeError):
    """A control-plane call answered without `success` (or not with JSON)."""


class ControlPlaneProcess(LabProcess):
    """`mesh-watcher control-plane`, on loopback (default 127.0.0.1:0) or inside a lab Host.

    `rate_limit` is the --rate-limit flag: "0" (default) turns it off, since harnesses poll far
    faster than Cloudflare's 1200 / 5 min allows; None keeps the plane's default. The admin token
    is `admin_token_file`'s content when given, else the one the plane writes into `state_dir`.
    `restart()` comes back on the same address, even when the first start picked the port.
    """

    what = "control plane"

    def __init__(
        self,
        state_dir: Path,
        *,
        host: Host | None = None,
        listen: str = "127.0.0.1:0",
        admin_token_file: Path | None = None,
        rate_limit: str | None = "0",
        detection_timeout: float | None = None,
        heartbeat_interval: float | None = None,
        args: Sequence[str] = (),
        log: Path | None = None,
        verbose: int = 0,
        cwd: Path | None = None,
    ) -> None:
        super().__init__(log or state_dir.parent / f"{state_dir.name}.log", host=host, cwd=cwd)
        self.state_dir = state_dir
        self.listen = listen
        self.admin_token_file = admin_token_file
        self.verbose = verbose
        flags: list[str] = []
        if admin_token_file is not None:
            flags += ["--admin-token-file", str(admin_token_file)]
        if detection_timeout is not None:
            flags += ["--detection-timeout", str(detection_timeout)]
        if heartbeat_interval is not None:
            flags += ["--heartbeat-interval", str(heartbeat_interval)]
        if rate_limit is not None:
            flags += ["--rate-limit", rate_limit]
        self.args = [*flags, *args]  # later flags win: `args` may override the above
        self.url = ""  # http://HOST:PORT once started
        self.admin = ""
        self.starts = 0

    @property
    def base(self) -> str:
        """The API base URL, including /client/v4."""
        return self.url + API_PREFIX

    def start(self, timeout: float = 30.0) -> ControlPlaneProcess:
        """Start and wait until it listens and /readyz answers 200."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        offset = self.log.stat().st_size if self.log.exists() else 0
        listen = self.url.removeprefix("http://") if self.url else self.listen
        argv = watcher_argv(
            "control-plane",
            "--listen",
            listen,
            "--state-dir",
            str(self.state_dir),
            *self.args,
            verbose=self.verbose,
        )
        self._spawn(argv)
        self.url = wait_until(lambda: self.live(self._listening(offset)), timeout, f"{self.what} listening")
        wait_until(lambda: self.live(self.ready()), timeout, f"{self.what} /readyz")
        if not self.admin:  # a caller may have set it (a token supplied some other way)
            source = self.admin_token_file or self.state_dir / "admin.token"
            self.admin = source.read_text().strip()
        return self

    def _listening(self, offset: int) -> str | None:
        with open(self.log, "rb") as fh:
            fh.seek(offset)
            text = fh.read().decode(errors="replace")
        for line in text.splitlines():
            at = line.find(_LISTENING)
            if at >= 0:
                return "http://" + line[at + len(_LISTENING) :].split()[0].rstrip("/")
        return None

    def ready(self) -> bool:
        try:
            return self.request("GET", self.url + "/readyz", token="", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def restart(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> ControlPlaneProcess:
        self.stop(sig)
        return self.start(timeout)

    # -- talking to it ---------------------------------------------------------------------------
    def request(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> httpx.Response:
        """HTTP to the plane from this process (through the lab host's namespace if it lives in one).
        `path` is under the API base unless it is a full URL; `token` None means the admin token,
        "" no Authorization header."""
        headers = dict(kwargs.pop("headers", None) or {})
        token = self.admin if token is None else token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        url = path if path.startswith("http") else self.base + path
        return http_request(self.host, method, url, headers=headers, **kwargs)

    def result(self, method: str, path: str, body: Any = None, *, token: str | None = None) -> Any:
        """The `result` of a call that must succeed; ApiCallFailed naming the call otherwise."""
        kwargs: dict[str, Any] = {} if body is None else {"json": body}
        resp = self.request(method, path, token=token, **kwargs)
        try:
            doc = resp.json()
        except ValueError:
            raise ApiCallFailed(
                f"{method} {path}: HTTP {resp.status_code}, not JSON: {resp.text[:200]!r}"
            ) from None
        if resp.status_code != 200 or not doc.get("success"):
            raise ApiCallFailed(f"{method} {path}: HTTP {resp.status_code}: {doc}")
        return doc["result"]

    def api(self, token: str | None = None, **kwargs: Any) -> Any:
        """A blocking `watcher.cfapi.MeshApi` on this plane (admin token unless given), usable from
        the root namespace even when the plane lives in a lab host. Close it with `.close()`."""
        from ..cfapi import MeshApi

        token = self.admin if token is None else token
        if self.host is None:
            return MeshApi(self.base, token, **kwargs)
        return InHost(self.host, self.host.call(MeshApi, self.base, token, **kwargs))


class AgentProcess(LabProcess):
    """`mesh-watcher replica`. The node token goes by env MESH_NODE_TOKEN (argv is public) unless
    `token_file` is given."""

    what = "replica agent"

    def __init__(
        self,
        api: str,
        state_dir: Path,
        *,
        token: str | None = None,
        token_file: Path | None = None,
        host: Host | None = None,
        device_name: str | None = None,
        lan_addresses: Sequence[str] = (),
        dataplane: bool = False,
        extra: Sequence[str] = (),
        log: Path | None = None,
        verbose: int = 0,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if (token is None) == (token_file is None):
            raise ValueError("AgentProcess: give exactly one of token, token_file")
        env = {**(env or {}), **({"MESH_NODE_TOKEN": token} if token is not None else {})}
        super().__init__(log or state_dir.parent / f"{state_dir.name}.log", host=host, cwd=cwd, env=env)
        self.state_dir = state_dir
        argv = ["replica", "--api", api, "--state-dir", str(state_dir)]
        if token_file is not None:
            argv += ["--token-file", str(token_file)]
        if device_name:
            argv += ["--device-name", device_name]
        for addr in lan_addresses:
            argv += ["--lan-address", addr]
        if dataplane:
            argv.append("--dataplane")
        self.argv = watcher_argv(*argv, *extra, verbose=verbose)

    def start(self) -> AgentProcess:
        self._spawn(self.argv)
        return self

    @property
    def replica_id(self) -> str | None:
        """The id the agent persisted after registering (None before)."""
        try:
            return str(json.loads((self.state_dir / "replica.json").read_text())["replica_id"])
        except (OSError, ValueError, KeyError):
            return None

    def wait_registered(self, timeout: float = 20.0) -> str:
        return wait_until(
            lambda: self.live(self.replica_id), timeout, f"agent {self.state_dir.name} registered"
        )
