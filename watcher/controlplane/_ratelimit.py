"""Per-token API rate limit, shaped like Cloudflare's (1200 requests per 5 minutes per token).

A sliding window over the requests each token had admitted: a token that used its budget is refused
until its oldest counted request leaves the window, which after a burst is the whole window, as
Cloudflare's "all API calls for the next five minutes will be blocked". Refused requests do not
count, so a client that honours `retry-after` gets through as soon as it says.

Replica-agent endpoints (node tokens) are never limited: a heartbeat refused here would fail a
healthy replica over. Requests refused by authentication are not counted either (no token, no key).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ._util import RATE_LIMITED, ApiError


@dataclass(frozen=True, slots=True)
class RateLimit:
    requests: int  # 0: no limit
    window: float  # seconds

    @classmethod
    def parse(cls, value: str) -> RateLimit:
        """'1200/300' (requests/seconds) or '0' (off)."""
        text = value.strip()
        if text == "0":
            return cls(0, 0.0)
        count, sep, seconds = text.partition("/")
        try:
            requests, window = int(count), float(seconds)
        except ValueError:
            requests, window = -1, -1.0
        if not sep or requests < 1 or not (math.isfinite(window) and window > 0):
            raise ValueError(
                f"--rate-limit {value!r}: expected REQUESTS/SECONDS with both above 0 (e.g. 1200/300), "
                "or 0 to turn the limit off"
            )
        return cls(requests, window)

    @property
    def enabled(self) -> bool:
        return self.requests > 0


class RateLimiter:
    """Only touched from the event loop thread, so no lock."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self._seen: dict[str, deque[float]] = {}
        self.refused = 0

    def check(self, key: str) -> None:
        """Count one request for `key`, or raise the 429 ApiError when its budget is spent."""
        if not self.limit.enabled:
            return
        now = self.clock()
        seen = self._seen.setdefault(key, deque())
        horizon = now - self.limit.window
        while seen and seen[0] <= horizon:
            seen.popleft()
        if len(seen) >= self.limit.requests:
            self.refused += 1
            wait = max(1, math.ceil(seen[0] + self.limit.window - now))
            requests, window = self.limit.requests, self.limit.window
            raise ApiError(
                429,
                RATE_LIMITED,
                f"More than {requests} requests per {window:g} seconds reached. Please wait and consider "
                f"throttling your request speed (retry after {wait} s)",
                headers={
                    "retry-after": str(wait),
                    # The rate-limit headers Cloudflare documents (policy: quota q over window w).
                    "ratelimit": f'"default";r=0;t={wait}',
                    "ratelimit-policy": f'"default";q={requests};w={math.ceil(window)}',
                },
            )
        seen.append(now)
        if len(self._seen) > 10_000:
            self._forget(horizon)

    def _forget(self, horizon: float) -> None:
        # Deleted tokens would otherwise keep their deques forever.
        for key in [k for k, q in self._seen.items() if not q or q[-1] <= horizon]:
            del self._seen[key]
