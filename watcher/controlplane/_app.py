"""The FastAPI application: lifespan (state, engine clock), error envelopes, health endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ._auth import Authenticator, ensure_account_and_admin, load_state_key
from ._engine import Engine, EngineConfig
from ._events import EventHub, Webhooks
from ._ratelimit import RateLimit, RateLimiter
from ._store import Store
from ._util import BAD_QUERY, BAD_REQUEST, INTERNAL, METHOD_NOT_ALLOWED, NO_ROUTE, ApiError, error_envelope

log = logging.getLogger("watcher.controlplane")
API_PREFIX = "/client/v4"


@dataclass(frozen=True)
class AppConfig:
    state_dir: Path
    admin_token: str | None = None
    engine: EngineConfig = field(default_factory=EngineConfig)
    sse_ping_interval: float = 10.0
    # Cloudflare's API limit per token; RateLimit(0, 0) turns it off.
    rate_limit: RateLimit = field(default_factory=lambda: RateLimit(1200, 300.0))
    event_retention: int = 10_000  # events kept per node (older ones are pruned as new ones come)


@dataclass
class ControlPlane:
    config: AppConfig
    store: Store
    hub: EventHub
    webhooks: Webhooks
    engine: Engine
    auth: Authenticator
    account_id: str
    limiter: RateLimiter
    ready: bool = False

    @classmethod
    def open(cls, config: AppConfig) -> ControlPlane:
        config.state_dir.mkdir(parents=True, exist_ok=True)
        store = Store(config.state_dir / "state.db", event_retention=config.event_retention)
        account_id = ensure_account_and_admin(store, config.state_dir, config.admin_token)
        hub = EventHub(store, ping_interval=config.sse_ping_interval)
        webhooks = Webhooks(store)
        engine = Engine(store, hub, webhooks, config.engine)
        auth = Authenticator(store, load_state_key(config.state_dir))
        limiter = RateLimiter(config.rate_limit)
        return cls(config, store, hub, webhooks, engine, auth, account_id, limiter)

    async def run_clock(self) -> None:
        # Fine-grained enough that detection happens within a few percent of the timeout.
        interval = max(0.01, min(0.1, self.config.engine.detection_timeout / 20))
        while True:
            await asyncio.sleep(interval)
            try:
                self.engine.tick()
            except Exception:
                log.exception("engine tick failed; retrying")

    def begin_shutdown(self) -> None:
        """Called on SIGTERM before the server waits for open requests: ends event streams."""
        self.ready = False
        self.hub.close_all()


def _loc(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    where = loc[0] if loc else "body"
    return ".".join(parts) if parts else str(where)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    in_query = False
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        in_query = in_query or (bool(loc) and loc[0] in ("query", "header", "path"))
        msg = str(err.get("msg", "invalid"))
        if err.get("type") == "json_invalid":
            problems.append(f"body: not valid JSON ({err.get('ctx', {}).get('error', msg)})")
        elif err.get("type") == "extra_forbidden":
            problems.append(f"{_loc(loc)}: unknown field")
        else:
            problems.append(f"{_loc(loc)}: {msg.removeprefix('Value error, ')}")
    code = BAD_QUERY if in_query else BAD_REQUEST
    return JSONResponse(error_envelope(code, "; ".join(problems) or "invalid request"), status_code=400)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(error_envelope(exc.code, exc.message), status_code=exc.status, headers=exc.headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        code, message = NO_ROUTE, f"no route for {request.method} {request.url.path}"
    elif exc.status_code == 405:
        code, message = METHOD_NOT_ALLOWED, f"method {request.method} is not allowed on {request.url.path}"
    else:
        code, message = INTERNAL if exc.status_code >= 500 else BAD_REQUEST, str(exc.detail)
    return JSONResponse(error_envelope(code, message), status_code=exc.status_code, headers=exc.headers)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(error_envelope(INTERNAL, "internal error"), status_code=500)


def create_app(config: AppConfig) -> FastAPI:
    from . import _routes_agent, _routes_misc, _routes_nodes

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        cp = ControlPlane.open(config)
        app.state.cp = cp
        clock = asyncio.create_task(cp.run_clock())
        cp.ready = True
        try:
            yield
        finally:
            cp.begin_shutdown()
            clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await clock
            await cp.webhooks.aclose()
            cp.store.close()

    app = FastAPI(
        title="mesh-watcher embedded control plane",
        description="A local implementation of the Cloudflare Mesh (warp_connector) API, plus extensions.",
        lifespan=lifespan,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, Any]:
        return {"success": True, "errors": [], "messages": [], "result": {"status": "ok"}}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        cp = getattr(request.app.state, "cp", None)
        if cp is None or not cp.ready:
            return JSONResponse(error_envelope(INTERNAL, "not ready"), status_code=503)
        return JSONResponse({"success": True, "errors": [], "messages": [], "result": {"status": "ready"}})

    for module in (_routes_nodes, _routes_misc, _routes_agent):
        app.include_router(module.router, prefix=API_PREFIX)
    return app
