"""VIP-mode configuration (the `vip:` section of the watcher config, or a standalone YAML file)."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

VipAddress = ipaddress.IPv4Interface | ipaddress.IPv6Interface

# VRRPv3 carries the interval in centiseconds in a 12-bit field: 1..4095 cs.
MIN_ADVERT, MAX_ADVERT = 0.01, 40.95


class GarpConfig(BaseModel):
    """Gratuitous ARP / unsolicited NA sent when this host becomes master."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(default=5, ge=1, le=100, description="packets per burst")
    interval: float = Field(default=0.0, ge=0.0, le=5.0, description="seconds between packets of a burst")
    second_burst_delay: float | None = Field(
        default=5.0, gt=0.0, le=600.0, description="a second burst this long after the first (null: none)"
    )
    # Switch and neighbour caches that missed the bursts are fixed by a slow periodic refresh.
    refresh_interval: float | None = Field(default=None, gt=0.0, le=3600.0)


class VipConfig(BaseModel):
    """One virtual router (one VRID) on one interface, IPv4 and/or IPv6 addresses."""

    model_config = ConfigDict(extra="forbid")

    interface: str = Field(min_length=1, max_length=15)
    vrid: int = Field(ge=1, le=255)
    local_replica_id: str | None = Field(
        default=None, description="the replica that runs on this host; it gets priority_active when active"
    )
    addresses: list[VipAddress] = Field(
        min_length=1, description="VIPs; an address without a prefix takes its interface subnet's"
    )
    advert_interval: float = Field(default=1.0, ge=MIN_ADVERT, le=MAX_ADVERT)
    priority_active: int = Field(default=250, ge=1, le=254)
    priority_passive: int = Field(default=100, ge=1, le=254)
    preempt: bool = True
    preempt_delay: float = Field(default=0.0, ge=0.0, le=3600.0)
    # keepalived and FRR include the IPv4 pseudo-header in the v3 checksum; RFC 9568 (and Cisco,
    # Juniper, Arista) checksum the VRRP message only. IPv6 always uses the pseudo-header.
    checksum_mode: Literal["pseudo-header", "rfc9568"] = "pseudo-header"
    # keepalived < 2.0 (and `old_unicast_checksum`) put 224.0.0.18 in the pseudo-header of unicast
    # adverts instead of the peer's address. We always accept both forms; this picks what we send.
    unicast_checksum_dst: Literal["peer", "group"] = "peer"
    unicast_peers: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = Field(default_factory=list)
    allowed_sources: list[ipaddress.IPv4Address | ipaddress.IPv6Address] | None = Field(
        default=None, description="accept adverts only from these; defaults to unicast_peers when set"
    )
    garp: GarpConfig = GarpConfig()
    use_virtual_mac: bool = False
    promote_on_takeover: bool = False

    @field_validator("addresses", mode="before")
    @classmethod
    def _no_prefix_marker(cls, value: object) -> object:
        # Keep "no prefix given" visible after parsing: it is resolved from the interface later.
        if isinstance(value, list):
            return [_mark(v) for v in value]
        return value

    @field_validator("advert_interval")
    @classmethod
    def _centiseconds(cls, value: float) -> float:
        cs = round(value * 100)
        if abs(cs - value * 100) > 1e-6:
            raise ValueError(f"{value} s is not a whole number of centiseconds (VRRPv3 resolution)")
        return cs / 100

    @model_validator(mode="after")
    def _check(self) -> VipConfig:
        if self.use_virtual_mac:
            raise ValueError("use_virtual_mac: not supported yet (VIPs use the interface's own MAC)")
        if self.priority_active <= self.priority_passive:
            raise ValueError(
                f"priority_active ({self.priority_active}) must be above priority_passive "
                f"({self.priority_passive})"
            )
        seen: set[str] = set()
        for addr in self.addresses:
            if str(addr.ip) in seen:
                raise ValueError(f"addresses: {addr.ip} listed twice")
            seen.add(str(addr.ip))
            if addr.ip.is_multicast or addr.ip.is_unspecified or addr.ip.is_loopback:
                raise ValueError(f"addresses: {addr.ip} cannot be a virtual address")
        v6 = self.addresses_for(6)
        if v6 and not v6[0].ip.is_link_local:
            raise ValueError(
                f"addresses: the first IPv6 address must be link-local (RFC 5798 §5.2.9), not {v6[0].ip}"
            )
        for peer in self.unicast_peers:
            if peer.is_multicast:
                raise ValueError(f"unicast_peers: {peer} is multicast")
        return self

    def addresses_for(self, family: int) -> list[VipAddress]:
        return [a for a in self.addresses if a.version == family]

    def families(self) -> list[int]:
        return [f for f in (4, 6) if self.addresses_for(f)]

    def peers_for(self, family: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        return [p for p in self.unicast_peers if p.version == family]

    def allowlist_for(self, family: int) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address] | None:
        """Sources allowed to send us adverts for `family`; None = anyone on the link."""
        if self.allowed_sources is not None:
            return {a for a in self.allowed_sources if a.version == family}
        if self.unicast_peers:
            return set(self.peers_for(family))
        return None


def has_explicit_prefix(addr: VipAddress) -> bool:
    return not getattr(addr, "_mw_implicit", False)


class _ImplicitV4(ipaddress.IPv4Interface):
    _mw_implicit = True


class _ImplicitV6(ipaddress.IPv6Interface):
    _mw_implicit = True


def _mark(value: object) -> object:
    if isinstance(value, str) and "/" not in value:
        ip = ipaddress.ip_address(value)
        return _ImplicitV4(value) if ip.version == 4 else _ImplicitV6(value)
    return value
