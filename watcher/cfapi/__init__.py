"""Client for the Cloudflare v4 API shape: Cloudflare itself or the embedded control plane.

    async with AsyncMeshApi(base_url, token, account_id=...) as api:
        node = await api.create_node("office", ha=True)
        replicas = await api.connections(node["id"])
        async for event in api.events(node["id"], last_event_id="41"):
            print(event.id, event.event, event.json())

`MeshApi` is the same API, blocking (for CLIs). Every failure raises `ApiError` (HTTP status and
the envelope's errors); `RateLimited.retry_after` says how long nothing may be sent. Requests
go through a per-token `Budget` (1200 / 5 min, and a 429's block) and bounded, jittered retries.
"""

from ._backoff import Backoff
from ._budget import Budget, RateLimit
from ._client import CLOUDFLARE_API, DEFAULT_PER_PAGE, AsyncMeshApi
from ._envelope import DEFAULT_RATE_LIMIT_BLOCK, Envelope, parse_response, parse_retry_after
from ._errors import ApiError, ApiTimeout, ApiUnreachable, BadResponse, ErrorDetail, RateLimited, ServerError
from ._models import Account, ApiToken, Conn, Connector, Node, NodeStatus, Route, Scope, Webhook
from ._sse import ServerSentEvent, SSEDecoder, aiter_sse, iter_sse
from ._stats import OUTCOMES, ClientStats
from ._sync import MeshApi

__all__ = [
    "CLOUDFLARE_API",
    "DEFAULT_PER_PAGE",
    "DEFAULT_RATE_LIMIT_BLOCK",
    "OUTCOMES",
    "Account",
    "ApiError",
    "ApiTimeout",
    "ApiToken",
    "ApiUnreachable",
    "AsyncMeshApi",
    "Backoff",
    "BadResponse",
    "Budget",
    "ClientStats",
    "Conn",
    "Connector",
    "Envelope",
    "ErrorDetail",
    "MeshApi",
    "Node",
    "NodeStatus",
    "RateLimit",
    "RateLimited",
    "Route",
    "SSEDecoder",
    "Scope",
    "ServerError",
    "ServerSentEvent",
    "Webhook",
    "aiter_sse",
    "iter_sse",
    "parse_response",
    "parse_retry_after",
]
