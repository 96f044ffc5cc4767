"""Counters a client keeps for metrics; read them at scrape time, nothing is pushed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

# Outcomes counted in ClientStats.requests: "ok" and every ApiError.kind, plus "throttled"
# for requests the client's own budget refused to send.
OUTCOMES = (
    "ok",
    "api_error",
    "server_error",
    "rate_limited",
    "unreachable",
    "timeout",
    "bad_response",
    "throttled",
)


@dataclass
class ClientStats:
    requests: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    budget_wait_seconds: float = 0.0
    last_success_monotonic: float | None = None
    last_success_unix: float | None = None
    last_error: str | None = None
