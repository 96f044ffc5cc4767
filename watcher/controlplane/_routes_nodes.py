"""Nodes (warp_connector), their replicas, manual failover and the event stream."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from ._auth import Principal, make_node_token
from ._deps import Page, allowed, caller
from ._models import Failover, NodeCreate, NodePatch, node_view, replica_view
from ._util import BAD_QUERY, CONFLICT, HA_IMMUTABLE, ApiError, envelope, new_uuid, now_iso

if TYPE_CHECKING:
    from ._app import ControlPlane

router = APIRouter(tags=["nodes"])
Caller = Annotated[Principal, Depends(caller)]
NODES = "/accounts/{account_id}/warp_connector"


@router.get("/accounts")
async def list_accounts(request: Request, who: Caller, page: Annotated[Page, Depends()]) -> dict[str, Any]:
    if who.kind == "node":
        allowed(request, who, who.account_id, "read")  # refuses with the node-token message
    rows = [
        {"id": a["id"], "name": a["name"]}
        for a in request.app.state.cp.store.accounts()
        if a["id"] == who.account_id
    ]
    return page.envelope(rows[page.offset : page.offset + page.per_page], len(rows))


@router.post(NODES)
async def create_node(request: Request, account_id: str, body: NodeCreate, who: Caller) -> dict[str, Any]:
    cp = allowed(request, who, account_id, "write")
    if cp.store.live_node_named(account_id, body.name):
        raise ApiError(409, CONFLICT, f"a node named {body.name!r} already exists")
    row = cp.store.add_node(
        {
            "id": new_uuid(),
            "account_id": account_id,
            "name": body.name,
            "ha": int(body.ha),
            "created_at": now_iso(),
            "status": "inactive",
        }
    )
    cp.engine.live[row["id"]] = {}
    return envelope(node_view(cp.engine.node(row["id"])))


@router.get(NODES)
async def list_nodes(
    request: Request,
    account_id: str,
    *,
    who: Caller,
    page: Annotated[Page, Depends()],
    name: str | None = None,
    is_deleted: bool | None = Query(False),
) -> dict[str, Any]:
    cp = allowed(request, who, account_id, "read")
    rows, total = cp.store.nodes(account_id, name, is_deleted, page.offset, page.per_page)
    return page.envelope([node_view(r) for r in rows], total)


@router.get(NODES + "/{tunnel_id}")
async def get_node(request: Request, account_id: str, tunnel_id: str, who: Caller) -> dict[str, Any]:
    cp = allowed(request, who, account_id, "read")
    return envelope(node_view(cp.engine.node(tunnel_id, account_id=account_id, live_only=False)))


@router.patch(NODES + "/{tunnel_id}")
async def patch_node(
    request: Request, account_id: str, tunnel_id: str, body: NodePatch, who: Caller
) -> dict[str, Any]:
    cp = allowed(request, who, account_id, "write")
    node = cp.engine.node(tunnel_id, account_id=account_id)
    if body.ha is not None:
        raise ApiError(400, HA_IMMUTABLE, "ha: high availability can only be chosen when the node is created")
    if body.name is not None and body.name != node["name"]:
        if cp.store.live_node_named(account_id, body.name):
            raise ApiError(409, CONFLICT, f"name: a node named {body.name!r} already exists")
        cp.store.update("nodes", tunnel_id, name=body.name)
    return envelope(node_view(cp.engine.node(tunnel_id)))


@router.delete(NODES + "/{tunnel_id}")
async def delete_node(request: Request, account_id: str, tunnel_id: str, who: Caller) -> dict[str, Any]:
    cp = allowed(request, who, account_id, "write")
    node = cp.engine.node(tunnel_id, account_id=account_id)
    return envelope(node_view(cp.engine.delete_node(node)))


@router.get(NODES + "/{tunnel_id}/token")
async def node_token(request: Request, account_id: str, tunnel_id: str, who: Caller) -> dict[str, Any]:
    cp = allowed(request, who, account_id, "write")
    cp.engine.node(tunnel_id, account_id=account_id)
    return envelope(make_node_token(cp.auth.key, account_id, tunnel_id))


def _replicas(request: Request, node: dict[str, Any]) -> list[dict[str, Any]]:
    cp = request.app.state.cp
    return [
        replica_view(
            r,
            cp.engine.ha_status(node, r["id"]),
            cp.config.engine.colo_name,
            cp.engine.last_heartbeat_at.get(r["id"]),
        )
        for r in cp.store.replicas(node["id"])
    ]


@router.get(NODES + "/{tunnel_id}/connections")
async def connections(request: Request, account_id: str, tunnel_id: str, who: Caller) -> dict[str, Any]:
    cp = allowed(request, who, account_id, "read")
    return envelope(_replicas(request, cp.engine.node(tunnel_id, account_id=account_id, live_only=False)))


@router.get(NODES + "/{tunnel_id}/connectors/{replica_id}")
async def connector(
    request: Request, account_id: str, tunnel_id: str, replica_id: str, who: Caller
) -> dict[str, Any]:
    cp = allowed(request, who, account_id, "read")
    node = cp.engine.node(tunnel_id, account_id=account_id, live_only=False)
    row = cp.engine._replica_of(node, replica_id)
    return envelope(
        replica_view(
            row,
            cp.engine.ha_status(node, replica_id),
            cp.config.engine.colo_name,
            cp.engine.last_heartbeat_at.get(replica_id),
        )
    )


@router.put(NODES + "/{tunnel_id}/failover")
async def failover(
    request: Request, account_id: str, tunnel_id: str, body: Failover, who: Caller
) -> dict[str, Any]:
    cp = allowed(request, who, account_id, "write")
    node = cp.engine.node(tunnel_id, account_id=account_id)
    return envelope(node_view(cp.engine.failover(node, body.client_id)))


@router.get(NODES + "/{tunnel_id}/events", response_class=StreamingResponse)
async def events(
    request: Request,
    account_id: str,
    tunnel_id: str,
    *,
    who: Caller,
    last_event_id: Annotated[str | None, Header()] = None,
    since: int | None = Query(None, ge=0, description="same as the Last-Event-ID header"),
) -> StreamingResponse:
    """Server-sent events: `id: <generation>`, `event: <type>`, `data: <json>`; resume with Last-Event-ID.

    Types: registered, connected, disconnected, promoted, status, and `reset`: the Last-Event-ID is
    outside the retained window (see --event-retention), so re-read the node's full state."""
    cp = allowed(request, who, account_id, "read")
    cp.engine.node(tunnel_id, account_id=account_id, live_only=False)
    return sse_response(cp, tunnel_id, resume_point(last_event_id, since))


def resume_point(header: str | None, since: int | None) -> int | None:
    if not header:
        return since
    try:
        value = int(header)
    except ValueError:
        value = -1
    if value < 0:
        raise ApiError(
            400, BAD_QUERY, f"Last-Event-ID: {header!r} is not a generation number (an integer >= 0)"
        )
    return value


def sse_response(
    cp: ControlPlane, tunnel_id: str, last: int | None, *, replay: bool = True
) -> StreamingResponse:
    return StreamingResponse(
        cp.hub.stream(tunnel_id, last, replay=replay),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
