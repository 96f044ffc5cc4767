"""Request helpers shared by the route modules: the control plane, the caller, pagination."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Query, Request

from ._auth import Principal, Scope
from ._util import envelope

if TYPE_CHECKING:
    from ._app import ControlPlane


def cp_of(request: Request) -> ControlPlane:
    cp: ControlPlane = request.app.state.cp
    return cp


async def caller(request: Request) -> Principal:
    """Dependency: who calls, counted against the token's rate limit. Runs before body validation,
    so a bad token wins over a bad body. `async` on purpose: a sync dependency runs in a worker
    thread, and the store's single SQLite connection belongs to the event loop thread."""
    cp = cp_of(request)
    principal = cp.auth.authenticate(request.headers.get("authorization"))
    if principal.kind != "node" and principal.token_id is not None:
        cp.limiter.check(principal.token_id)
    return principal


async def agent_caller(request: Request) -> Principal:
    """Dependency for the replica-agent endpoints: never rate limited (a refused heartbeat would
    fail a healthy replica over)."""
    return cp_of(request).auth.authenticate(request.headers.get("authorization"))


def allowed(request: Request, principal: Principal, account_id: str, scope: Scope) -> ControlPlane:
    cp = cp_of(request)
    cp.auth.require(principal, account_id, scope)
    return cp


class Page:
    def __init__(
        self,
        page: int = Query(1, ge=1, description="page number, from 1"),
        per_page: int = Query(20, ge=1, le=1000, description="items per page"),
    ) -> None:
        self.page = page
        self.per_page = per_page

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    def envelope(self, items: list[Any], total: int) -> dict[str, Any]:
        return envelope(
            items,
            {"page": self.page, "per_page": self.per_page, "count": len(items), "total_count": total},
        )
