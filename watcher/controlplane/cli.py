"""`mesh-watcher control-plane`: run the embedded control plane."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

from .._net import parse_listen

log = logging.getLogger("watcher.controlplane")


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "control-plane",
        help="run the embedded control plane (the Cloudflare side: nodes, replicas, failover)",
        description="Serve the Cloudflare-shaped Mesh API on HOST:PORT, with its state in --state-dir.",
    )
    p.add_argument(
        "--listen",
        default="127.0.0.1:8787",
        metavar="HOST:PORT",
        help="address to listen on (port 0 picks a free port; default %(default)s)",
    )
    p.add_argument("--state-dir", required=True, type=Path, help="directory for state.db and admin.token")
    p.add_argument(
        "--admin-token-file",
        type=Path,
        help="file holding the admin token (else env MESH_ADMIN_TOKEN, else one is generated"
        " into <state-dir>/admin.token on first start)",
    )
    p.add_argument(
        "--detection-timeout",
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="an active replica silent this long is replaced (default %(default)s)",
    )
    p.add_argument(
        "--heartbeat-interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="heartbeat interval told to replica agents (default %(default)s)",
    )
    p.add_argument(
        "--colo-name", default="LAB1", help="colo_name reported in connections (default %(default)s)"
    )
    p.add_argument("--mesh-ipv4-range", default="100.96.0.0/12", help="Mesh IPv4 allocation range")
    p.add_argument("--mesh-ipv6-range", default="2001:db8:96::/48", help="Mesh IPv6 allocation range")
    p.add_argument(
        "--rate-limit",
        default="1200/300",
        metavar="REQUESTS/SECONDS",
        help="API requests allowed per token per window, like Cloudflare's; over it: HTTP 429 with"
        " retry-after. 0 turns it off. Replica-agent endpoints are never limited (default %(default)s)",
    )
    p.add_argument(
        "--event-retention",
        type=int,
        default=10_000,
        metavar="N",
        help="events kept per node for Last-Event-ID replay; a client resuming from further back"
        " gets a 'reset' event (default %(default)s)",
    )
    p.set_defaults(func=run)


def _config(args: argparse.Namespace) -> Any:
    from ._app import AppConfig
    from ._engine import EngineConfig
    from ._ratelimit import RateLimit

    try:
        host, port = parse_listen(args.listen)
    except ValueError as exc:
        raise ValueError(f"--listen {exc}") from None
    if not math.isfinite(args.detection_timeout):
        raise ValueError(f"--detection-timeout {args.detection_timeout}: must be a finite number of seconds")
    if not 0 < args.heartbeat_interval < args.detection_timeout:
        raise ValueError(
            f"--heartbeat-interval ({args.heartbeat_interval}) must be > 0 and below --detection-timeout "
            f"({args.detection_timeout})"
        )
    try:
        v4 = ipaddress.IPv4Network(args.mesh_ipv4_range, strict=True)
    except ValueError as exc:
        raise ValueError(f"--mesh-ipv4-range {args.mesh_ipv4_range!r}: {exc}") from None
    try:
        v6 = ipaddress.IPv6Network(args.mesh_ipv6_range, strict=True)
    except ValueError as exc:
        raise ValueError(f"--mesh-ipv6-range {args.mesh_ipv6_range!r}: {exc}") from None
    token = os.environ.get("MESH_ADMIN_TOKEN") or None
    if args.admin_token_file is not None:
        try:
            token = args.admin_token_file.read_text().strip()
        except OSError as exc:
            raise ValueError(f"--admin-token-file {args.admin_token_file}: {exc.strerror}") from None
        if not token:
            raise ValueError(f"--admin-token-file {args.admin_token_file}: the file is empty")
    if args.event_retention < 1:
        raise ValueError(f"--event-retention {args.event_retention}: must keep at least 1 event per node")
    if not args.colo_name.strip():
        raise ValueError("--colo-name: must not be empty")
    engine = EngineConfig(args.detection_timeout, args.heartbeat_interval, args.colo_name, v4, v6)
    return (
        host,
        port,
        AppConfig(
            state_dir=args.state_dir,
            admin_token=token,
            engine=engine,
            rate_limit=RateLimit.parse(args.rate_limit),
            event_retention=args.event_retention,
        ),
    )


def run(args: argparse.Namespace) -> int:
    try:
        host, port, config = _config(args)
    except ValueError as exc:
        print(f"mesh-watcher control-plane: {exc}", file=sys.stderr)
        return 2
    import asyncio

    return asyncio.run(_serve(host, port, config))


async def _serve(host: str, port: int, config: Any) -> int:
    import asyncio
    import signal
    import socket

    import uvicorn

    from ._app import create_app

    app = create_app(config)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when the listening
    # socket says TCP, and without it each keep-alive response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        print(f"mesh-watcher control-plane: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return 1
    bound = sock.getsockname()[1]

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            # End event streams first, or the graceful shutdown waits for them to time out.
            cp = getattr(app.state, "cp", None)
            if cp is not None:
                cp.begin_shutdown()
            super().handle_exit(sig, frame)
            # uvicorn re-raises captured signals after shutting down; SIGTERM is our normal,
            # clean stop, so exit 0 instead of dying by the signal.
            captured = getattr(self, "_captured_signals", None)
            if sig == signal.SIGTERM and isinstance(captured, list):
                captured[:] = [s for s in captured if s != signal.SIGTERM]

    # Access log only with -vv. It shows method, path and status, never headers, so never a token
    # (no endpoint takes a token in the URL). log_config=None: keep our logging setup.
    verbose = logging.getLogger().isEnabledFor(logging.DEBUG)
    # httpx logs each webhook POST with its full URL, whose path is often a secret (as Slack's are);
    # our own delivery log names the webhook by id and origin instead. Even with -vv.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    uv_config = uvicorn.Config(
        app,
        log_config=None,
        log_level="info" if verbose else "warning",
        access_log=verbose,
        timeout_graceful_shutdown=3,
        lifespan="on",
        server_header=False,
    )
    server = Server(uv_config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    if server.started:
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        print(f"listening on http://{shown}:{bound}", flush=True)
        log.info("listening on http://%s:%d (state in %s)", shown, bound, config.state_dir)
    await task
    return 0 if server.started else 1
