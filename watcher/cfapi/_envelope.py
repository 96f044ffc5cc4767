"""The Cloudflare v4 envelope: `{"success", "errors", "messages", "result", "result_info"?}`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from ._errors import ApiError, BadResponse, ErrorDetail, RateLimited, ServerError

# Cloudflare's documented block after exceeding the budget; used when a 429 carries no retry-after.
DEFAULT_RATE_LIMIT_BLOCK = 300.0


@dataclass(frozen=True, slots=True)
class Envelope:
    result: Any
    result_info: dict[str, Any] | None
    messages: tuple[Any, ...] = ()


def parse_retry_after(value: str | None, default: float = DEFAULT_RATE_LIMIT_BLOCK) -> float:
    """Seconds from a `retry-after` header (delta-seconds or HTTP date); `default` when absent."""
    if value is None or not value.strip():
        return default
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from datetime import UTC, datetime
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _details(body: Any) -> tuple[ErrorDetail, ...]:
    if not isinstance(body, dict):
        return ()
    out = []
    for item in body.get("errors") or ():
        if isinstance(item, dict):
            code = item.get("code")
            out.append(ErrorDetail(code if isinstance(code, int) else 0, str(item.get("message", ""))))
        else:
            out.append(ErrorDetail(0, str(item)))
    return tuple(out)


def parse_response(response: httpx.Response) -> Envelope:
    """The envelope of `response`, or the matching ApiError subclass (never returns on failure)."""
    method, path = response.request.method, response.request.url.path
    try:
        body: Any = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    errors = _details(body)
    status = response.status_code
    if errors:
        message = "; ".join(e.message or f"error {e.code}" for e in errors)
    else:
        message = f"HTTP {status} {response.reason_phrase} from {method} {path}".rstrip()
    kwargs: dict[str, Any] = {"status": status, "errors": errors, "method": method, "path": path}
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        raise RateLimited(message, retry_after=retry_after, **kwargs)
    if status >= 500:
        raise ServerError(message, **kwargs)
    if status >= 400 or (isinstance(body, dict) and body.get("success") is False):
        raise ApiError(message, **kwargs)
    if not isinstance(body, dict) or "result" not in body:
        raise BadResponse(f"{method} {path}: response is not a Cloudflare API envelope", **kwargs)
    info = body.get("result_info")
    return Envelope(
        result=body["result"],
        result_info=info if isinstance(info, dict) else None,
        messages=tuple(body.get("messages") or ()),
    )
