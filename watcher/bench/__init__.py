"""`mesh-watcher bench`: every performance figure of the project, measured in one run on this host,
each beside its target and its anchor (the thing it is compared with), as a markdown table.

    sudo mesh-watcher bench [--quick] [--only P1,P3] [--json FILE] [--markdown FILE]

Figures: P1 promotion -> kernel converged (1/1k/10k prefixes, subscribed and poll-only), P3 failover
flip, P4 cold install vs `ip -batch`, P5 VIP takeover vs keepalived (+ promotion -> VIP answering),
P6 drift repair, P7 watcher RSS and idle CPU. Benchmarks measure and report; they are not tests.
Everything runs in lab namespaces the bench creates and always removes.
"""

from __future__ import annotations

import argparse
from typing import Any

from ._figures import Figure, markdown_table

__all__ = ["Figure", "markdown_table", "register"]


def register(sub: Any) -> None:
    p = sub.add_parser(
        "bench",
        help="measure the performance figures (P1-P7) beside their targets (root; lab namespaces)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="fewer iterations and a shorter window (~3 min)")
    p.add_argument(
        "--smoke", action="store_true", help="tiny sizes: checks that every part runs (numbers meaningless)"
    )
    p.add_argument("--only", metavar="LIST", help="comma-separated figures to run, e.g. P1,P3 (default: all)")
    p.add_argument("--json", metavar="FILE", help="also write every figure with its raw numbers as JSON")
    p.add_argument("--markdown", metavar="FILE", help="also write the table to FILE")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from ._run import main

    return main(args)
