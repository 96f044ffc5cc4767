"""Replica-agent endpoints (node token): register, heartbeat, disconnect."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import StreamingResponse

from ._auth import Principal
from ._deps import agent_caller, cp_of
from ._models import Heartbeat, Register
from ._routes_nodes import resume_point, sse_response
from ._util import envelope

router = APIRouter(prefix="/connector", tags=["replica agent"])
Caller = Annotated[Principal, Depends(agent_caller)]


@router.post("/register")
async def register(request: Request, body: Register, who: Caller) -> dict[str, Any]:
    cp = cp_of(request)
    node = cp.engine.node(cp.auth.require_node(who))
    origin = request.client.host if request.client else "unknown"
    return envelope(cp.engine.register(node, body.model_dump(), origin))


@router.post("/{replica_id}/heartbeat")
async def heartbeat(
    request: Request, replica_id: str, who: Caller, body: Heartbeat | None = None
) -> dict[str, Any]:
    cp = cp_of(request)
    node = cp.engine.node(cp.auth.require_node(who))
    return envelope(cp.engine.heartbeat(node, replica_id, body.lan_addresses if body else None))


@router.post("/{replica_id}/disconnect")
async def disconnect(request: Request, replica_id: str, who: Caller) -> dict[str, Any]:
    cp = cp_of(request)
    node = cp.engine.node(cp.auth.require_node(who))
    return envelope(cp.engine.disconnect(node, replica_id))


@router.get("/events", response_class=StreamingResponse)
async def events(
    request: Request, who: Caller, last_event_id: Annotated[str | None, Header()] = None
) -> StreamingResponse:
    """The node's own event stream, for its replica agents: they learn a promotion at once instead
    of at their next heartbeat. Live events only, unless resumed with Last-Event-ID."""
    cp = cp_of(request)
    node = cp.engine.node(cp.auth.require_node(who))
    return sse_response(cp, node["id"], resume_point(last_event_id, None), replay=False)
