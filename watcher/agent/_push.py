"""Push: the agent holds its node's event stream open (GET /connector/events, node token) and asks
for an immediate heartbeat when anything happens to the node, so a promotion moves the data plane
in one round trip instead of at the next heartbeat.

The stream only nudges; the heartbeat answer stays the one source of truth for the replica's role,
so a lost, duplicated or reordered event can never make two replicas forward. Without the stream
(an older control plane, a dropped connection) the agent still learns at its next heartbeat.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import httpx

log = logging.getLogger("watcher.agent")

# The server sends a keep-alive comment every ~10 s; silence for this long means a dead connection.
READ_TIMEOUT = 30.0
RETRY_MIN, RETRY_MAX = 0.2, 5.0


class PushListener:
    def __init__(
        self,
        api: str,
        headers: dict[str, str],
        nudge: Callable[[str], None],
        stop: threading.Event,
    ) -> None:
        self.nudge = nudge
        self.stop = stop
        self.events = 0
        self.client = httpx.Client(
            base_url=api.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(5.0, connect=1.0, read=READ_TIMEOUT),
        )
        self._thread = threading.Thread(target=self._run, name="push", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self.stop.set()
        # A blocking read may outlive the close until the next keep-alive; the thread is a daemon
        # that changes nothing once stopped, so the agent does not wait for it.
        self.client.close()
        self._thread.join(0.1)

    def _run(self) -> None:
        delay = RETRY_MIN
        while not self.stop.is_set():
            try:
                if not self._stream():
                    return
                delay = RETRY_MIN
            except (httpx.HTTPError, RuntimeError) as exc:  # RuntimeError: the client was closed
                if self.stop.is_set():
                    return
                log.debug("event stream: %s; reconnecting in %.1fs", type(exc).__name__, delay)
            self.stop.wait(delay)
            delay = min(RETRY_MAX, delay * 2)

    def _stream(self) -> bool:
        """One connection; False when the control plane will never offer the stream to us."""
        with self.client.stream("GET", "/connector/events") as resp:
            if resp.status_code in (404, 405):
                log.info("the control plane has no replica event stream: role changes at heartbeats only")
                return False
            if resp.status_code != 200:
                log.debug("event stream refused: HTTP %d", resp.status_code)
                return True
            log.debug("event stream open")
            self.nudge("stream opened")  # whatever happened while it was closed
            kind = ""
            for line in resp.iter_lines():
                if self.stop.is_set():
                    return False
                if line.startswith("event:"):
                    kind = line.partition(":")[2].strip()
                elif not line and kind:
                    self.events += 1
                    self.nudge(kind)
                    kind = ""
        return True
