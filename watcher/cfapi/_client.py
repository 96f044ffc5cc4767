"""The async client: transport, auth, rate budget, retries, envelopes, pagination, events."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx

from .. import __version__
from ._backoff import Backoff
from ._budget import Budget, RateLimit
from ._endpoints import Endpoints
from ._envelope import Envelope, parse_response
from ._errors import ApiError, ApiTimeout, ApiUnreachable, BadResponse, RateLimited, ServerError
from ._sse import ServerSentEvent, SSEDecoder, aiter_sse
from ._stats import ClientStats

log = logging.getLogger("watcher.cfapi")

CLOUDFLARE_API = "https://api.cloudflare.com/client/v4"
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# Pages larger than this are refused by Cloudflare for most list endpoints.
DEFAULT_PER_PAGE = 50
_MAX_PAGES = 1000


class AsyncMeshApi(Endpoints):
    """Client for the Cloudflare v4 API shape (Cloudflare itself, or the embedded control plane).

    Only `base_url`, `token` and `account_id` differ between the two. `transport` replaces
    httpx's network transport (tests, proxies). `budget` may be shared by every client that
    uses the same token, since the limit is per token. A request that would have to wait for
    the budget longer than `max_wait` seconds raises RateLimited instead of being sent.
    `retries` bounds re-sends after 429, 5xx (idempotent methods) and connection failures.
    """

    def __init__(
        self,
        base_url: str = CLOUDFLARE_API,
        token: str | None = None,
        *,
        account_id: str | None = None,
        timeout: float = 10.0,
        stream_read_timeout: float = 35.0,
        rate_limit: RateLimit | None = None,
        budget: Budget | None = None,
        retries: int = 2,
        max_wait: float = 30.0,
        backoff_base: float = 0.25,
        backoff_cap: float = 4.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"user-agent": f"mesh-watcher/{__version__}", "accept": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        # Keep-alives arrive every ~10 s; a stream silent for longer than this is dead.
        self.stream_read_timeout = stream_read_timeout
        self.budget = budget or Budget(rate_limit)
        self.retries = retries
        self.max_wait = max_wait
        self._backoff_args = (backoff_base, backoff_cap)
        self.stats = ClientStats()
        self._account_id = account_id
        self._account_lock = asyncio.Lock()
        self._http = httpx.AsyncClient(
            base_url=self.base_url + "/",
            headers=headers,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=False,
        )

    def __repr__(self) -> str:  # no token here: reprs end up in logs
        return f"AsyncMeshApi({self.base_url!r}, account_id={self._account_id!r})"

    async def __aenter__(self) -> AsyncMeshApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- account ---------------------------------------------------------------------------

    async def account(self) -> str:
        """The account id: the configured one, else the only account the token sees."""
        if self._account_id:
            return self._account_id
        async with self._account_lock:
            if not self._account_id:
                accounts = await self.list_accounts()
                if len(accounts) != 1:
                    names = ", ".join(f"{a.get('id')} ({a.get('name')})" for a in accounts) or "none"
                    raise ApiError(
                        f"cannot choose an account: the token sees {len(accounts)} ({names});"
                        " pass an account id"
                    )
                self._account_id = str(accounts[0]["id"])
        return self._account_id

    # -- sending ---------------------------------------------------------------------------

    async def _wait_budget(self, method: str, path: str) -> None:
        wait = self.budget.reserve()
        if wait > self.max_wait:
            self.budget.refund()
            self.stats.requests["throttled"] += 1
            raise RateLimited(
                f"rate limit: no request allowed for {wait:.0f} s (client-side budget / server block)",
                retry_after=wait,
                method=method,
                path=path,
            )
        if wait > 0:
            self.stats.budget_wait_seconds += wait
            await asyncio.sleep(wait)

    def _count(self, exc: ApiError | None) -> None:
        if exc is None:
            self.stats.requests["ok"] += 1
            self.stats.last_success_monotonic = time.monotonic()
            self.stats.last_success_unix = time.time()
        else:
            self.stats.requests[exc.kind] += 1
            self.stats.last_error = str(exc)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        retries: int | None = None,
    ) -> Envelope:
        """Send one API call (path relative to the base URL); return its envelope or raise ApiError."""
        method = method.upper()
        path = path.lstrip("/")
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        backoff = Backoff(*self._backoff_args)
        attempts = (self.retries if retries is None else retries) + 1
        for attempt in range(attempts):
            await self._wait_budget(method, path)
            err: ApiError
            retryable = False
            try:
                response = await self._http.request(method, path, params=clean, json=json)
            except httpx.TimeoutException as exc:
                err = ApiTimeout(
                    f"{method} /{path}: no answer within {self.timeout:g} s", method=method, path=path
                )
                retryable = method in _IDEMPOTENT or isinstance(exc, httpx.ConnectTimeout)
            except httpx.TransportError as exc:
                err = ApiUnreachable(
                    f"{method} /{path}: {exc or type(exc).__name__}", method=method, path=path
                )
                retryable = method in _IDEMPOTENT or isinstance(exc, httpx.ConnectError)
            else:
                try:
                    envelope = parse_response(response)
                except RateLimited as exc:
                    # Nothing was done by the server, so even a POST may be re-sent, after the block.
                    self.budget.block(exc.retry_after)
                    err, retryable = exc, exc.retry_after <= self.max_wait
                except ServerError as exc:
                    err, retryable = exc, method in _IDEMPOTENT
                except ApiError as exc:
                    err = exc
                else:
                    self._count(None)
                    return envelope
            self._count(err)
            if not retryable or attempt + 1 >= attempts:
                raise err
            self.stats.retries += 1
            if not isinstance(err, RateLimited):  # the budget block already spaces a 429
                delay = backoff.next()
                log.debug("%s /%s failed (%s); retry in %.2f s", method, path, err.kind, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """Like request(), returning only `result`."""
        return (await self.request(method, path, **kwargs)).result

    async def paginate(
        self, path: str, params: Mapping[str, Any] | None = None, *, per_page: int = DEFAULT_PER_PAGE
    ) -> AsyncIterator[Any]:
        """Every item of a paginated list, page after page."""
        seen = 0
        for page in range(1, _MAX_PAGES + 1):
            envelope = await self.request(
                "GET", path, params={**(params or {}), "page": page, "per_page": per_page}
            )
            items = envelope.result
            if not isinstance(items, list):
                raise BadResponse(f"GET /{path}: result is not a list")
            for item in items:
                yield item
            seen += len(items)
            info = envelope.result_info or {}
            total = info.get("total_count")
            if not items or (isinstance(total, int) and seen >= total):
                return
            if not isinstance(total, int) and len(items) < int(info.get("per_page") or per_page):
                return

    async def list_all(self, path: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        return [item async for item in self.paginate(path, params)]

    async def stream_events(
        self, path: str, last_event_id: str | None = None, *, on_open: Callable[[], None] | None = None
    ) -> AsyncIterator[ServerSentEvent]:
        """The text/event-stream at `path`; raises ApiError when it cannot be opened or breaks.

        `on_open` is called once the stream is accepted, before any event arrives.
        """
        path = path.lstrip("/")
        headers = {"accept": "text/event-stream", "cache-control": "no-cache"}
        if last_event_id is not None:
            headers["last-event-id"] = last_event_id
        timeout = httpx.Timeout(self.timeout, read=self.stream_read_timeout)
        await self._wait_budget("GET", path)
        try:
            async with self._http.stream("GET", path, headers=headers, timeout=timeout) as response:
                if response.status_code != 200:
                    await response.aread()
                    try:
                        parse_response(response)
                    except RateLimited as exc:
                        self.budget.block(exc.retry_after)
                        self._count(exc)
                        raise
                    except ApiError as exc:
                        self._count(exc)
                        raise
                    raise BadResponse(f"GET /{path}: HTTP {response.status_code} is not an event stream")
                ctype = response.headers.get("content-type", "")
                if not ctype.startswith("text/event-stream"):
                    bad = BadResponse(f"GET /{path}: content-type {ctype!r} is not text/event-stream")
                    self._count(bad)
                    raise bad
                self._count(None)
                if on_open is not None:
                    on_open()
                async for event in aiter_sse(response.aiter_text(), SSEDecoder()):
                    yield event
        except httpx.ReadTimeout:
            raise ApiTimeout(
                f"GET /{path}: event stream silent for {self.stream_read_timeout:g} s",
                method="GET",
                path=path,
            ) from None
        except httpx.TimeoutException:
            raise ApiTimeout(
                f"GET /{path}: no answer within {self.timeout:g} s", method="GET", path=path
            ) from None
        except httpx.TransportError as exc:
            raise ApiUnreachable(
                f"GET /{path}: {exc or type(exc).__name__}", method="GET", path=path
            ) from None
