"""`mesh-watcher run | check-config | status`: the daemon's command line."""

from __future__ import annotations

import argparse
import sys
from typing import Any

DEFAULT_STATUS_URL = "http://127.0.0.1:9477"


def register(sub: Any) -> None:
    run = sub.add_parser("run", help="run the watcher daemon (router or vip mode)")
    run.add_argument("--config", "-c", required=True, metavar="FILE", help="watcher YAML config")
    run.set_defaults(func=_run)

    check = sub.add_parser(
        "check-config",
        help="validate a watcher config (exit 0 when usable, 1 otherwise)",
        description="Validate FILE. Unless --offline, also check what only this host can tell: next-hops "
        "on connected subnets, token and secret files readable, the VIP interface present.",
    )
    check.add_argument("file", metavar="FILE")
    check.add_argument("--offline", action="store_true", help="skip the checks against this host")
    check.set_defaults(func=_check_config)

    status = sub.add_parser("status", help="show what a running watcher wants, has applied, and why")
    status.add_argument(
        "--url", default=DEFAULT_STATUS_URL, help=f"watcher metrics address ({DEFAULT_STATUS_URL})"
    )
    status.add_argument("--json", action="store_true", help="print the raw /status document")
    status.add_argument("--timeout", type=float, default=5.0, help="seconds")
    status.set_defaults(func=_status)


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from .._yaml import ConfigError
    from .config import load_config
    from .service import Watcher

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"mesh-watcher: {exc}", file=sys.stderr)
        return 1
    return asyncio.run(Watcher(config, config_path=args.config, freeze_gc=True).run())


def _check_config(args: argparse.Namespace) -> int:
    from .._yaml import ConfigError
    from ._check import host_problems
    from .config import load_config

    try:
        config = load_config(args.file)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    if not args.offline:
        problems = host_problems(config, args.file)
        if problems:
            print("\n".join(problems), file=sys.stderr)
            return 1
    print(f"{args.file}: ok (mode {config.mode}{', offline' if args.offline else ''})")
    return 0


def _status(args: argparse.Namespace) -> int:
    import json
    import urllib.error
    import urllib.request

    url = args.url.rstrip("/") + "/status"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as resp:
            doc = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"mesh-watcher status: cannot read {url}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        print(format_status(doc))
    return 0 if doc.get("in_sync") and not doc.get("stale") else 3


def _hop(h: dict[str, Any] | None) -> str:
    if not h:
        return "none"
    addrs = "/".join(a for a in (h.get("ipv4"), h.get("ipv6")) if a)
    return f"{h.get('replica')} via {addrs or 'no address'}"


def _target(t: dict[str, Any] | None) -> str:
    if not t:
        return "nothing"
    return _hop(t.get("nexthop")) + (" (stale)" if t.get("stale") else "")


def _kv(d: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items())


def format_status(doc: dict[str, Any]) -> str:
    """The /status document for a human: what is wanted, what the kernel has, and why."""
    last = doc.get("last_event") or {}
    cp = doc.get("control_plane") or {}
    lines = [
        f"node:          {doc.get('node_id')} ({doc.get('mode')} mode, version {doc.get('version')})",
        f"target:        {_hop(doc.get('target'))}",
        f"active:        {', '.join(doc.get('active_replicas') or []) or 'none'}",
        f"reason:        {doc.get('reason')}",
        f"stale:         {'YES' if doc.get('stale') else 'no'}",
        "last event:    "
        + (
            f"{last.get('trigger')} {last.get('age_seconds')}s ago, "
            + ("ok" if last.get("ok") else f"failed: {last.get('error')}")
            if last
            else "none yet"
        ),
        f"control plane: {'up' if cp.get('up') else 'DOWN'}"
        + (
            f", last success {cp['last_success_age_seconds']}s ago"
            if cp.get("last_success_age_seconds")
            else ""
        ),
        f"desired:       {_target(doc.get('desired'))}",
        f"applied:       {_target(doc.get('applied'))}"
        + ("" if doc.get("in_sync") else "   <-- NOT IN SYNC")
        + (f" ({doc['apply_error']})" if doc.get("apply_error") else ""),
    ]
    if doc.get("vrrp_state"):
        lines.append(f"vrrp:          {doc['vrrp_state']}")
    actuator = doc.get("actuator") or {}
    kernel = actuator.get("kernel")
    if isinstance(kernel, dict):
        lines.append(f"kernel ({actuator.get('name')}):")
        families = kernel.get("families")
        if isinstance(families, dict):
            extra = {k: v for k, v in kernel.items() if k != "families"}
            lines.extend(f"  {fam}: " + _kv(info) for fam, info in families.items() if isinstance(info, dict))
            if extra:
                lines.append("  " + _kv(extra))
        else:
            lines.append("  " + _kv(kernel))
    for alert in doc.get("alerts") or []:
        lines.append(f"ALERT {alert['kind']}: {alert['message']}")
    replicas = doc.get("replicas") or []
    if replicas:
        lines.append("replicas:")
        for r in replicas:
            health = {True: "healthy", False: "UNHEALTHY", None: "-"}[r.get("healthy")]
            hop = _hop(r.get("nexthop")) if r.get("nexthop") else f"no next-hop ({r.get('nexthop_problem')})"
            lines.append(f"  {r['id']:<36} {r['ha_status']:<8} {health:<9} {hop}")
    return "\n".join(lines)
