"""`mesh-watcher` command line: one sub-command per job, each defined in its own module.

Each module listed in COMMANDS exposes `register(subparsers) -> None`, adding its sub-command(s)
with `set_defaults(func=...)`; `func(args) -> int` is the exit code. Modules keep heavy imports
(FastAPI, scapy, pyroute2) inside `func`, so `mesh-watcher --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from . import __version__

COMMANDS = (
    "watcher.controlplane.cli",  # control-plane
    "watcher.agent.cli",  # replica
    "watcher.opcli",  # node, routes
    "watcher.daemon.cli",  # run, check-config, status
    "watcher.lab.cli",  # lab sweep
    "watcher.demo",  # demo
    "watcher.bench",  # bench
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mesh-watcher",
        description="Make outbound traffic follow the active replica of a Cloudflare Mesh node.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2) if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # httpx logs every request at INFO (heartbeats, polls: noise); kept for -vv. The control plane
    # silences it even then, since webhook URLs can be secrets.
    logging.getLogger("httpx").setLevel(logging.WARNING if args.verbose < 2 else logging.DEBUG)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
