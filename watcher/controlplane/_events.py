"""Per-node event stream (SSE, replay then live) and webhook delivery.

Events are written to SQLite by the engine before they are published here, so a subscriber that
resumes with Last-Event-ID gets every later event from the database, then the live ones. The
subscriber's queue is registered *before* the replay query: an event committed between the two is
both replayed and queued, and the generation check drops the duplicate, so none is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx

from .._aio import wait_for
from ._store import Row, Store
from ._util import now_iso

log = logging.getLogger("watcher.controlplane.events")

QUEUE_LIMIT = 10_000
WEBHOOK_ATTEMPTS = 4
WEBHOOK_TIMEOUT = 3.0
WEBHOOK_CONCURRENCY = 8


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def format_sse(event: Row) -> str:
    return f"id: {event['generation']}\nevent: {event['type']}\ndata: {json.dumps(event)}\n\n"


class EventHub:
    def __init__(self, store: Store, *, ping_interval: float = 10.0) -> None:
        self.store = store
        self.ping_interval = ping_interval
        self._subs: dict[str, set[asyncio.Queue[Row | None]]] = {}
        self.stopping = asyncio.Event()

    def publish(self, event: Row) -> None:
        for queue in list(self._subs.get(event["tunnel_id"], ())):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                # A stalled reader: end its stream; it resumes with Last-Event-ID and misses nothing.
                self._subs[event["tunnel_id"]].discard(queue)
                with contextlib.suppress(asyncio.QueueFull):
                    queue.get_nowait()
                    queue.put_nowait(None)

    def close_all(self) -> None:
        self.stopping.set()
        for queues in self._subs.values():
            for queue in queues:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(None)

    async def stream(self, node_id: str, last_id: int | None, *, replay: bool = True) -> AsyncIterator[str]:
        """Replay the retained events after `last_id`, then stream live ones.

        `last_id` None (no Last-Event-ID): a new subscriber; it gets what is retained (or, with
        `replay=False`, only what happens from now on). A `last_id` outside the retained window
        (older than the oldest kept event, or newer than the node's generation, e.g. after the state
        was reset) cannot be resumed without a gap: the stream says so with one `reset` event, whose
        id is the current generation, and then goes live. The client re-reads the full state.
        """
        queue: asyncio.Queue[Row | None] = asyncio.Queue(QUEUE_LIMIT)
        self._subs.setdefault(node_id, set()).add(queue)
        try:
            yield ": connected\n\n"
            first, current = self.store.event_window(node_id)
            if last_id is None:
                last = 0 if replay else current
            elif last_id > current or last_id + 1 < first:
                last = current
                yield format_sse(reset_event(node_id, last_id, first, current))
            else:
                last = last_id
            while last < current:  # replay in pages, so a long backlog never sits in memory at once
                backlog = self.store.events_after(node_id, last, limit=1000)
                for event in backlog:
                    last = event["generation"]
                    yield format_sse(event)
                if len(backlog) < 1000:
                    break
            while not self.stopping.is_set():
                try:
                    item = await wait_for(queue.get(), timeout=self.ping_interval)
                except TimeoutError:
                    yield ": ping\n\n"
                    continue
                if item is None:
                    return
                if item["generation"] <= last:
                    continue
                last = item["generation"]
                yield format_sse(item)
        finally:
            self._subs.get(node_id, set()).discard(queue)


def reset_event(node_id: str, requested: int, first: int, current: int) -> Row:
    """The `reset` event: the requested position cannot be resumed; re-read the full state."""
    why = (
        f"Last-Event-ID {requested} is newer than this node's generation {current} (the state was reset?)"
        if requested > current
        else f"events after {requested} are no longer retained (the oldest kept is {first})"
    )
    return {
        "generation": current,
        "type": "reset",
        "tunnel_id": node_id,
        "replica_id": None,
        "reason": f"{why}: re-read the node and its connections",
        "requested": requested,
        "oldest_retained": first,
        "ha_status": None,
        "status": None,
        "ts": now_iso(),
    }


class Webhooks:
    """Fire-and-forget delivery with bounded retries; the engine never waits for it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._tasks: set[asyncio.Task[None]] = set()
        self._sem = asyncio.Semaphore(WEBHOOK_CONCURRENCY)
        self._client: httpx.AsyncClient | None = None
        self.delivered = 0
        self.failed = 0

    def notify(self, account_id: str, payload: dict[str, Any]) -> None:
        hooks, _ = self.store.webhooks(account_id)
        for hook in hooks:
            body = {**payload, "policy_id": hook["id"], "name": hook["name"]}
            task = asyncio.get_running_loop().create_task(self._deliver(hook["url"], hook["secret"], body))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, url: str, secret: str, body: dict[str, Any]) -> None:
        shown = f"{body['policy_id']} ({_origin(url)})"  # never the path: it often holds a secret
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT)
        delay = 0.2
        async with self._sem:
            for attempt in range(1, WEBHOOK_ATTEMPTS + 1):
                try:
                    resp = await self._client.post(url, json=body, headers={"cf-webhook-auth": secret})
                    if resp.status_code < 500 and resp.status_code != 429:
                        self.delivered += 1
                        if resp.status_code >= 400:
                            log.warning(
                                "webhook %s refused the notification: HTTP %s", shown, resp.status_code
                            )
                        return
                    problem = f"HTTP {resp.status_code}"
                except httpx.HTTPError as exc:
                    # The exception text may carry the URL; its type says enough.
                    problem = type(exc).__name__
                log.info("webhook %s attempt %d/%d failed: %s", shown, attempt, WEBHOOK_ATTEMPTS, problem)
                if attempt < WEBHOOK_ATTEMPTS:
                    await asyncio.sleep(delay)
                    delay *= 3
            self.failed += 1
            log.warning("webhook %s: giving up after %d attempts", shown, WEBHOOK_ATTEMPTS)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._client is not None:
            await self._client.aclose()
