"""Operator CLI over the API: `mesh-watcher node ...` and `mesh-watcher routes ...`.

Works against Cloudflare (https://api.cloudflare.com/client/v4) and the embedded control plane
alike. Connection options may follow `node`/`routes` or the final sub-command; env fallbacks
MESH_API_URL, MESH_API_TOKEN, MESH_ACCOUNT_ID. Exit codes: 0 ok, 1 the API refused or failed
(its message is printed), 2 bad usage.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

ENV_API, ENV_TOKEN, ENV_ACCOUNT = "MESH_API_URL", "MESH_API_TOKEN", "MESH_ACCOUNT_ID"


def _common() -> argparse.ArgumentParser:
    # SUPPRESS: an option given after `node` must survive the leaf parser's defaults.
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("API connection")
    sup = argparse.SUPPRESS
    g.add_argument("--api", default=sup, metavar="URL", help=f"API base URL incl. /client/v4 (env {ENV_API})")
    g.add_argument("--token", default=sup, help=f"API token (env {ENV_TOKEN}; prefer --token-file)")
    g.add_argument("--token-file", default=sup, type=Path, metavar="FILE", help="file holding the API token")
    g.add_argument(
        "--account", default=sup, metavar="ID", help=f"account id (env {ENV_ACCOUNT}; default: the only one)"
    )
    g.add_argument("--timeout", default=sup, type=float, metavar="S", help="request timeout (default 10)")
    g.add_argument("--json", default=sup, action="store_true", help="machine-readable JSON output")
    return p


def register(sub: Any) -> None:
    common = _common()

    def leaf(group: Any, name: str, help_: str, cmd: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = group.add_parser(name, help=help_, description=help_, parents=[common])
        p.set_defaults(func=_run, opcmd=cmd)
        return p

    node = sub.add_parser(
        "node", help="manage Mesh nodes and their replicas (over the API)", parents=[common]
    )
    node.set_defaults(func=lambda _a: node.print_help() or 2)
    nsub = node.add_subparsers(dest="node_command", metavar="ACTION")
    p = leaf(nsub, "create", "create a node", "node_create")
    p.add_argument("name")
    p.add_argument(
        "--no-ha", dest="ha", action="store_false", help="a single-replica node (HA is fixed at creation)"
    )
    leaf(nsub, "list", "list nodes", "node_list")
    leaf(nsub, "show", "show one node", "node_show").add_argument("node", help="node name or id")
    leaf(nsub, "delete", "delete a node", "node_delete").add_argument("node", help="node name or id")
    p = leaf(nsub, "add-replica", "print the token and commands that add a replica", "node_add_replica")
    p.add_argument("node", help="node name or id")
    p.add_argument(
        "--state-dir", default="/var/lib/mesh-watcher/replica", help="state dir in the printed command"
    )
    leaf(nsub, "replicas", "list a node's replicas", "node_replicas").add_argument(
        "node", help="node name or id"
    )
    p = leaf(nsub, "promote", "make a replica the active one (manual failover)", "node_promote")
    p.add_argument("node", help="node name or id")
    p.add_argument("replica", help="replica id (or its unique device name)")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")

    routes = sub.add_parser("routes", help="manage the CIDR routes of nodes (over the API)", parents=[common])
    routes.set_defaults(func=lambda _a: routes.print_help() or 2)
    rsub = routes.add_subparsers(dest="routes_command", metavar="ACTION")
    p = leaf(rsub, "add", "route a CIDR to a node", "routes_add")
    p.add_argument("node", help="node name or id")
    p.add_argument("network", metavar="CIDR")
    p.add_argument("--comment")
    leaf(rsub, "list", "list routes", "routes_list").add_argument("--node", help="only this node's routes")
    leaf(rsub, "delete", "delete a route", "routes_delete").add_argument("route_id")


def _run(args: argparse.Namespace) -> int:
    from ._opcli_cmds import run

    return run(args)
