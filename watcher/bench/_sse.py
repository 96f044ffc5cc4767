"""A listener on the control plane's event stream, in the bench process, for P1's breakdown.

It hears the same `promoted` events the watcher does, on the same clock as t0, so a promotion's
time splits into "control plane -> event delivered" and "event -> kernel converged (the watcher)".
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time

from ._netns import NetnsHttp


class EventListener:
    """Records (monotonic time, replica_id) of every `promoted` event of the node's stream."""

    def __init__(self, http: NetnsHttp, path: str, max_seconds: float = 1800) -> None:
        self._conn = http.connection()
        self._conn.request("GET", path, headers={**http.headers(None), "Accept": "text/event-stream"})
        self._resp = self._conn.getresponse()
        if self._resp.status != 200:
            raise RuntimeError(f"GET {path} -> HTTP {self._resp.status}")
        if self._conn.sock is not None:
            self._conn.sock.settimeout(None)  # keep-alive pings come every ~10 s; close() unblocks
        self.events: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._end = time.monotonic() + max_seconds
        self._thread = threading.Thread(target=self._read, name="sse-listener", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        kind = ""
        # close() shuts the socket down: http.client then fails one way or another; the thread ends.
        with contextlib.suppress(OSError, ValueError, http.client.HTTPException):
            while time.monotonic() < self._end:
                line = self._resp.readline()  # de-chunks
                if not line:
                    return
                at = time.monotonic()
                text = line.decode(errors="replace").rstrip("\r\n")
                if text.startswith("event:"):
                    kind = text[6:].strip()
                elif text.startswith("data:") and kind == "promoted":
                    replica = str(json.loads(text[5:]).get("replica_id"))
                    with self._cond:
                        self.events.append((at, replica))
                        self._cond.notify_all()
                elif not text:
                    kind = ""

    def mark(self) -> int:
        with self._cond:
            return len(self.events)

    def wait_for(self, since: int, replica_id: str, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                hit = next((at for at, rid in self.events[since:] if rid == replica_id), None)
                left = deadline - time.monotonic()
                if hit is not None or left <= 0:
                    return hit
                self._cond.wait(left)

    def close(self) -> None:
        sock = self._conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=2)  # before close(): http.client is not safe across threads
        self._conn.close()
