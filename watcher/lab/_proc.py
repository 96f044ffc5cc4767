"""A `python -m watcher ...` child process, on this machine's loopback or inside a lab Host.

What every launcher needs and used to repeat: a log file the child appends to, "exited early"
turned into an error carrying the log's tail, stop with a signal then SIGKILL, and HTTP to the
child from this process, through the host's namespace thread when it lives in a lab.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx

from ._netns import Host

PY = sys.executable
T = TypeVar("T")


class ProcessExited(RuntimeError):
    """A child that should be running has exited; the message ends with its log's tail."""


def watcher_argv(*args: str, verbose: int = 0) -> list[str]:
    return [PY, "-m", "watcher", *(["-" + "v" * verbose] if verbose else []), *args]


def http_request(host: Host | None, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One HTTP request from this process; with `host`, its socket lives in the host's namespace."""
    kwargs.setdefault("timeout", 10.0)
    if host is None:
        return httpx.request(method, url, **kwargs)
    return host.call(httpx.request, method, url, **kwargs)


class InHost:
    """Proxy running every method of `obj` on `host`'s namespace thread (e.g. a MeshApi whose
    sockets must reach a server inside the lab); usable from the root namespace."""

    def __init__(self, host: Host, obj: Any) -> None:
        self._host, self._obj = host, obj

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._obj, name)
        return lambda *args, **kwargs: self._host.call(method, *args, **kwargs)


class LabProcess:
    """Base of the launchers: spawn, liveness, signals, log."""

    what = "process"

    def __init__(
        self,
        log: Path,
        *,
        host: Host | None = None,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.log = log
        self.host = host
        self.cwd = cwd
        self.env = dict(env) if env is not None else None
        self.proc: subprocess.Popen[bytes] | None = None

    def _spawn(self, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        if self.running:
            raise RuntimeError(f"{self.what} is already running (pid {self.pid})")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env} if self.env is not None else None
        with open(self.log, "ab") as out:  # the child keeps its own descriptor
            kwargs: dict[str, Any] = {"stdout": out, "stderr": subprocess.STDOUT, "cwd": self.cwd, "env": env}
            if self.host is not None:
                # `ip netns exec` execs the command: the pid is the child's; the lab kills it at teardown.
                self.proc = self.host.popen(argv, **kwargs)
            else:
                self.proc = subprocess.Popen(argv, start_new_session=True, **kwargs)
        return self.proc

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.what} was never started")
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def alive(self) -> bool:
        """True while running; ProcessExited (with the log's tail) once it has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise ProcessExited(
                f"{self.what} exited with status {self.proc.returncode}; {self.log} ends:\n{self.log_tail()}"
            )
        return self.proc is not None

    def live(self, value: T) -> T:
        """`value`, after checking the process still runs: for wait predicates."""
        self.alive()
        return value

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def send(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def wait(self, timeout: float | None = None) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.what} was never started")
        return self.proc.wait(timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Signal the process and wait for it (SIGKILL to its group if it lingers); its exit status."""
        if self.proc is None:
            raise RuntimeError(f"{self.what} was never started")
        proc = self.proc
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        return proc.returncode

    def kill(self) -> int:
        """SIGKILL the process group (a crash: nothing gets to clean up)."""
        if self.proc is None:
            raise RuntimeError(f"{self.what} was never started")
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.wait(10)
