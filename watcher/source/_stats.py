"""What the source counts, for the daemon's metrics. Read at scrape time; nothing is pushed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..cfapi import ClientStats


@dataclass
class SourceStats:
    """Counters and gauges of one Source.

    - `client.requests[outcome]`: API requests by outcome (ok, rate_limited, unreachable, ...).
    - `observations[trigger]`: reads emitted, by trigger; `coalesced`: triggers folded into a read.
    - `errors[kind]`: failed reads by ApiError kind; `sse_<kind>` for the event stream,
      `routes_<kind>` for route learning, `webhook_unauthorized` for bad webhook secrets.
    - `webhooks[outcome]`: webhook requests (ok, ignored, unauthorized, bad_request, not_found).
    - `events`: events received on the stream; `sse_connected`; `sse_mode`: sse | poll-only | off.
    - `event_views`: observations built from a `promoted` event's own data (before the read);
      `superseded`: reads dropped because such a view arrived while they were in flight.
    - `last_success_*`: last successful read of /connections (monotonic and Unix time).
    """

    client: ClientStats
    observations: Counter[str] = field(default_factory=Counter)
    coalesced: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    webhooks: Counter[str] = field(default_factory=Counter)
    events: int = 0
    event_views: int = 0
    superseded: int = 0
    sse_connected: bool = False
    sse_mode: str = "off"
    last_event_id: str | None = None
    last_success_monotonic: float | None = None
    last_success_unix: float | None = None
