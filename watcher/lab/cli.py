"""`mesh-watcher lab sweep`: remove namespaces left behind by a killed test or demo run."""

from __future__ import annotations

import argparse
from typing import Any


def _sweep(args: argparse.Namespace) -> int:
    from ._netns import sweep_stale

    removed = sweep_stale()
    print("\n".join(removed) if removed else "no stale lab namespaces")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("lab", help="network-namespace lab utilities")
    lab_sub = p.add_subparsers(dest="lab_command", required=True)
    sweep = lab_sub.add_parser("sweep", help="remove namespaces of lab runs whose process is gone")
    sweep.set_defaults(func=_sweep)
