"""The watcher's configuration file: the top-level model and the daemon's own sections.

The `control_plane`, `routes` and `vip` sections belong to their modules (watcher.source,
watcher.routes, watcher.vip); this file only composes them and checks the rules that span sections.
Load it with `load_config(path)`: every error names the file, the line and the key.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .._net import ListenAddress, parse_listen
from .._yaml import load_model, parse_model
from ..routes.config import RoutesConfig
from ..source.config import NodeRef, SourceConfig
from ..vip.config import VipConfig

Mode = Literal["router", "vip"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_Model):
    """Which replica a static next-hop entry is for: exactly one of the keys."""

    id: str | None = None
    origin_ip: str | None = None
    device_name: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Match:
        given = [k for k in ("id", "origin_ip", "device_name") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of id, origin_ip, device_name (got {', '.join(given) or 'none'})"
            )
        if self.origin_ip is not None:
            ipaddress.ip_address(self.origin_ip)
        return self

    def key(self) -> tuple[str, str]:
        for name in ("id", "origin_ip", "device_name"):
            value = getattr(self, name)
            if value is not None:
                return name, str(value)
        raise AssertionError("validated: one key is set")


class StaticNextHop(_Model):
    match: Match
    ipv4: ipaddress.IPv4Address | None = None
    ipv6: ipaddress.IPv6Address | None = None

    @model_validator(mode="after")
    def _some_address(self) -> StaticNextHop:
        if self.ipv4 is None and self.ipv6 is None:
            raise ValueError("give ipv4, ipv6 or both")
        return self


class ReplicasConfig(_Model):
    use_reported_lan_addresses: bool = True
    static: tuple[StaticNextHop, ...] = ()

    @field_validator("static")
    @classmethod
    def _unique_matches(cls, entries: tuple[StaticNextHop, ...]) -> tuple[StaticNextHop, ...]:
        seen: dict[tuple[str, str], int] = {}
        for i, entry in enumerate(entries):
            key = entry.match.key()
            if key in seen:
                raise ValueError(f"entries {seen[key]} and {i} both match {key[0]}={key[1]!r}")
            seen[key] = i
        return entries


class DecideConfig(_Model):
    hold_down: float = Field(
        default=1.0,
        ge=0,
        le=3600,
        description="seconds after a change during which a further change is deferred",
    )
    flap_window: float = Field(
        default=300.0, gt=0, description="seconds over which changes are counted as flapping"
    )
    flap_threshold: int = Field(
        default=4, ge=2, description="this many changes within flap_window raise an alert"
    )


class HealthConfig(_Model):
    probe: bool = Field(default=True, description="ARP/NDP-probe the next-hops")
    interval: float = Field(default=2.0, gt=0, le=3600)
    timeout: float = Field(default=1.0, gt=0, le=60)
    failures: int = Field(
        default=3, ge=1, description="consecutive failed probes before a next-hop is unhealthy"
    )
    promote_on_unhealthy: bool = False
    promote_cooldown: float = Field(
        default=30.0, ge=0, description="minimum seconds between promotion requests"
    )

    @model_validator(mode="after")
    def _timeout_fits(self) -> HealthConfig:
        if self.timeout > self.interval:
            raise ValueError(f"timeout ({self.timeout}) must not exceed interval ({self.interval})")
        if self.promote_on_unhealthy and not self.probe:
            raise ValueError("promote_on_unhealthy needs probe: true")
        return self


class Hook(_Model):
    command: tuple[str, ...] = Field(min_length=1, description="argv; no shell")
    timeout: float = Field(default=10.0, gt=0, le=3600)

    @field_validator("command")
    @classmethod
    def _program(cls, argv: tuple[str, ...]) -> tuple[str, ...]:
        if not argv[0].strip():
            raise ValueError("the program (first item) is empty")
        return argv


class MetricsConfig(_Model):
    enabled: bool = True
    listen: ListenAddress = "127.0.0.1:9477"

    def address(self) -> tuple[str, int]:
        return parse_listen(self.listen)


class WatcherConfig(_Model):
    mode: Mode
    node: NodeRef
    control_plane: SourceConfig
    replicas: ReplicasConfig = Field(default_factory=ReplicasConfig)
    routes: RoutesConfig | None = Field(default=None, validate_default=True)
    vip: VipConfig | None = Field(default=None, validate_default=True)
    decide: DecideConfig = Field(default_factory=DecideConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    hooks: tuple[Hook, ...] = ()
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)

    @field_validator("routes", "vip")
    @classmethod
    def _section_for_mode(cls, value: object, info: ValidationInfo) -> object:
        mode = info.data.get("mode")
        if mode is None:  # mode itself is invalid; that error is enough
            return value
        needed = {"router": "routes", "vip": "vip"}[mode]
        if info.field_name == needed and value is None:
            raise ValueError(f"required when mode is {mode}")
        if info.field_name != needed and value is not None:
            raise ValueError(
                f"only used when mode is {'router' if info.field_name == 'routes' else 'vip'}"
                f" (mode is {mode}); remove this section"
            )
        return value

    @field_validator("routes")
    @classmethod
    def _learning(cls, routes: RoutesConfig | None, info: ValidationInfo) -> RoutesConfig | None:
        cp = info.data.get("control_plane")
        if routes is None or not isinstance(cp, SourceConfig):
            return routes
        if cp.learn_routes and not routes.learn.teamnet_routes:
            raise ValueError(
                "control_plane.learn_routes reads teamnet routes that learn.teamnet_routes: false would"
                " not install; set learn: {teamnet_routes: true} (it turns route learning on by itself)"
            )
        if routes.learn.teamnet_routes:
            _learning_source(cp)
        return routes

    def source_config(self) -> SourceConfig:
        """`control_plane` as the source runs it: `routes.learn.teamnet_routes` turns learning on."""
        if self.routes is not None and self.routes.learn.teamnet_routes:
            return _learning_source(self.control_plane)
        return self.control_plane


def _learning_source(cp: SourceConfig) -> SourceConfig:
    if cp.learn_routes:
        return cp
    try:
        # Validated again: reading routes too must still fit the API's rate budget.
        return SourceConfig.model_validate({**cp.model_dump(), "learn_routes": True})
    except ValidationError as exc:
        problems = "; ".join(
            f"control_plane.{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ValueError(f"learn.teamnet_routes: with route learning on, {problems}") from None


def load_config(path: str | Path) -> WatcherConfig:
    """Read and validate a watcher config file; raises watcher._yaml.ConfigError."""
    return load_model(path, WatcherConfig)


def parse_config(text: str, source: str = "<string>") -> WatcherConfig:
    return parse_model(text, WatcherConfig, source)
