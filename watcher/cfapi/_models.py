"""Shapes of the API's results, as TypedDicts: the client returns the JSON objects themselves.

Plain dicts keep unknown fields (Cloudflare adds fields over time) and cost nothing to parse;
these types only document what is there. `total=False`: Cloudflare omits fields freely.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

NodeStatus = Literal["inactive", "degraded", "healthy", "down"]
Scope = Literal["read", "write"]


class Account(TypedDict, total=False):
    id: str
    name: str


class Node(TypedDict, total=False):
    id: str
    account_tag: str
    name: str
    status: NodeStatus
    conns_active_at: str | None
    conns_inactive_at: str | None
    created_at: str
    deleted_at: str | None
    metadata: dict[str, Any]
    tun_type: str


class Conn(TypedDict, total=False):
    id: str
    client_id: str
    client_version: str
    colo_name: str
    opened_at: str
    origin_ip: str


class Connector(TypedDict, total=False):
    """One replica (an item of `/connections`); the last block is the embedded plane's extension."""

    id: str
    arch: str
    version: str
    features: list[str]
    run_at: str
    ha_status: Literal["offline", "passive", "active"]
    conns: list[Conn]
    device_name: str
    platform: str
    transport: str
    mesh_ipv4: str | None
    mesh_ipv6: str | None
    lan_addresses: list[str]
    last_heartbeat_at: str | None


class Route(TypedDict, total=False):
    id: str
    network: str
    tunnel_id: str
    comment: str
    created_at: str
    deleted_at: str | None


class ApiToken(TypedDict, total=False):
    id: str
    name: str
    scope: Scope
    value: str


class Webhook(TypedDict, total=False):
    id: str
    name: str
    url: str
