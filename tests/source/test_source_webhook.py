"""WebhookReceiver on its own: malformed requests are refused, counted, and trigger nothing."""

from __future__ import annotations

import asyncio
from typing import Any

from watcher._aio import wait_for
from watcher.source import WebhookReceiver


async def raw(host: str, port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(data)
    await writer.drain()
    answer = await wait_for(reader.read(), 10)
    writer.close()
    return answer


async def test_receiver_refuses_malformed_requests() -> None:
    outcomes: list[str] = []
    accepted: list[dict[str, Any]] = []
    rx = WebhookReceiver(
        "127.0.0.1",
        0,
        "s3",
        path="/hook",
        node_id="n1",
        on_accepted=accepted.append,
        on_outcome=outcomes.append,
    )
    await rx.start()
    try:
        host, port = rx.address
        ok = b'{"data": {"tunnel_id": "n1", "new_status": "down"}}'
        cases = [
            (b"GARBAGE\r\n\r\n", b" 400 "),
            (b"GET /hook HTTP/1.1\r\nhost: x\r\n\r\n", b" 405 "),
            (b"POST /other HTTP/1.1\r\ncf-webhook-auth: s3\r\ncontent-length: 2\r\n\r\n{}", b" 404 "),
            (b"POST /hook HTTP/1.1\r\ncf-webhook-auth: s3\r\ncontent-length: 9999999\r\n\r\n", b" 413 "),
            (b"POST /hook HTTP/1.1\r\ncf-webhook-auth: s4\r\ncontent-length: 2\r\n\r\n{}", b" 401 "),
            (
                b"POST /hook HTTP/1.1\r\ncf-webhook-auth: s3\r\ncontent-length: %d\r\n\r\n%s" % (len(ok), ok),
                b" 200 ",
            ),
        ]
        for request, status in cases:
            answer = await raw(host, port, request)
            assert answer.startswith(b"HTTP/1.1" + status), (request, answer)
    finally:
        await rx.close()
    assert outcomes == ["bad_request", "bad_request", "not_found", "bad_request", "unauthorized", "ok"]
    assert accepted == [{"data": {"tunnel_id": "n1", "new_status": "down"}}]
