"""The Source: the control plane's view of one node as a stream of Observations."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from .._aio import wait_for
from .._net import parse_listen
from .._types import IPNetwork, Observation, Trigger
from ..cfapi import ApiError, AsyncMeshApi, Backoff, RateLimited, ServerSentEvent
from ._parse import learned_routes, parse_replicas
from ._stats import SourceStats
from ._webhook import WebhookReceiver
from .config import NodeRef, SourceConfig

log = logging.getLogger("watcher.source")

# Client errors on the event stream that mean "this control plane has no event stream"
# (Cloudflare: 404 / 400 "could not route"); in `auto` mode they switch to polling only.
_NO_STREAM = frozenset({400, 404, 405, 501})
QUEUE_SIZE = 16
# After an event view, the confirming read waits this long: sent at once, it competed for the
# CPU with the apply of that view (measured), and it only matters when the view was wrong.
CONFIRM_DELAY = 0.05


class Source:
    """Reads GET /connections of one node on every trigger; see the package docstring."""

    def __init__(
        self,
        config: SourceConfig,
        node: NodeRef,
        client: AsyncMeshApi | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        last_event_id: str | None = None,
    ) -> None:
        """`last_event_id`: resume the event stream after this id (e.g. saved by a previous run)."""
        self.config = config
        self.node = node
        self._own_client = client is None
        self.client = client or AsyncMeshApi(
            config.api,
            config.read_token(),
            account_id=node.account_id,
            timeout=config.timeout,
            rate_limit=config.rate_limit.limit(),
            retries=1,
            max_wait=min(5.0, config.poll_interval),
        )
        self._clock = clock
        self.stats = SourceStats(
            client=self.client.stats, sse_mode="off" if config.subscribe == "off" else "sse"
        )
        self.last_event_id = last_event_id
        self.last: Observation | None = None  # the newest observation emitted (read or event view)
        self._queue: asyncio.Queue[Observation] | None = None
        # An event view supersedes every read sent before its event arrived: such a read may
        # predate the promotion, and the confirming read (sent after the event) follows anyway.
        self._view_at = float("-inf")
        # Event views need a base read that is not older than the stream: one sent after it opened.
        self._opened_at = float("inf")
        self._base_read_at = float("-inf")
        self._hold_until = float("-inf")  # no read before this (see CONFIRM_DELAY)
        self._pending: tuple[float, Trigger] | None = None
        self._wakeup = asyncio.Event()
        self._webhook: WebhookReceiver | None = None
        self._routes: tuple[IPNetwork, ...] | None = None
        self._routes_due = 0.0
        self._running = False
        self._last_error: ApiError | None = None

    # -- triggers --------------------------------------------------------------------------

    def request_refresh(self, trigger: Trigger = "manual", received_at: float | None = None) -> None:
        """Ask for a read of /connections now. Coalesced: while one is pending, more add nothing."""
        now = self._clock() if received_at is None else received_at
        if self._pending is None:
            self._pending = (now, trigger)
        else:
            self.stats.coalesced += 1
        self._wakeup.set()

    @property
    def webhook_address(self) -> tuple[str, int] | None:
        """Where the webhook receiver listens, once run() started it (None without a webhook)."""
        return self._webhook.address if self._webhook is not None else None

    # -- main loop -------------------------------------------------------------------------

    async def run(self) -> AsyncIterator[Observation]:
        """Observations until the caller stops iterating (then everything started is closed).

        A Source runs once: when it made its own client, the end of run() closes that client.
        """
        if self._running:
            raise RuntimeError("Source.run() is already running")
        self._running = True
        queue: asyncio.Queue[Observation] = asyncio.Queue(QUEUE_SIZE)
        self._queue = queue
        tasks: list[asyncio.Task[None]] = []
        try:
            if self.config.webhook is not None:
                await self._start_webhook()
            self.request_refresh("startup")
            tasks.append(asyncio.create_task(self._reader(queue), name="source-reader"))
            if self.config.subscribe != "off":
                tasks.append(asyncio.create_task(self._subscriber(), name="source-sse"))
            running: set[asyncio.Future[Any]] = set(tasks)
            while True:
                get = asyncio.ensure_future(queue.get())
                try:
                    done, _ = await asyncio.wait({get, *running}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if not get.done():
                        get.cancel()
                if get not in done:
                    for task in done:
                        task.result()  # a crashed helper task must not go unnoticed
                        running.remove(task)  # one that ended normally (SSE off): stop waiting on it
                    continue
                yield get.result()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if self._webhook is not None:
                await self._webhook.close()
                self._webhook = None
            if self._own_client:
                await self.client.aclose()
            self._running = False

    async def _start_webhook(self) -> None:
        webhook = self.config.webhook
        assert webhook is not None
        host, port = parse_listen(webhook.listen)

        def on_outcome(outcome: str) -> None:
            self.stats.webhooks[outcome] += 1
            if outcome == "unauthorized":
                self.stats.errors["webhook_unauthorized"] += 1

        self._webhook = WebhookReceiver(
            host,
            port,
            webhook.read_secret(),
            path=webhook.path,
            node_id=self.node.node_id,
            on_accepted=lambda _payload: self.request_refresh("webhook"),
            on_outcome=on_outcome,
        )
        await self._webhook.start()

    async def _reader(self, queue: asyncio.Queue[Observation]) -> None:
        cfg = self.config
        backoff = Backoff(cfg.poll_interval, max(cfg.backoff_max, cfg.poll_interval))
        next_poll = self._clock()
        while True:
            if self._pending is None:
                with contextlib.suppress(TimeoutError):
                    await wait_for(self._wakeup.wait(), max(0.0, next_poll - self._clock()))
            self._wakeup.clear()
            hold = self._hold_until - self._clock()
            if hold > 0:
                await asyncio.sleep(hold)
            pending, self._pending = self._pending, None
            received_at, trigger = pending if pending is not None else (self._clock(), "poll")
            sent_at = self._clock()
            observation = await self.read(received_at, trigger)
            if sent_at < self._view_at:
                # An event view came in meanwhile and its confirming read is pending: this
                # read may predate the promotion and must not flip the target back.
                self.stats.superseded += 1
                continue
            if observation.replicas is not None:
                backoff.reset()
                next_poll = self._clock() + cfg.poll_interval
            else:
                delay = backoff.next()
                if isinstance(self._last_error, RateLimited):
                    delay = max(delay, self._last_error.retry_after)
                next_poll = self._clock() + delay
            await queue.put(observation)

    async def read(self, received_at: float, trigger: Trigger) -> Observation:
        """One read of /connections (and routes when due), as an Observation; never raises ApiError.

        It becomes `last` unless an event view arrived while it was in flight (see _reader).
        """
        sent_at = self._clock()
        self._last_error = None
        try:
            replicas = parse_replicas(await self.client.connections(self.node.node_id))
        except ApiError as exc:
            self._last_error = exc
            self.stats.errors[exc.kind] += 1
            log.debug("reading connections failed: %s", exc)
            observation = Observation(
                received_at, trigger, None, error=f"{exc.kind}: {exc}", routes=self._routes
            )
        else:
            self.stats.last_success_monotonic = self._clock()
            self.stats.last_success_unix = time.time()
            if self.config.learn_routes:
                await self._read_routes()
            observation = Observation(received_at, trigger, replicas, routes=self._routes)
        self.stats.observations[trigger] += 1
        if sent_at >= self._view_at:
            self.last = observation
            if observation.replicas is not None:
                self._base_read_at = sent_at
        return observation

    async def _read_routes(self) -> None:
        if self._clock() < self._routes_due:
            return
        try:
            routes = await self.client.list_routes()
        except ApiError as exc:
            # Keep the routes learned last: a failed read says nothing about them.
            self.stats.errors[f"routes_{exc.kind}"] += 1
            self._routes_due = self._clock() + min(self.config.routes_interval, 5.0)
            log.warning("reading teamnet routes failed: %s", exc)
            return
        self._routes = learned_routes(routes, self.node.node_id)
        self._routes_due = self._clock() + self.config.routes_interval

    # -- event stream ----------------------------------------------------------------------

    async def _subscriber(self) -> None:
        backoff = Backoff(0.5, max(1.0, self.config.backoff_max))
        opened_once = False

        def on_open() -> None:
            nonlocal opened_once
            self.stats.sse_connected = True
            self.stats.sse_mode = "sse"
            backoff.reset()
            # Until a read sent from now on is in, events are not acted on directly (see
            # _event_view); resuming, the replayed events trigger that read.
            self._opened_at = self._clock()
            if self.last_event_id is None:
                # Nothing to replay from: a read closes the gap between our last read and now.
                self.request_refresh("poll" if opened_once else "startup")
            opened_once = True

        while True:
            delay: float
            try:
                async for event in self.client.events(self.node.node_id, self.last_event_id, on_open=on_open):
                    at = self._clock()
                    self.stats.events += 1
                    if event.id:
                        self.last_event_id = self.stats.last_event_id = event.id
                    log.debug("event %s %s: %s", event.id, event.event, event.data)
                    view = self._event_view(event, at)
                    self.request_refresh("event", at)  # the read that confirms (or corrects) the view
                    if view is not None and self._queue is not None:
                        self._view_at = at
                        self._hold_until = at + CONFIRM_DELAY
                        self.last = view
                        self.stats.event_views += 1
                        await self._queue.put(view)
                delay = backoff.next()  # the server closed the stream: reconnect soon
            except ApiError as exc:
                self.stats.errors[f"sse_{exc.kind}"] += 1
                if (
                    self.config.subscribe == "auto"
                    and not self.stats.sse_connected
                    and not opened_once
                    and exc.status in _NO_STREAM
                ):
                    log.info("the control plane offers no event stream (%s); polling only", exc)
                    self.stats.sse_mode = "poll-only"
                    return
                delay = backoff.next()
                if isinstance(exc, RateLimited):
                    delay = max(delay, exc.retry_after)
                log.warning("event stream: %s; reconnecting in %.1f s", exc, delay)
            finally:
                self.stats.sse_connected = False
            await asyncio.sleep(delay)

    def _event_view(self, event: ServerSentEvent, at: float) -> Observation | None:
        """The state a `promoted` event implies, built on the last observation, or None.

        The event names the new active replica, so the target can move now instead of after a
        round trip to /connections; the read it triggers confirms it or corrects it. Only when
        the base is a read sent after the stream (re)opened: an event replayed on resume may be
        older than what we know.
        """
        last = self.last
        if event.event != "promoted" or last is None or last.replicas is None:
            return None
        if self._base_read_at < self._opened_at:
            return None
        try:
            data = event.json()
        except ValueError:
            return None
        replica_id = data.get("replica_id") if isinstance(data, dict) else None
        if not any(r.id == replica_id for r in last.replicas):
            return None  # a replica we have not read yet: only the read knows its addresses
        replicas = tuple(
            dataclasses.replace(r, ha_status="active") if r.id == replica_id
            else dataclasses.replace(r, ha_status="passive") if r.ha_status == "active"
            else r
            for r in last.replicas
        )  # fmt: skip
        if replicas == last.replicas:
            return None
        return Observation(at, "event", replicas, routes=last.routes)
