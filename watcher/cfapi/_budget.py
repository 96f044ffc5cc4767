"""Client-side rate budget: stay under the per-token limit, and obey a server-imposed block.

Cloudflare allows 1200 requests per 5 minutes per token; over it, every call answers 429 for
5 minutes. A token bucket refilled at requests/period keeps a steady poller far below the line,
and `block()` records a 429's retry-after so no request is sent before it expires.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RateLimit:
    requests: int = 1200
    period: float = 300.0

    @property
    def per_second(self) -> float:
        return self.requests / self.period


class Budget:
    """Token bucket plus a "blocked until" deadline, on a monotonic clock.

    `reserve()` takes one token and returns how long the caller must wait before sending; the
    waiting itself is the caller's (asyncio.sleep or time.sleep), so async and sync share this.
    `burst` bounds how many requests may go back to back; it defaults to 1/10 of the limit so a
    burst cannot eat the whole window.
    """

    def __init__(
        self,
        limit: RateLimit | None = None,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit or RateLimit()
        self.capacity = float(burst if burst is not None else max(1, self.limit.requests // 10))
        self._clock = clock
        self._tokens = self.capacity
        self._stamp = clock()
        self.blocked_until = 0.0

    def _refill(self, now: float) -> None:
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.limit.per_second)
        self._stamp = now

    def block_remaining(self) -> float:
        return max(0.0, self.blocked_until - self._clock())

    def reserve(self) -> float:
        """Take a token (going into debt if needed); return the seconds to wait before sending."""
        now = self._clock()
        self._refill(now)
        self._tokens -= 1.0
        wait = 0.0 if self._tokens >= 0 else -self._tokens / self.limit.per_second
        return max(wait, self.blocked_until - now)

    def refund(self) -> None:
        """Give back the token of a request that was not sent after all."""
        self._tokens = min(self.capacity, self._tokens + 1.0)

    def block(self, seconds: float) -> None:
        """No request before now + seconds (a 429's retry-after). Never shortens a longer block."""
        self.blocked_until = max(self.blocked_until, self._clock() + max(0.0, seconds))
        # After a block the server's window restarts: do not follow it with a full burst.
        self._tokens = min(self._tokens, 1.0)
