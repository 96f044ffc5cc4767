"""`mesh-watcher replica`: the replica agent (what the Cloudflare One Client does for a Mesh node)."""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "replica",
        help="run a replica agent against the embedded control plane",
        description="Register this host as a replica of the node the token belongs to and keep it connected.",
    )
    tok = p.add_mutually_exclusive_group()
    tok.add_argument(
        "--token", help="node token (prefer --token-file or env MESH_NODE_TOKEN: argv is public)"
    )
    tok.add_argument("--token-file", type=Path, help="file holding the node token")
    p.add_argument("--api", required=True, help="control-plane base URL, including /client/v4")
    p.add_argument("--state-dir", required=True, type=Path, help="where replica.json (the identity) lives")
    p.add_argument("--transport", choices=("masque", "wireguard"), default="masque")
    p.add_argument("--device-name", help="device name to report (default: the host name)")
    p.add_argument(
        "--lan-address",
        action="append",
        dest="lan_addresses",
        metavar="ADDR",
        help="LAN address to report (repeatable; default: the global addresses of every interface but lo)",
    )
    p.add_argument(
        "--dataplane",
        action="store_true",
        help="turn IP forwarding on only while this replica is active (sysctls in this namespace)",
    )
    p.add_argument(
        "--no-push",
        dest="push",
        action="store_false",
        help="do not hold the node's event stream open; learn role changes at heartbeats only",
    )
    p.set_defaults(func=run)


def _token(args: argparse.Namespace) -> str:
    if args.token:
        return str(args.token).strip()
    if args.token_file is not None:
        try:
            value: str = args.token_file.read_text().strip()
        except OSError as exc:
            raise ValueError(f"--token-file {args.token_file}: {exc.strerror}") from None
        if not value:
            raise ValueError(f"--token-file {args.token_file}: the file is empty")
        return value
    env = os.environ.get("MESH_NODE_TOKEN", "").strip()
    if not env:
        raise ValueError("no node token: give --token, --token-file or env MESH_NODE_TOKEN")
    return env


def run(args: argparse.Namespace) -> int:
    import socket

    from ._agent import Agent, AgentConfig

    try:
        token = _token(args)
        lan = None
        if args.lan_addresses:
            lan = [str(ipaddress.ip_address(a)) for a in args.lan_addresses]
        if not args.api.startswith(("http://", "https://")):
            raise ValueError(f"--api {args.api!r}: expected an http(s) URL ending in /client/v4")
    except ValueError as exc:
        print(f"mesh-watcher replica: {exc}", file=sys.stderr)
        return 2
    config = AgentConfig(
        api=args.api,
        token=token,
        state_dir=args.state_dir,
        transport=args.transport,
        device_name=args.device_name or socket.gethostname(),
        lan_addresses=lan,
        dataplane=args.dataplane,
        push=args.push,
    )
    agent = Agent(config, threading.Event())

    def on_signal(signum: int, frame: Any) -> None:
        agent.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return agent.run()
