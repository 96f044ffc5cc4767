"""Configuration of the control-plane source: the `control_plane:` section, and `node:` (NodeRef).

The node identity lives in the top-level `node:` section of the watcher config (the daemon's
model holds it as `node: NodeRef`); the Source takes both. Token and webhook secret are read
from files at start, never stored in the YAML unless `token:` is used (discouraged).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator

from .._net import ListenAddress
from ..cfapi import RateLimit

Subscribe = Literal["auto", "sse", "off"]
# Share of the rate budget that steady polling may use; the rest is for event-triggered reads,
# retries and an operator's CLI calls with the same token.
POLL_BUDGET_SHARE = 0.5


def read_secret_file(path: Path, what: str) -> str:
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise ValueError(f"{what} {path}: cannot read: {exc.strerror}") from None
    if not value:
        raise ValueError(f"{what} {path} is empty")
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeRef(_Model):
    """Which node to watch (top-level `node:`). No account_id: use the only one the token sees."""

    account_id: str | None = Field(default=None, min_length=1)
    node_id: str = Field(min_length=1)


class RateLimitConfig(_Model):
    requests: int = Field(default=1200, ge=1)
    period: float = Field(default=300.0, gt=0)

    def limit(self) -> RateLimit:
        return RateLimit(self.requests, self.period)


class WebhookConfig(_Model):
    """Receiver for Cloudflare notification webhooks (a hint to re-read /connections)."""

    listen: ListenAddress
    secret_file: Path | None = None
    secret: SecretStr | None = None
    path: str = "/"

    @model_validator(mode="after")
    def _one_secret(self) -> WebhookConfig:
        if (self.secret_file is None) == (self.secret is None):
            raise ValueError("give exactly one of secret_file, secret")
        return self

    def read_secret(self) -> str:
        if self.secret is not None:
            return self.secret.get_secret_value()
        assert self.secret_file is not None
        return read_secret_file(self.secret_file, "webhook secret_file")


class SourceConfig(_Model):
    """The `control_plane:` section."""

    api: str = Field(pattern=r"^https?://[^\s/]+", description="base URL including /client/v4")
    token: SecretStr | None = None
    token_file: Path | None = None
    # Declared before poll_interval: its budget check reads them.
    rate_limit: RateLimitConfig = RateLimitConfig()
    learn_routes: bool = False
    routes_interval: float = Field(default=30.0, ge=1, le=86400)
    poll_interval: float = Field(default=2.0, gt=0, le=3600)
    subscribe: Subscribe = "auto"
    webhook: WebhookConfig | None = None
    timeout: float = Field(default=5.0, gt=0, le=300, description="per-request timeout, seconds")
    backoff_max: float = Field(default=30.0, ge=0.5, le=600, description="cap of the error backoff, seconds")

    @field_validator("poll_interval")
    @classmethod
    def _within_budget(cls, value: float, info: ValidationInfo) -> float:
        limit = info.data.get("rate_limit")
        if not isinstance(limit, RateLimitConfig):
            return value  # rate_limit itself is invalid; that error is reported
        per_period = limit.period / value
        if info.data.get("learn_routes") and isinstance(info.data.get("routes_interval"), float):
            per_period += limit.period / info.data["routes_interval"]
        allowed = limit.requests * POLL_BUDGET_SHARE
        if per_period > allowed:
            raise ValueError(
                f"poll_interval {value:g} s would use {per_period:.0f} of the"
                f" {limit.requests} requests per {limit.period:g} s rate limit; polling may use at most"
                f" {allowed:.0f} (half) so event-triggered reads and retries fit: raise poll_interval"
            )
        return value

    @model_validator(mode="after")
    def _check(self) -> SourceConfig:
        if (self.token is None) == (self.token_file is None):
            raise ValueError("give exactly one of token_file, token")
        return self

    def read_token(self) -> str:
        if self.token is not None:
            return self.token.get_secret_value()
        assert self.token_file is not None
        return read_secret_file(self.token_file, "control_plane token_file")
