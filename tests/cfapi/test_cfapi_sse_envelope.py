"""SSE decoding, envelope parsing, retry-after, budget and backoff arithmetic."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from watcher.cfapi import (
    ApiError,
    Backoff,
    BadResponse,
    Budget,
    RateLimit,
    RateLimited,
    ServerError,
    iter_sse,
    parse_response,
    parse_retry_after,
)


def test_sse_fields_comments_and_multiline_data() -> None:
    text = ': ping\n\nid: 7\nevent: promoted\ndata: {"a":\ndata:  1}\n\nevent: x\n\ndata\n\n'
    events = list(iter_sse([text]))
    assert [(e.id, e.event, e.data) for e in events] == [
        ("7", "promoted", '{"a":\n 1}'),
        ("7", "message", ""),
    ]
    assert events[0].json() == {"a": 1}


def test_sse_line_endings_split_anywhere() -> None:
    text = "id: 1\r\nevent: a\r\ndata: x\r\n\r\nid: 2\revent: b\rdata: y\r\rid: 3\ndata: z\n\n"
    whole = [(e.id, e.event, e.data) for e in iter_sse([text])]
    assert whole == [("1", "a", "x"), ("2", "b", "y"), ("3", "message", "z")]
    for size in (1, 2, 3, 5):
        chunks = [text[i : i + size] for i in range(0, len(text), size)]
        assert [(e.id, e.event, e.data) for e in iter_sse(chunks)] == whole, size


def test_sse_retry_and_incomplete_event_dropped() -> None:
    events = list(iter_sse(["retry: 1500\ndata: a\n\nretry: x\ndata: b\n\ndata: never-ended\n"]))
    assert [(e.data, e.retry) for e in events] == [("a", 1500), ("b", 1500)]


def _resp(status: int, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    request = httpx.Request("GET", "http://h/client/v4/accounts/a/warp_connector")
    kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
    return httpx.Response(status, headers=headers, request=request, **kwargs)  # type: ignore[arg-type]


def test_envelope_success_and_result_info() -> None:
    env = parse_response(
        _resp(200, {"success": True, "errors": [], "messages": [], "result": [1], "result_info": {"page": 1}})
    )
    assert env.result == [1] and env.result_info == {"page": 1}


def test_envelope_errors_carry_status_codes_and_message() -> None:
    body = {"success": False, "errors": [{"code": 1001, "message": "network: not a CIDR"}], "result": None}
    with pytest.raises(ApiError) as info:
        parse_response(_resp(400, body))
    assert info.value.status == 400 and info.value.codes == (1001,)
    assert str(info.value) == "network: not a CIDR"
    with pytest.raises(ServerError) as server:
        parse_response(_resp(502, b"<html>bad gateway</html>"))
    assert server.value.status == 502 and "502" in str(server.value)
    with pytest.raises(ApiError, match="refused"):
        parse_response(_resp(200, {"success": False, "errors": [{"code": 9, "message": "refused"}]}))
    with pytest.raises(BadResponse):
        parse_response(_resp(200, {"hello": 1}))


def test_rate_limited_retry_after_forms() -> None:
    with pytest.raises(RateLimited) as info:
        parse_response(
            _resp(
                429,
                {"success": False, "errors": [{"code": 971, "message": "slow down"}]},
                {"retry-after": "7"},
            )
        )
    assert info.value.retry_after == 7.0 and info.value.status == 429
    assert parse_retry_after(None) == 300.0  # Cloudflare's documented 5-minute block
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    assert 55 <= parse_retry_after(later) <= 60
    assert parse_retry_after("garbage", default=12) == 12


def test_budget_burst_then_paced_and_blocks() -> None:
    now = [100.0]
    budget = Budget(RateLimit(1200, 300), burst=3, clock=lambda: now[0])
    assert [budget.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert budget.reserve() == pytest.approx(0.25)  # 4 per second
    assert budget.reserve() == pytest.approx(0.5)
    now[0] += 10
    assert budget.reserve() == 0.0
    budget.block(300)
    assert budget.reserve() == pytest.approx(300)
    budget.block(5)  # a shorter block never shortens the running one
    now[0] += 299
    assert budget.reserve() == pytest.approx(1.0, abs=0.6)
    now[0] += 2
    assert budget.block_remaining() == 0.0


def test_backoff_grows_bounded_and_jittered() -> None:
    backoff = Backoff(0.5, 8.0, rng=random.Random(1))
    delays = [backoff.next() for _ in range(10)]
    ceilings = [min(8.0, 0.5 * 2**i) for i in range(10)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert max(delays) <= 8.0 and len(set(delays)) == 10
    backoff.reset()
    assert backoff.next() <= 0.5
    with pytest.raises(ValueError):
        Backoff(0)
