"""A minimal asyncio HTTP/1.1 server for GET /metrics and GET /status (loopback by default).

Two read-only endpoints do not justify a web framework in the daemon's event loop; requests are
served one per connection (`Connection: close`) with a bounded header size and read timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from .._aio import wait_for

log = logging.getLogger(__name__)
_MAX_HEADER = 16 * 1024
_READ_TIMEOUT = 5.0


class StatusServer:
    def __init__(self, registry: CollectorRegistry, status: Callable[[], dict[str, Any]]) -> None:
        self._registry = registry
        self._status = status
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._handle, host, port)
        sockname = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        method = "GET"
        try:
            head = await wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT)
            if len(head) > _MAX_HEADER:
                raise ValueError("header too large")
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            method, target, _version = request_line.split(" ", 2)
            status, ctype, body = self._route(method, target.split("?", 1)[0])
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            status, ctype, body = "400 Bad Request", "text/plain", b"bad request\n"
        except Exception:  # a broken status callback must not kill the server
            log.exception("status server: handler failed")
            status, ctype, body = "500 Internal Server Error", "text/plain", b"internal error\n"
        head_out = (
            f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        with contextlib.suppress(ConnectionError):
            writer.write(head_out + (b"" if method == "HEAD" else body))
            await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    def _route(self, method: str, path: str) -> tuple[str, str, bytes]:
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", "text/plain", b"only GET\n"
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, generate_latest(self._registry)
        if path == "/status":
            body = json.dumps(self._status(), indent=2, sort_keys=True, default=str).encode() + b"\n"
            return "200 OK", "application/json", body
        if path in ("/", "/healthz"):
            return "200 OK", "text/plain", b"mesh-watcher: see /metrics and /status\n"
        return "404 Not Found", "text/plain", b"not found\n"
