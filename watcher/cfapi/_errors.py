"""Exceptions raised by the API client.

Every failure is an `ApiError`, so callers that only need "did it work" catch one type; the
subclasses say why, so a source can count errors by kind.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """One item of the envelope's `errors` list."""

    code: int
    message: str

    def __str__(self) -> str:
        return f"{self.message} (code {self.code})"


class ApiError(Exception):
    """The API answered with an error, or could not be reached.

    `status` is the HTTP status (None when no response arrived); `errors` the envelope's errors.
    `str(exc)` is the API's own message, fit to show an operator.
    """

    kind = "api_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        errors: tuple[ErrorDetail, ...] = (),
        method: str = "",
        path: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.errors = errors
        self.method = method
        self.path = path

    @property
    def codes(self) -> tuple[int, ...]:
        return tuple(e.code for e in self.errors)


class RateLimited(ApiError):
    """HTTP 429, or the client's own budget refused to send: nothing may be sent for `retry_after` s."""

    kind = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class ServerError(ApiError):
    """HTTP 5xx: the server failed; retrying later may work."""

    kind = "server_error"


class ApiUnreachable(ApiError):
    """No HTTP response: connection refused, DNS, TLS, or the connection broke."""

    kind = "unreachable"


class ApiTimeout(ApiUnreachable):
    """No response within the configured timeout."""

    kind = "timeout"


class BadResponse(ApiError):
    """A response that is not the Cloudflare envelope, or a result of the wrong shape."""

    kind = "bad_response"
