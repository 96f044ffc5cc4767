"""How busy the whole host was (all CPUs, from /proc/stat), sampled on a thread.

The bench shares its 2 CPUs with the processes under test and with whatever else runs; a tail
latency means something different on a saturated host than on an idle one, so P1 records it.
"""

from __future__ import annotations

import threading
import time


def _read() -> tuple[int, int]:
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    return sum(fields), fields[3] + fields[4]  # total, idle + iowait


class HostLoad:
    def __init__(self, period: float = 0.1, max_seconds: float = 1800) -> None:
        self.samples: list[tuple[float, float]] = []  # (end of window, % busy)
        self._lock = threading.Lock()
        self._period = period
        self._end = time.monotonic() + max_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="host-load", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        prev = _read()
        while not self._stop.wait(self._period) and time.monotonic() < self._end:
            cur = _read()
            total = cur[0] - prev[0]
            busy = 100.0 * (1 - (cur[1] - prev[1]) / total) if total > 0 else 0.0
            with self._lock:
                self.samples.append((time.monotonic(), busy))
            prev = cur

    def busiest(self, start: float, end: float) -> float | None:
        """Highest % busy of the windows overlapping [start, end]."""
        with self._lock:
            hits = [b for at, b in self.samples if start <= at <= end + self._period]
        return max(hits) if hits else None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
