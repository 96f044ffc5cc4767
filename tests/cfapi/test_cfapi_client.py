"""AsyncMeshApi / MeshApi against a real HTTP server on 127.0.0.1 with scripted answers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from cfapi_scripted import Reply, ScriptedServer, Seen, envelope, error, free_port

from watcher.cfapi import (
    ApiError,
    ApiTimeout,
    ApiUnreachable,
    AsyncMeshApi,
    MeshApi,
    RateLimited,
    ServerError,
)

Serve = Callable[[Callable[[Seen], Reply]], ScriptedServer]
TOKEN = "s3cret-token-value"


def paged(items: list[Any], seen: Seen) -> Reply:
    page, per = int(seen.query.get("page", 1)), int(seen.query.get("per_page", 20))
    chunk = items[(page - 1) * per : page * per]
    info = {"page": page, "per_page": per, "count": len(chunk), "total_count": len(items)}
    return Reply(body=envelope(chunk, result_info=info))


async def test_pagination_walks_every_page_and_sends_bearer(serve: Serve) -> None:
    nodes = [{"id": f"n{i}", "name": f"node{i}"} for i in range(7)]
    server = serve(lambda s: paged(nodes, s))
    async with AsyncMeshApi(server.url, TOKEN, account_id="acc") as api:
        got = await api.list_all("accounts/acc/warp_connector", {"is_deleted": "false"})
        assert got == nodes
        assert [it["id"] async for it in api.paginate("accounts/acc/warp_connector", per_page=3)] == [
            n["id"] for n in nodes
        ]
    pages = [s.query["page"] for s in server.seen if s.query.get("per_page") == "3"]
    assert pages == ["1", "2", "3"]
    assert all(s.headers["authorization"] == f"Bearer {TOKEN}" for s in server.seen)
    assert server.seen[0].query["is_deleted"] == "false"
    assert server.seen[0].path == "/client/v4/accounts/acc/warp_connector"


async def test_429_retry_after_is_waited_and_counted(serve: Serve) -> None:
    calls = iter([Reply(429, error(971, "Please wait"), {"retry-after": "1"})])

    def handler(seen: Seen) -> Reply:
        return next(calls, Reply(body=envelope([{"id": "r1", "ha_status": "active"}])))

    server = serve(handler)
    async with AsyncMeshApi(server.url, TOKEN, account_id="acc", max_wait=10) as api:
        result = await api.connections("node1")
        assert result == [{"id": "r1", "ha_status": "active"}]
        assert api.stats.requests["rate_limited"] == 1 and api.stats.requests["ok"] == 1
    assert len(server.seen) == 2
    gap = server.seen[1].at - server.seen[0].at
    assert gap >= 0.95, gap  # nothing sent before the retry-after expired


async def test_long_429_block_raises_and_sends_nothing_until_it_expires(serve: Serve) -> None:
    server = serve(lambda s: Reply(429, error(971, "Rate limited"), {"retry-after": "300"}))
    async with AsyncMeshApi(server.url, TOKEN, account_id="acc", max_wait=5) as api:
        with pytest.raises(RateLimited) as info:
            await api.get_node("n1")
        assert info.value.status == 429 and info.value.retry_after == 300
        with pytest.raises(RateLimited) as again:
            await api.get_node("n1")
        assert again.value.status is None and 290 < again.value.retry_after <= 300
        assert api.stats.requests["throttled"] >= 1
        assert api.budget.block_remaining() > 290
    assert len(server.seen) == 1


async def test_5xx_is_retried_with_growing_backoff_then_raised(serve: Serve) -> None:
    server = serve(lambda s: Reply(500, b"oops", {"content-type": "text/plain"}))
    api = AsyncMeshApi(server.url, TOKEN, account_id="acc", retries=3, backoff_base=0.2, backoff_cap=1.0)
    async with api:
        with pytest.raises(ServerError) as info:
            await api.get_node("n1")
        assert info.value.status == 500
        assert api.stats.retries == 3 and api.stats.requests["server_error"] == 4
        # A POST may have been applied before the 500: it is not re-sent.
        with pytest.raises(ServerError):
            await api.create_node("x")
    gaps = [b.at - a.at for a, b in zip(server.seen[:4], server.seen[1:4], strict=False)]
    ceilings = [0.2, 0.4, 0.8]
    assert all(c / 2 - 0.02 <= g <= c + 0.5 for g, c in zip(gaps, ceilings, strict=True)), gaps
    assert len(server.seen) == 5


async def test_5xx_then_success(serve: Serve) -> None:
    replies = iter([Reply(503, error(1, "busy")), Reply(502, b"")])
    server = serve(lambda s: next(replies, Reply(body=envelope({"id": "n1", "name": "office"}))))
    async with AsyncMeshApi(server.url, TOKEN, account_id="acc", backoff_base=0.05) as api:
        assert (await api.get_node("n1"))["name"] == "office"
    assert len(server.seen) == 3


async def test_api_error_message_and_no_retry(serve: Serve) -> None:
    server = serve(lambda s: Reply(400, error(1001, "network: '10.0.0.1/8' is not a valid CIDR")))
    async with AsyncMeshApi(server.url, TOKEN, account_id="acc") as api:
        with pytest.raises(ApiError) as info:
            await api.create_route("10.0.0.1/8", "n1", comment="c")
    assert info.value.status == 400 and info.value.codes == (1001,)
    assert "not a valid CIDR" in str(info.value)
    assert server.seen[0].body == {"network": "10.0.0.1/8", "tunnel_id": "n1", "comment": "c"}
    assert len(server.seen) == 1


async def test_unreachable_and_timeout() -> None:
    async with AsyncMeshApi(
        f"http://127.0.0.1:{free_port()}/client/v4", TOKEN, account_id="a", retries=1
    ) as api:
        with pytest.raises(ApiUnreachable) as info:
            await api.connections("n1")
        assert info.value.status is None and api.stats.requests["unreachable"] == 2


async def test_timeout(serve: Serve) -> None:
    server = serve(lambda s: Reply(body=envelope([]), delay=1.0))
    async with AsyncMeshApi(server.url, TOKEN, account_id="a", timeout=0.2, retries=0) as api:
        started = time.monotonic()
        with pytest.raises(ApiTimeout):
            await api.connections("n1")
        assert time.monotonic() - started < 0.9
        assert api.stats.requests["timeout"] == 1


async def test_account_discovery(serve: Serve) -> None:
    accounts: list[dict[str, str]] = [{"id": "acc1", "name": "one"}]
    server = serve(
        lambda s: paged(accounts, s) if s.path.endswith("/accounts") else Reply(body=envelope(s.path))
    )
    async with AsyncMeshApi(server.url, TOKEN) as api:
        assert await api.account() == "acc1"
        assert await api.call("GET", await api._acct("x")) == "/client/v4/accounts/acc1/x"
    accounts.append({"id": "acc2", "name": "two"})
    async with AsyncMeshApi(server.url, TOKEN) as api:
        with pytest.raises(ApiError, match=r"2 .*acc1.*acc2"):
            await api.account()


async def test_token_never_in_logs_or_repr(serve: Serve, caplog: pytest.LogCaptureFixture) -> None:
    server = serve(lambda s: Reply(500, b""))
    caplog.set_level(logging.DEBUG)
    api = AsyncMeshApi(server.url, TOKEN, account_id="acc", retries=1, backoff_base=0.01)
    async with api:
        with pytest.raises(ServerError) as info:
            await api.get_node("n1")
    assert TOKEN not in repr(api) and TOKEN not in str(info.value) and TOKEN not in repr(info.value)
    assert caplog.records and TOKEN not in caplog.text


def _sse_chunks(events: list[tuple[int, str]]) -> Iterator[bytes]:
    yield b": ping\n\n"
    for gen, kind in events:
        yield f'id: {gen}\nevent: {kind}\ndata: {{"generation": {gen}, "type": "{kind}"}}\n\n'.encode()


async def test_events_stream_resume_header_and_open_callback(serve: Serve) -> None:
    def handler(seen: Seen) -> Reply:
        if seen.path.endswith("/nope/events"):
            return Reply(404, error(1003, "node not found"))
        return Reply(
            headers={"content-type": "text/event-stream"},
            stream=_sse_chunks([(5, "promoted"), (6, "status")]),
        )

    server = serve(handler)
    opened: list[bool] = []
    async with AsyncMeshApi(server.url, TOKEN, account_id="acc") as api:
        got = [e async for e in api.events("n1", last_event_id="4", on_open=lambda: opened.append(True))]
        assert [(e.id, e.event, e.json()["generation"]) for e in got] == [
            ("5", "promoted", 5),
            ("6", "status", 6),
        ]
        assert opened == [True]
        with pytest.raises(ApiError) as info:
            async for _ in api.events("nope"):
                pass
        assert info.value.status == 404 and "node not found" in str(info.value)
    assert server.seen[0].headers["last-event-id"] == "4"
    assert server.seen[0].headers["accept"] == "text/event-stream"
    assert server.seen[0].path == "/client/v4/accounts/acc/warp_connector/n1/events"


def test_sync_facade(serve: Serve) -> None:
    server = serve(lambda s: Reply(body=envelope({"id": "n1", "method": s.method, "body": s.body})))
    with MeshApi(server.url, TOKEN, account_id="acc") as api:
        assert api.failover("n1", "r2")["body"] == {"client_id": "r2"}
        assert api.failover("n1", "r3")["method"] == "PUT"
        assert api.aio.stats.requests["ok"] == 2
    assert server.seen[0].path == "/client/v4/accounts/acc/warp_connector/n1/failover"


async def test_transport_is_the_seam() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=envelope("tok-" + request.url.path.split("/")[-2]))

    async with AsyncMeshApi(
        "https://example.invalid/client/v4", TOKEN, account_id="a", transport=httpx.MockTransport(handle)
    ) as api:
        assert await api.node_token("n9") == "tok-n9"


async def test_budget_paces_a_burst(serve: Serve) -> None:
    from watcher.cfapi import Budget, RateLimit

    server = serve(lambda s: Reply(body=envelope([])))
    budget = Budget(RateLimit(20, 1.0), burst=2)  # 20/s after a burst of 2
    async with AsyncMeshApi(server.url, TOKEN, account_id="a", budget=budget) as api:
        await asyncio.gather(*(api.connections("n") for _ in range(6)))
    span = server.seen[-1].at - server.seen[0].at
    assert span >= 0.15, span  # 4 paced requests at 50 ms each
