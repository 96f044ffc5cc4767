"""Routes (teamnet), API tokens and webhook destinations."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from ._app import ControlPlane
from ._auth import Principal, hash_token, new_token_value
from ._deps import Page, allowed, caller
from ._models import RouteCreate, RoutePatch, TokenCreate, WebhookCreate, route_view, webhook_view
from ._util import (
    BAD_REQUEST,
    CONFLICT,
    ROUTE_NOT_FOUND,
    TOKEN_NOT_FOUND,
    WEBHOOK_NOT_FOUND,
    ApiError,
    envelope,
    new_hex,
    new_uuid,
    not_found,
    now_iso,
)

router = APIRouter()
Caller = Annotated[Principal, Depends(caller)]
ROUTES = "/accounts/{account_id}/teamnet/routes"
TOKENS = "/accounts/{account_id}/tokens"
HOOKS = "/accounts/{account_id}/alerting/v3/destinations/webhooks"


def _check_route_target(
    cp: ControlPlane, account_id: str, network: str, tunnel_id: str, route_id: str | None
) -> None:
    node = cp.store.node(tunnel_id)
    if node is None or node["account_id"] != account_id or node["deleted_at"] is not None:
        raise ApiError(400, BAD_REQUEST, f"tunnel_id: no node {tunnel_id!r} in this account")
    other = cp.store.live_route_for(account_id, network)
    if other is not None and other["id"] != route_id:
        raise ApiError(
            409,
            CONFLICT,
            f"network {network} is already routed to node {other['tunnel_id']} (route {other['id']})",
        )


@router.post(ROUTES, tags=["routes"])
async def create_route(request: Request, account_id: str, body: RouteCreate, who: Caller) -> dict[str, Any]:
    cp = allowed(request, who, account_id, "write")
    _check_route_target(cp, account_id, body.network, body.tunnel_id, None)
    row = cp.store.add_route(
        {
            "id": new_uuid(),
            "account_id": account_id,
            "network": body.network,
            "tunnel_id": body.tunnel_id,
            "comment": body.comment,
            "created_at": now_iso(),
            "deleted_at": None,
        }
    )
    return envelope(route_view(row))


@router.get(ROUTES, tags=["routes"])
async def list_routes(
    request: Request,
    account_id: str,
    *,
    who: Caller,
    page: Annotated[Page, Depends()],
    tunnel_id: str | None = None,
    is_deleted: bool | None = Query(False),
) -> dict[str, Any]:
    cp = allowed(request, who, account_id, "read")
    rows, total = cp.store.routes(account_id, tunnel_id, is_deleted, page.offset, page.per_page)
    return page.envelope([route_view(r) for r in rows], total)


def _route(cp: ControlPlane, account_id: str, route_id: str, live: bool = False) -> dict[str, Any]:
    row = cp.store.route(account_id, route_id)
    if row is None or (live and row["deleted_at"] is not None):
        raise not_found(ROUTE_NOT_FOUND, "route", route_id)
    return row


@router.get(ROUTES + "/{route_id}", tags=["routes"])
async def get_route(request: Request, account_id: str, route_id: str, who: Caller) -> dict[str, Any]:
    cp = allowed(request, who, account_id, "read")
    return envelope(route_view(_route(cp, account_id, route_id)))


@router.patch(ROUTES + "/{route_id}", tags=["routes"])
async def patch_route(
    request: Request, account_id: str, route_id: str, body: RoutePatch, who: Caller
) -> dict[str, Any]:
    cp = allowed(request, who, account_id, "write")
    row = _route(cp, account_id, route_id, live=True)
    changes = body.model_dump(exclude_none=True)
    _check_route_target(
        cp,
        account_id,
        changes.get("network", row["network"]),
        changes.get("tunnel_id", row["tunnel_id"]),
        route_id,
    )
    cp.store.update("routes", route_id, **changes)
    return envelope(route_view(_route(cp, account_id, route_id)))


@router.delete(ROUTES + "/{route_id}", tags=["routes"])
async def delete_route(request: Request, account_id: str, route_id: str, who: Caller) -> dict[str, Any]:
    cp = allowed(request, who, account_id, "write")
    _route(cp, account_id, route_id, live=True)
    cp.store.update("routes", route_id, deleted_at=now_iso())
    return envelope(route_view(_route(cp, account_id, route_id)))


@router.post(TOKENS, tags=["tokens"])
async def create_token(request: Request, account_id: str, body: TokenCreate, who: Caller) -> dict[str, Any]:
    cp = allowed(request, who, account_id, "admin")
    value = new_token_value()
    row = cp.store.add_token(
        {
            "id": new_hex(16),
            "account_id": account_id,
            "name": body.name,
            "scope": body.scope,
            "hash": hash_token(value),
            "created_at": now_iso(),
        }
    )
    # The value is shown once, here; only its hash is kept.
    return envelope(
        {
            "id": row["id"],
            "name": row["name"],
            "scope": row["scope"],
            "value": value,
            "created_at": row["created_at"],
        }
    )


@router.get(TOKENS, tags=["tokens"])
async def list_tokens(
    request: Request, account_id: str, who: Caller, page: Annotated[Page, Depends()]
) -> dict[str, Any]:
    cp = allowed(request, who, account_id, "admin")
    rows, total = cp.store.tokens(account_id, page.offset, page.per_page)
    return page.envelope(rows, total)


@router.delete(TOKENS + "/{token_id}", tags=["tokens"])
async def delete_token(request: Request, account_id: str, token_id: str, who: Caller) -> dict[str, Any]:
    cp = allowed(request, who, account_id, "admin")
    row = cp.store.token(account_id, token_id)
    if row is None or row["scope"] == "admin":
        raise not_found(TOKEN_NOT_FOUND, "token", token_id)
    cp.store.delete_token(token_id)
    return envelope({"id": token_id})


@router.post(HOOKS, tags=["webhooks"])
async def create_webhook(
    request: Request, account_id: str, body: WebhookCreate, who: Caller
) -> dict[str, Any]:
    cp = allowed(request, who, account_id, "admin")
    row = cp.store.add_webhook(
        {
            "id": new_uuid(),
            "account_id": account_id,
            "name": body.name,
            "url": body.url,
            "secret": body.secret,
            "created_at": now_iso(),
        }
    )
    return envelope(webhook_view(row))


@router.get(HOOKS, tags=["webhooks"])
async def list_webhooks(
    request: Request, account_id: str, who: Caller, page: Annotated[Page, Depends()]
) -> dict[str, Any]:
    cp = allowed(request, who, account_id, "admin")
    rows, total = cp.store.webhooks(account_id, page.offset, page.per_page)
    return page.envelope([webhook_view(r) for r in rows], total)


@router.get(HOOKS + "/{hook_id}", tags=["webhooks"])
async def get_webhook(request: Request, account_id: str, hook_id: str, who: Caller) -> dict[str, Any]:
    cp = allowed(request, who, account_id, "admin")
    row = cp.store.webhook(account_id, hook_id)
    if row is None:
        raise not_found(WEBHOOK_NOT_FOUND, "webhook", hook_id)
    return envelope(webhook_view(row))


@router.delete(HOOKS + "/{hook_id}", tags=["webhooks"])
async def delete_webhook(request: Request, account_id: str, hook_id: str, who: Caller) -> dict[str, Any]:
    cp = allowed(request, who, account_id, "admin")
    if cp.store.webhook(account_id, hook_id) is None:
        raise not_found(WEBHOOK_NOT_FOUND, "webhook", hook_id)
    cp.store.delete_webhook(hook_id)
    return envelope({"id": hook_id})
