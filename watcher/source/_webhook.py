"""A minimal HTTP/1.1 receiver for Cloudflare notification webhooks.

Small on purpose: it takes one POST per connection, checks `cf-webhook-auth` in constant time
and calls back; no framework, so it runs inside the watcher's event loop without its own
signal handling. Payloads are hints only (the source re-reads /connections), so nothing in
the body is trusted beyond the tunnel id used to skip other nodes' notifications.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import Callable
from typing import Any

from .._aio import wait_for

log = logging.getLogger("watcher.source.webhook")

MAX_BODY = 64 * 1024
MAX_HEADERS = 64
READ_TIMEOUT = 5.0
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
}

# Outcomes: "ok", "ignored" (another node), "unauthorized", "bad_request", "not_found".
OnOutcome = Callable[[str], None]
OnAccepted = Callable[[dict[str, Any]], None]


class WebhookReceiver:
    def __init__(
        self,
        host: str,
        port: int,
        secret: str,
        *,
        path: str = "/",
        node_id: str | None = None,
        on_accepted: OnAccepted,
        on_outcome: OnOutcome,
    ) -> None:
        self.host, self.port = host, port
        self._secret = secret.encode()
        self.path = path
        self.node_id = node_id
        self._on_accepted = on_accepted
        self._on_outcome = on_outcome
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port): useful when configured with port 0."""
        assert self._server is not None, "start() first"
        sockname = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        log.info("webhook receiver on http://%s:%d%s", *self.address, self.path)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status = await wait_for(self._serve(reader), READ_TIMEOUT)
        except TimeoutError:
            status = 408
            self._on_outcome("bad_request")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            status = 400
            self._on_outcome("bad_request")
        except ConnectionError:
            writer.close()
            return
        body = json.dumps({"success": status == 200}).encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        with contextlib.suppress(ConnectionError):
            writer.write(head.encode() + body)
            await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader) -> int:
        request_line = (await reader.readuntil(b"\r\n")).decode("latin-1").split()
        if len(request_line) != 3:
            raise ValueError("bad request line")
        method, target, _version = request_line
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS + 1):
            line = (await reader.readuntil(b"\r\n")).decode("latin-1")
            if line == "\r\n":
                break
            name, sep, value = line.partition(":")
            if not sep:
                raise ValueError("bad header line")
            headers[name.strip().lower()] = value.strip()
        else:
            raise ValueError("too many headers")
        if target.split("?", 1)[0] != self.path:
            self._on_outcome("not_found")
            return 404
        if method != "POST":
            self._on_outcome("bad_request")
            return 405
        length = int(headers.get("content-length", "0"))
        if length < 0 or length > MAX_BODY:
            self._on_outcome("bad_request")
            return 413
        body = await reader.readexactly(length)
        given = headers.get("cf-webhook-auth", "").encode()
        if not hmac.compare_digest(given, self._secret):
            log.warning("webhook with a missing or wrong cf-webhook-auth secret rejected")
            self._on_outcome("unauthorized")
            return 401
        try:
            payload = json.loads(body) if body else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            payload = {}  # still a valid hint: the secret was right
        if not isinstance(payload, dict):
            payload = {}
        data = payload.get("data")
        tunnel = data.get("tunnel_id") if isinstance(data, dict) else None
        if self.node_id and tunnel and tunnel != self.node_id:
            self._on_outcome("ignored")
            return 200
        self._on_outcome("ok")
        self._on_accepted(payload)
        return 200
