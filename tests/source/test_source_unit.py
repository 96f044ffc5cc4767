"""The Source against a real HTTP server with scripted answers (errors a live control plane does not give)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
from cfapi_scripted import Reply, ScriptedServer, Seen, envelope, error, free_port

from watcher._types import Observation
from watcher.source import NodeRef, Source, SourceConfig

Serve = Callable[[Callable[[Seen], Reply]], ScriptedServer]
NODE = NodeRef(account_id="acc", node_id="n1")
ACTIVE = [
    {"id": "r1", "ha_status": "active", "conns": [{"origin_ip": "203.0.113.11"}]},
    {"id": "r2", "ha_status": "passive", "conns": []},
]


def config(url: str, **kw: Any) -> SourceConfig:
    base: dict[str, Any] = {
        "api": url,
        "token": "t0k",
        "poll_interval": 0.5,
        "subscribe": "off",
        "timeout": 1.0,
    }
    return SourceConfig.model_validate({**base, **kw})


async def take(it: AsyncIterator[Observation], n: int, within: float = 10.0) -> list[Observation]:
    out = []
    async with asyncio.timeout(within):
        for _ in range(n):
            out.append(await anext(it))
    return out


def connections_only(replies: Iterator[Reply] | None = None) -> Callable[[Seen], Reply]:
    def handler(seen: Seen) -> Reply:
        assert seen.path == "/client/v4/accounts/acc/warp_connector/n1/connections", seen.path
        return next(replies, Reply(body=envelope(ACTIVE))) if replies else Reply(body=envelope(ACTIVE))

    return handler


async def test_startup_then_polls(serve: Serve) -> None:
    server = serve(connections_only())
    source = Source(config(server.url), NODE)
    it = source.run()
    try:
        obs = await take(it, 3)
    finally:
        await it.aclose()
    assert [o.trigger for o in obs] == ["startup", "poll", "poll"]
    assert obs[0].replicas is not None and [r.ha_status for r in obs[0].replicas] == ["active", "passive"]
    assert obs[0].replicas[0].origin_ips == ("203.0.113.11",)
    gaps = [b.at - a.at for a, b in zip(server.seen, server.seen[1:], strict=False)]
    assert all(g >= 0.45 for g in gaps), gaps
    assert source.stats.observations["poll"] == 2 and source.stats.last_success_monotonic is not None
    assert source.client.stats.requests["ok"] == 3


async def test_server_errors_give_error_observations_then_recover(serve: Serve) -> None:
    replies = iter([Reply(500, error(1, "db locked"))] * 4)
    server = serve(connections_only(replies))
    source = Source(config(server.url, poll_interval=0.5, backoff_max=1.0), NODE)
    it = source.run()
    try:
        obs = await take(it, 3)
    finally:
        await it.aclose()
    # retries=1 inside the client: two 500s per failed read, so reads 1 and 2 fail, read 3 works.
    assert [o.replicas is None for o in obs] == [True, True, False]
    assert obs[0].error is not None and obs[0].error.startswith("server_error: db locked")
    assert source.stats.errors["server_error"] == 2
    assert len(server.seen) == 5


async def test_unreachable_control_plane() -> None:
    source = Source(config(f"http://127.0.0.1:{free_port()}/client/v4"), NODE)
    it = source.run()
    try:
        (obs,) = await take(it, 1)
    finally:
        await it.aclose()
    assert obs.replicas is None and obs.error is not None and obs.error.startswith("unreachable")
    assert source.stats.errors["unreachable"] == 1


async def test_rate_limited_read_waits_retry_after(serve: Serve) -> None:
    replies = iter([Reply(429, error(971, "slow down"), {"retry-after": "2"})])
    server = serve(connections_only(replies))
    cfg = config(server.url, poll_interval=0.5)
    source = Source(cfg, NODE)
    it = source.run()
    try:
        obs = await take(it, 2)
    finally:
        await it.aclose()
    assert obs[0].replicas is None and obs[0].error is not None and "rate_limited" in obs[0].error
    assert obs[1].replicas is not None
    assert server.seen[1].at - server.seen[0].at >= 1.95  # the 429's block was honoured
    assert source.stats.client.requests["rate_limited"] == 1


async def test_refresh_requests_coalesce(serve: Serve) -> None:
    server = serve(lambda s: Reply(body=envelope(ACTIVE), delay=0.3))
    source = Source(config(server.url, poll_interval=30), NODE)
    it = source.run()
    try:
        (first,) = await take(it, 1)
        t0 = time.monotonic()
        for _ in range(20):
            source.request_refresh("manual")
            await asyncio.sleep(0.01)
        (obs,) = await take(it, 1)
        # The burst started a read at once, and arrivals during it add exactly one more read.
        (obs2,) = await take(it, 1)
    finally:
        await it.aclose()
    assert first.trigger == "startup" and obs.trigger == obs2.trigger == "manual"
    assert obs.received_at <= t0 + 0.05
    assert len(server.seen) == 3 and source.stats.coalesced >= 18


async def test_webhook_right_secret_refreshes_wrong_secret_401(serve: Serve, tmp_path: Any) -> None:
    (tmp_path / "secret").write_text("hook-secret\n")
    server = serve(connections_only())
    cfg = config(
        server.url,
        poll_interval=60,
        webhook={"listen": "127.0.0.1:0", "secret_file": str(tmp_path / "secret")},
    )
    source = Source(cfg, NODE)
    it = source.run()
    try:
        (startup,) = await take(it, 1)
        assert source.webhook_address is not None
        host, port = source.webhook_address
        url = f"http://{host}:{port}/"
        payload = {
            "name": "x",
            "alert_type": "tunnel_health_event",
            "data": {"tunnel_id": "n1", "new_status": "degraded"},
        }
        async with httpx.AsyncClient(timeout=5) as http:
            bad = await http.post(url, json=payload, headers={"cf-webhook-auth": "wrong"})
            missing = await http.post(url, json=payload)
            other = await http.post(
                url, json={"data": {"tunnel_id": "n2"}}, headers={"cf-webhook-auth": "hook-secret"}
            )
            await asyncio.sleep(0.3)
            assert len(server.seen) == 1  # none of those caused a read
            sent = time.monotonic()
            good = await http.post(url, json=payload, headers={"cf-webhook-auth": "hook-secret"})
        (obs,) = await take(it, 1, within=5)
    finally:
        await it.aclose()
    assert (bad.status_code, missing.status_code, other.status_code, good.status_code) == (401, 401, 200, 200)
    assert obs.trigger == "webhook" and obs.replicas is not None and obs.received_at >= sent
    assert source.stats.webhooks["unauthorized"] == 2 and source.stats.errors["webhook_unauthorized"] == 2
    assert source.stats.webhooks["ignored"] == 1 and source.stats.webhooks["ok"] == 1
    assert startup.trigger == "startup"


def sse(events: list[int], hold: float = 0.0) -> Iterator[bytes]:
    for gen in events:
        yield f'id: {gen}\nevent: promoted\ndata: {{"generation": {gen}}}\n\n'.encode()
    time.sleep(hold)


async def test_sse_events_trigger_reads_and_resume_with_last_event_id(serve: Serve) -> None:
    streams = iter([sse([3, 4], hold=0.5), sse([5], hold=0.5)])

    def handler(seen: Seen) -> Reply:
        if seen.path.endswith("/events"):
            chunks = next(streams, None)
            if chunks is None:
                return Reply(503, error(1, "no more"))
            return Reply(headers={"content-type": "text/event-stream"}, stream=chunks)
        return Reply(body=envelope(ACTIVE))

    server = serve(handler)
    source = Source(config(server.url, poll_interval=60, subscribe="sse"), NODE)
    it = source.run()
    triggers: list[str] = []
    try:
        async with asyncio.timeout(10):
            while source.stats.events < 3 or len(triggers) < 3:
                triggers.append((await anext(it)).trigger)
    finally:
        await it.aclose()
    assert triggers[0] == "startup" and "event" in triggers
    event_streams = [s for s in server.seen if s.path.endswith("/events")]
    assert "last-event-id" not in event_streams[0].headers
    assert event_streams[1].headers["last-event-id"] == "4"
    assert source.last_event_id == "5" and source.stats.events == 3


async def test_auto_subscribe_falls_back_to_polling_on_404(serve: Serve) -> None:
    def handler(seen: Seen) -> Reply:
        if seen.path.endswith("/events"):
            return Reply(404, error(7003, "Could not route to /events"))
        return Reply(body=envelope(ACTIVE))

    server = serve(handler)
    source = Source(config(server.url, subscribe="auto"), NODE)
    it = source.run()
    try:
        obs = await take(it, 1)
        cpu = time.process_time()
        obs += await take(it, 2)  # about 1 s of waiting for polls
        cpu = time.process_time() - cpu
    finally:
        await it.aclose()
    assert cpu < 0.5, f"{cpu:.2f} s of CPU while idle: the loop spins"
    assert [o.trigger for o in obs] == ["startup", "poll", "poll"]
    assert source.stats.sse_mode == "poll-only"
    assert len([s for s in server.seen if s.path.endswith("/events")]) == 1


PROMOTED = [
    {"id": "r1", "ha_status": "passive", "conns": []},
    {"id": "r2", "ha_status": "active", "conns": [{"origin_ip": "203.0.113.12"}]},
]


async def test_promoted_event_acts_at_once_then_the_read_confirms(serve: Serve) -> None:
    promoted = False

    def stream() -> Iterator[bytes]:
        nonlocal promoted
        time.sleep(0.5)  # after the read that the stream's opening triggers
        promoted = True
        yield b'id: 7\nevent: promoted\ndata: {"generation": 7, "type": "promoted", "replica_id": "r2"}\n\n'
        time.sleep(1.0)

    def handler(seen: Seen) -> Reply:
        if seen.path.endswith("/events"):
            return Reply(headers={"content-type": "text/event-stream"}, stream=stream())
        # A slow read: the event's own data must not wait for it.
        return Reply(body=envelope(PROMOTED if promoted else ACTIVE), delay=0.3 if promoted else 0.0)

    server = serve(handler)
    source = Source(config(server.url, poll_interval=60, subscribe="sse"), NODE)
    it = source.run()
    seen: list[Observation] = []
    try:
        async with asyncio.timeout(10):
            while sum(o.trigger == "event" for o in seen) < 2:
                seen.append(await anext(it))
    finally:
        await it.aclose()
    events = [o for o in seen if o.trigger == "event"]
    assert len(events) == 2 and source.stats.event_views == 1
    view, confirm = events
    # The view: r2 active and r1 (active before) passive, long before the 0.3 s read answered.
    assert view.replicas is not None and {r.id: r.ha_status for r in view.replicas} == {
        "r1": "passive",
        "r2": "active",
    }
    assert confirm.received_at == view.received_at  # the same trigger, confirmed by the read
    assert confirm.replicas is not None and confirm.replicas[1].origin_ips == ("203.0.113.12",)
    assert source.last is confirm


async def test_event_without_a_known_replica_waits_for_the_read(serve: Serve) -> None:
    def stream() -> Iterator[bytes]:
        time.sleep(0.5)
        yield b'id: 3\nevent: promoted\ndata: {"generation": 3, "replica_id": "r9"}\n\n'
        time.sleep(1.0)

    def handler(seen: Seen) -> Reply:
        if seen.path.endswith("/events"):
            return Reply(headers={"content-type": "text/event-stream"}, stream=stream())
        return Reply(body=envelope(ACTIVE))

    server = serve(handler)
    source = Source(config(server.url, poll_interval=60, subscribe="sse"), NODE)
    it = source.run()
    try:
        async with asyncio.timeout(10):
            while True:
                obs = await anext(it)
                if obs.trigger == "event":
                    break
    finally:
        await it.aclose()
    # r9 is in no read yet: only a read can say where it is, so no view was made up.
    assert source.stats.event_views == 0 and obs.replicas is not None and len(obs.replicas) == 2
