"""Small helpers shared by the control-plane modules: ids, timestamps, the API error type."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

# Error codes (all >= 1000, as Cloudflare's). Grouped so a client can branch on them.
AUTH = 10000
BAD_REQUEST = 1001
BAD_QUERY = 1002
NODE_NOT_FOUND = 1003
REPLICA_NOT_FOUND = 1004
ROUTE_NOT_FOUND = 1005
TOKEN_NOT_FOUND = 1006
WEBHOOK_NOT_FOUND = 1007
CONFLICT = 1008
HA_IMMUTABLE = 1009
MASQUE_REQUIRED = 1010
REPLICA_OFFLINE = 1011
NOT_HA = 1012
REPLICA_NOT_CONNECTED = 1013
NODE_DELETED = 1014
# HTTP 429. Cloudflare's API has been seen answering its rate limit with code 971, but no Cloudflare
# document lists that code, and codes here stay >= 1000; the message repeats Cloudflare's wording
# ("... Please wait and consider throttling your request speed") for clients that match on it.
RATE_LIMITED = 10429
NO_ROUTE = 7003
METHOD_NOT_ALLOWED = 7001
INTERNAL = 1100


class ApiError(Exception):
    """An error answered in the Cloudflare envelope with `status` and one `{code, message}`."""

    def __init__(self, status: int, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def not_found(code: int, what: str, ident: str) -> ApiError:
    return ApiError(404, code, f"{what} {ident!r} not found")


def now_iso(ts: datetime | None = None) -> str:
    return (ts or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_uuid() -> str:
    return str(uuid.uuid4())


def new_hex(nbytes: int = 16) -> str:
    return secrets.token_hex(nbytes)


def envelope(result: Any, result_info: dict[str, int] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"success": True, "errors": [], "messages": [], "result": result}
    if result_info is not None:
        body["result_info"] = result_info
    return body


def error_envelope(code: int, message: str) -> dict[str, Any]:
    return {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None}
