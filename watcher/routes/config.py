"""The `routes:` section of the watcher config (router mode)."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .._types import IPNetwork

# Route protocol numbers already used by something (iproute2's rt_protos plus known daemons):
# 0-4 kernel-reserved, 8-16 gated/ra/mrt/zebra/bird/dnrouted/xorp/ntk/dhcp, 18 keepalived,
# 42 babel, 99 (e.g. openr), 186-192 FRR (bgp, isis, ospf, rip, ripng, eigrp, ...).
TAKEN_PROTOCOLS = frozenset([*range(17), 18, 42, 99, *range(186, 193)])
DEFAULT_PROTOCOL = 250
# "mw" in ASCII (0x6d77), then the family number: high ids nobody allocates by hand.
DEFAULT_NH_ID4 = 0x6D770004
DEFAULT_NH_ID6 = 0x6D770006


class NexthopIds(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ipv4: int = Field(default=DEFAULT_NH_ID4, ge=1, le=0xFFFFFFFF)
    ipv6: int = Field(default=DEFAULT_NH_ID6, ge=1, le=0xFFFFFFFF)

    @model_validator(mode="after")
    def _distinct(self) -> NexthopIds:
        if self.ipv4 == self.ipv6:
            raise ValueError(f"nexthop_ids.ipv4 and nexthop_ids.ipv6 must differ (both are {self.ipv4})")
        return self


class LearnConfig(BaseModel):
    """Which prefixes the daemon learns and hands over in Target.prefixes (on top of `prefixes`)."""

    model_config = ConfigDict(extra="forbid")

    # Other nodes' routes (/teamnet/routes), kept in sync. The Mesh IP ranges themselves are not
    # reported by any API (Cloudflare's or ours), so they belong in `prefixes`.
    teamnet_routes: bool = False


class RoutesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prefixes: list[IPNetwork] = Field(default_factory=list)
    table: int = Field(default=254, ge=1, le=0xFFFFFFFF)
    # 1024 is what the kernel gives IPv6 routes by default and what iproute2 shows for "metric"
    # on most distributions' static routes; it sits above connected/kernel routes (0) and DHCP
    # defaults (100-600), so a more deliberate operator route with a lower metric still wins.
    metric: int = Field(default=1024, ge=0, le=0xFFFFFFFF)
    protocol: int = Field(default=DEFAULT_PROTOCOL, ge=0, le=255)
    nexthop_ids: NexthopIds = Field(default_factory=NexthopIds)
    use_nexthop_objects: Literal["auto", "on", "off"] = "auto"
    withdraw_on_stop: bool = False
    reconcile_interval: float = Field(default=30.0, gt=0, le=3600)
    learn: LearnConfig = Field(default_factory=LearnConfig)

    @field_validator("prefixes", mode="before")
    @classmethod
    def _strict_cidrs(cls, value: object) -> object:
        if not isinstance(value, list):
            return value
        out: list[IPNetwork] = []
        for i, item in enumerate(value):
            try:
                out.append(ipaddress.ip_network(str(item), strict=True))
            except ValueError as exc:
                raise ValueError(f"prefixes[{i}] {item!r}: {exc}") from None
        return out

    @field_validator("prefixes")
    @classmethod
    def _no_duplicates(cls, value: list[IPNetwork]) -> list[IPNetwork]:
        seen: set[IPNetwork] = set()
        for net in value:
            if net in seen:
                raise ValueError(f"prefix {net} is listed twice")
            seen.add(net)
        return value

    @field_validator("table")
    @classmethod
    def _usable_table(cls, value: int) -> int:
        if value in (253, 255):
            raise ValueError(f"table {value} is the kernel's {'default' if value == 253 else 'local'} table")
        return value

    @field_validator("protocol")
    @classmethod
    def _free_protocol(cls, value: int) -> int:
        if value in TAKEN_PROTOCOLS:
            raise ValueError(
                f"route protocol {value} is already used (0-16 kernel/iproute2, 18 keepalived, 42 babel, "
                f"99, 186-192 FRR); pick a free number such as {DEFAULT_PROTOCOL}"
            )
        return value
