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

import httpx

from ._store import Row, Store

log = logging.getLogger("watcher.controlplane.events")

QUEUE_LIMIT = 10_000
WEBHOOK_ATTEMPTS = 4
WEBHOOK_TIMEOUT = 3.0
WEBHOOK_CONCURRENCY = 8


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

    async def stream(self, node_id: str, last_id: int) -> AsyncIterator[str]:
        queue: asyncio.Queue[Row | None] = asyncio.Queue(QUEUE_LIMIT)
        self._subs.setdefault(node_id, set()).add(queue)
        try:
            yield ": connected\n\n"
            last = last_id
            while True:  # replay in pages, so a long backlog never sits in memory at once
                backlog = self.store.events_after(node_id, last, limit=1000)
                for event in backlog:
                    last = event["generation"]
                    yield format_sse(event)
                if len(backlog) < 1000:
                    break
            while not self.stopping.is_set():
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=self.ping_interval)
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
                            log.warning("webhook %s refused the notification: HTTP %s", url, resp.status_code)
                        return
                    problem = f"HTTP {resp.status_code}"
                except httpx.HTTPError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                log.info("webhook %s attempt %d/%d failed: %s", url, attempt, WEBHOOK_ATTEMPTS, problem)
                if attempt < WEBHOOK_ATTEMPTS:
                    await asyncio.sleep(delay)
                    delay *= 3
            self.failed += 1
            log.warning("webhook %s: giving up after %d attempts", url, WEBHOOK_ATTEMPTS)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._client is not None:
            await self._client.aclose()
