"""The operator CLI's commands (see watcher.opcli), over the blocking MeshApi facade."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._opcli_fmt import dump_json, fields, since, table
from .cfapi import ApiError, MeshApi

CLOUDFLARE_HINT = "https://api.cloudflare.com/client/v4 or http://127.0.0.1:8787/client/v4"


class UsageError(Exception):
    """Bad options: exit 2 with the message."""


def connect(args: argparse.Namespace) -> MeshApi:
    from .opcli import ENV_ACCOUNT, ENV_API, ENV_TOKEN

    api = getattr(args, "api", None) or os.environ.get(ENV_API)
    if not api:
        raise UsageError(f"no API URL: pass --api URL or set {ENV_API} (e.g. {CLOUDFLARE_HINT})")
    token: str | None = getattr(args, "token", None)
    token_file: Path | None = getattr(args, "token_file", None)
    if token and token_file:
        raise UsageError("give --token or --token-file, not both")
    if token_file is not None:
        from .source.config import read_secret_file

        try:
            token = read_secret_file(token_file, "--token-file")
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    token = token or os.environ.get(ENV_TOKEN)
    if not token:
        raise UsageError(f"no API token: pass --token-file FILE, --token TOKEN or set {ENV_TOKEN}")
    account = getattr(args, "account", None) or os.environ.get(ENV_ACCOUNT) or None
    # An operator waits for one answer: a short retry budget, and never minutes for a rate block.
    return MeshApi(
        api, token, account_id=account, timeout=getattr(args, "timeout", 10.0), retries=1, max_wait=15
    )


def resolve_node(api: MeshApi, ref: str) -> dict[str, Any]:
    """A node by name (not deleted) or by id."""
    by_name = [n for n in api.list_nodes(name=ref) if n.get("name") == ref]
    if len(by_name) == 1:
        return dict(by_name[0])
    if len(by_name) > 1:
        raise ApiError(f"{len(by_name)} nodes are named {ref!r}; use the node id")
    try:
        return dict(api.get_node(ref))
    except ApiError as exc:
        if exc.status in (400, 404):
            raise ApiError(f"no node named or with id {ref!r}", status=exc.status) from None
        raise


def resolve_replica(api: MeshApi, node: dict[str, Any], ref: str) -> dict[str, Any]:
    replicas = api.connections(node["id"])
    for match in (
        lambda r: r.get("id") == ref,
        lambda r: r.get("device_name") == ref,
        lambda r: str(r.get("id", "")).startswith(ref),
    ):
        found = [r for r in replicas if match(r)]
        if len(found) == 1:
            return dict(found[0])
        if len(found) > 1:
            raise ApiError(
                f"{ref!r} matches {len(found)} replicas of node {node.get('name')}; use the replica id"
            )
    known = ", ".join(f"{r.get('id')} ({r.get('device_name') or '-'})" for r in replicas) or "none"
    raise ApiError(f"node {node.get('name')} has no replica {ref!r} (replicas: {known})")


def _ha(node: dict[str, Any]) -> bool | None:
    meta = node.get("metadata")
    return meta.get("ha") if isinstance(meta, dict) else None


# -- node ------------------------------------------------------------------------------------


def node_create(api: MeshApi, args: argparse.Namespace, as_json: bool) -> None:
    node = api.create_node(args.name, ha=args.ha)
    if as_json:
        return dump_json(node)
    kind = "HA" if _ha(node) else "single replica"
    print(f"Created node {node.get('name')} ({kind}), id {node.get('id')}")
    print(f"Add a replica:  mesh-watcher node add-replica {node.get('name')}")


def node_list(api: MeshApi, args: argparse.Namespace, as_json: bool) -> None:
    nodes = api.list_nodes()
    if as_json:
        return dump_json(nodes)
    rows = [
        (n.get("id"), n.get("name"), n.get("status"), _ha(dict(n)), since(n.get("created_at"))) for n in nodes
    ]
    table(("ID", "NAME", "STATUS", "HA", "CREATED"), rows)


def node_show(api: MeshApi, args: argparse.Namespace, as_json: bool) -> None:
    node = resolve_node(api, args.node)
    replicas = api.connections(node["id"])
    if as_json:
        return dump_json({**node, "replicas": replicas})
    active = [r.get("id") for r in replicas if r.get("ha_status") == "active"]
    fields(
        [
            ("id", node.get("id")),
            ("name", node.get("name")),
            ("status", node.get("status")),
            ("ha", _ha(node)),
            ("type", node.get("tun_type")),
            ("account", node.get("account_tag")),
            ("created", since(node.get("created_at"))),
            ("connected since", since(node.get("conns_active_at"))),
            ("disconnected since", since(node.get("conns_inactive_at"))),
            ("replicas", len(replicas)),
            ("active replica", active[0] if active else None),
        ]
    )


def node_delete(api: MeshApi, args: argparse.Namespace, as_json: bool) -> None:
    node = resolve_node(api, args.node)
    result = api.delete_node(node["id"])
    if as_json:
        return dump_json(result)
    print(f"Deleted node {node.get('name')} ({node.get('id')})")


def node_add_replica(api: MeshApi, args: argparse.Namespace, as_json: bool) -> None:
    node = resolve_node(api, args.node)
    token = api.node_token(node["id"])
    commands = {
        "cloudflare": [f"warp-cli connector new {token}", "warp-cli connect"],
        "embedded": [
            f"mesh-watcher replica --api {api.aio.base_url} --token {token} --state-dir {args.state_dir}"
        ],
    }
    if as_json:
        return dump_json({"node": node, "token": token, "commands": commands})
    print(f"Add a replica to node {node.get('name')} ({node.get('id')}).\n")
    print("Token (secret: anyone holding it can join this node):")
    print(f"  {token}\n")
    print("On a Linux host with the Cloudflare One Client (Cloudflare Mesh):")
    for line in commands["cloudflare"]:
        print(f"  {line}")
    print("\nWith the embedded control plane (mesh-watcher's replica agent):")
    for line in commands["embedded"]:
        print(f"  {line}")
    print("  (or put the token in a 0600 file and pass --token-file FILE)")
    if _ha(node) is False:
        print("\nThis node is not HA: it takes a single replica.")


def node_replicas(api: MeshApi, args: argparse.Namespace, as_json: bool) -> None:
    node = resolve_node(api, args.node)
    replicas = api.connections(node["id"])
    if as_json:
        return dump_json(replicas)
    rows = []
    for r in replicas:
        conns = r.get("conns") or []
        first = conns[0] if conns else {}
        rows.append(
            (
                r.get("id"),
                r.get("ha_status"),
                r.get("mesh_ipv4"),
                r.get("mesh_ipv6"),
                first.get("colo_name"),
                first.get("origin_ip"),
                r.get("platform") or r.get("arch"),
                r.get("version"),
                r.get("device_name"),
                since(first.get("opened_at")) if conns else None,
                r.get("lan_addresses"),
            )
        )
    headers = (
        "ID",
        "STATUS",
        "MESH IPV4",
        "MESH IPV6",
        "COLO",
        "ORIGIN IP",
        "PLATFORM",
        "VERSION",
        "DEVICE",
        "CONNECTED SINCE",
        "LAN ADDRESSES",
    )
    table(headers, rows)


def node_promote(api: MeshApi, args: argparse.Namespace, as_json: bool) -> int:
    node = resolve_node(api, args.node)
    replica = resolve_replica(api, node, args.replica)
    label = replica["id"] + (f" ({replica['device_name']})" if replica.get("device_name") else "")
    if replica.get("ha_status") == "active":
        print(f"Replica {label} is already active on node {node.get('name')}", file=sys.stderr)
    if not args.yes:
        try:
            answer = input(f"Promote replica {label} on node {node.get('name')}? [y/N] ")
        except EOFError:
            print(file=sys.stderr)
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("Not promoted.", file=sys.stderr)
            return 1
    result = api.failover(node["id"], replica["id"])
    if as_json:
        dump_json(result)
        return 0
    print(
        f"Promoted replica {label} to active on node {node.get('name')} (node status: {result.get('status')})"
    )
    return 0


# -- routes ----------------------------------------------------------------------------------


def routes_add(api: MeshApi, args: argparse.Namespace, as_json: bool) -> None:
    node = resolve_node(api, args.node)
    route = api.create_route(args.network, node["id"], comment=args.comment)
    if as_json:
        return dump_json(route)
    print(f"Added route {route.get('network')} -> node {node.get('name')} (route id {route.get('id')})")


def routes_list(api: MeshApi, args: argparse.Namespace, as_json: bool) -> None:
    node = resolve_node(api, args.node) if args.node else None
    routes = api.list_routes(tunnel_id=node["id"] if node else None)
    if as_json:
        return dump_json(routes)
    names = {n.get("id"): n.get("name") for n in ([node] if node else api.list_nodes())}
    rows = [
        (
            r.get("id"),
            r.get("network"),
            names.get(r.get("tunnel_id"), r.get("tunnel_id")),
            r.get("comment"),
            since(r.get("created_at")),
        )
        for r in routes
    ]
    table(("ID", "NETWORK", "NODE", "COMMENT", "CREATED"), rows)


def routes_delete(api: MeshApi, args: argparse.Namespace, as_json: bool) -> None:
    route = api.delete_route(args.route_id)
    if as_json:
        return dump_json(route)
    print(f"Deleted route {route.get('network') or args.route_id} ({args.route_id})")


COMMANDS: dict[str, Callable[[MeshApi, argparse.Namespace, bool], int | None]] = {
    f.__name__: f
    for f in (
        node_create,
        node_list,
        node_show,
        node_delete,
        node_add_replica,
        node_replicas,
        node_promote,
        routes_add,
        routes_list,
        routes_delete,
    )
}


def run(args: argparse.Namespace) -> int:
    try:
        api = connect(args)
    except UsageError as exc:
        print(f"mesh-watcher: {exc}", file=sys.stderr)
        return 2
    try:
        return COMMANDS[args.opcmd](api, args, bool(getattr(args, "json", False))) or 0
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        api.close()
