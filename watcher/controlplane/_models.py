"""Request bodies (validated, extra keys refused) and the JSON shapes of API objects."""

from __future__ import annotations

import ipaddress
import json
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ._store import Row

_NAME_PATTERN = r"^\S(.*\S)?$"  # no leading or trailing blanks


def _name(required: bool = True) -> Any:
    if required:
        return Field(min_length=1, max_length=255, pattern=_NAME_PATTERN)
    return Field(None, min_length=1, max_length=255, pattern=_NAME_PATTERN)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NodeCreate(_Body):
    name: str = _name()
    ha: bool = False
    config_src: Literal["local", "cloudflare"] | None = None  # accepted for Cloudflare compatibility


class NodePatch(_Body):
    name: str | None = _name(required=False)
    ha: bool | None = None  # present only to refuse it clearly: HA is chosen at creation


class Failover(_Body):
    client_id: str = Field(min_length=1, max_length=64)


def _strict_network(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a network in CIDR form with no host bits set ({exc})") from None


class RouteCreate(_Body):
    network: str
    tunnel_id: str = Field(min_length=1)
    comment: str = Field("", max_length=500)
    virtual_network_id: str | None = None

    @field_validator("network")
    @classmethod
    def _network(cls, v: str) -> str:
        return _strict_network(v)

    @field_validator("virtual_network_id")
    @classmethod
    def _vnet(cls, v: str | None) -> str | None:
        # Accepted as null for Cloudflare clients that always send it; a real one would be ignored
        # silently and the route would land somewhere else than the caller meant.
        if v is not None:
            raise ValueError("virtual networks are not supported here: omit it or send null")
        return v


class RoutePatch(_Body):
    network: str | None = None
    tunnel_id: str | None = Field(None, min_length=1)
    comment: str | None = Field(None, max_length=500)

    @field_validator("network")
    @classmethod
    def _network(cls, v: str | None) -> str | None:
        return None if v is None else _strict_network(v)


class TokenCreate(_Body):
    name: str = _name()
    scope: Literal["read", "write"]


class WebhookCreate(_Body):
    name: str = _name()
    url: str
    secret: str = Field("", max_length=1024)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{v!r} is not an http(s) URL")
        return v


def _addresses(values: list[str]) -> list[str]:
    out = []
    for v in values:
        try:
            out.append(str(ipaddress.ip_address(v)))
        except ValueError:
            raise ValueError(f"{v!r} is not an IP address") from None
    return out


class Register(_Body):
    replica_id: str | None = Field(None, max_length=64)
    transport: Literal["masque", "wireguard"] = "masque"
    arch: str | None = Field(None, max_length=64)
    platform: str | None = Field(None, max_length=64)
    version: str | None = Field(None, max_length=64)
    device_name: str | None = Field(None, max_length=255)
    lan_addresses: list[str] = Field(default_factory=list, max_length=64)

    @field_validator("lan_addresses")
    @classmethod
    def _lan(cls, v: list[str]) -> list[str]:
        return _addresses(v)


class Heartbeat(_Body):
    lan_addresses: list[str] | None = Field(None, max_length=64)

    @field_validator("lan_addresses")
    @classmethod
    def _lan(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _addresses(v)


# views -------------------------------------------------------------------------------------
def node_view(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "account_tag": row["account_id"],
        "name": row["name"],
        "status": row["status"],
        "conns_active_at": row["conns_active_at"],
        "conns_inactive_at": row["conns_inactive_at"],
        "created_at": row["created_at"],
        "deleted_at": row["deleted_at"],
        "metadata": {"ha": bool(row["ha"])},
        "tun_type": "warp_connector",
        # Extension: which replica is active, as the node sees it (null when none).
        "active_replica_id": row["active_replica_id"],
    }


def replica_view(row: Row, ha_status: str, colo_name: str, last_heartbeat_at: str | None) -> dict[str, Any]:
    conns = []
    if ha_status != "offline":
        conns.append(
            {
                "id": row["conn_id"],
                "client_id": row["id"],
                "client_version": row["version"],
                "colo_name": colo_name,
                "opened_at": row["opened_at"],
                "origin_ip": row["origin_ip"],
                "is_pending_reconnect": False,
            }
        )
    return {
        "id": row["id"],
        "arch": row["arch"],
        "version": row["version"],
        "features": [],
        "run_at": row["run_at"],
        "ha_status": ha_status,
        "conns": conns,
        # Extensions (the embedded control plane only):
        "device_name": row["device_name"],
        "platform": row["platform"],
        "transport": row["transport"],
        "mesh_ipv4": row["mesh_ipv4"],
        "mesh_ipv6": row["mesh_ipv6"],
        "lan_addresses": json.loads(row["lan_addresses"]),
        "last_heartbeat_at": last_heartbeat_at,
        "colo_name": colo_name if conns else None,
        "origin_ip": row["origin_ip"],
        "opened_at": row["opened_at"] if conns else None,
    }


def route_view(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "network": row["network"],
        "tunnel_id": row["tunnel_id"],
        "comment": row["comment"],
        "created_at": row["created_at"],
        "deleted_at": row["deleted_at"],
        "tun_type": "warp_connector",
        "virtual_network_id": None,
    }


def webhook_view(row: Row) -> dict[str, Any]:
    # The secret is write-only, as on Cloudflare.
    return {
        "id": row["id"],
        "name": row["name"],
        "url": row["url"],
        "type": "generic",
        "created_at": row["created_at"],
    }
