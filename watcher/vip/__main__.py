"""Standalone VRRP runner (tests, benchmarks, or VIP mode without the daemon).

    python -m watcher.vip --config vip.yaml [--active | --priority N] [--status-file F]
    python -m watcher.vip --interface eth0 --vrid 51 --address 192.0.2.254 --advert-interval 0.1

Signals: SIGTERM/SIGINT resign (priority-0 advert), remove the VIPs and exit 0; SIGUSR1 sets
priority_active, SIGUSR2 priority_passive (what the daemon does when the active replica changes).
`--status-file` is rewritten (atomically) as JSON whenever state or counters change.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .._yaml import ConfigError, parse_yaml, validation_message
from .config import VipConfig

log = logging.getLogger("watcher.vip")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m watcher.vip", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="YAML file holding a VipConfig (flags below override it)")
    p.add_argument("--interface")
    p.add_argument("--vrid", type=int)
    p.add_argument("--address", action="append", help="a VIP (repeat)")
    p.add_argument("--advert-interval", type=float)
    p.add_argument("--checksum-mode", choices=["pseudo-header", "rfc9568"])
    p.add_argument("--unicast-peer", action="append")
    p.add_argument("--allowed-source", action="append")
    p.add_argument("--no-preempt", action="store_true")
    p.add_argument("--garp-refresh", type=float, help="periodic GARP/NA refresh interval")
    prio = p.add_mutually_exclusive_group()
    prio.add_argument("--active", action="store_true", help="start at priority_active")
    prio.add_argument("--priority", type=int, help="start at this priority")
    p.add_argument("--status-file", type=Path)
    p.add_argument("-v", "--verbose", action="count", default=0)
    return p


def load_config(args: argparse.Namespace) -> VipConfig:
    data: dict[str, Any] = {}
    lines: dict[Any, int] = {}
    source = "command line"
    if args.config:
        source = args.config
        try:
            text = Path(args.config).read_text()
        except OSError as exc:
            raise ConfigError(f"{args.config}: cannot read: {exc.strerror}") from None
        data, lines = parse_yaml(text, args.config)
        if not isinstance(data, dict):
            raise ConfigError(f"{args.config}:1: the top level must be a mapping")
    flags = {
        "interface": args.interface, "vrid": args.vrid, "addresses": args.address,
        "advert_interval": args.advert_interval, "checksum_mode": args.checksum_mode,
        "unicast_peers": args.unicast_peer, "allowed_sources": args.allowed_source,
    }  # fmt: skip
    data.update({k: v for k, v in flags.items() if v is not None})
    if args.no_preempt:
        data["preempt"] = False
    if args.garp_refresh is not None:
        data.setdefault("garp", {})["refresh_interval"] = args.garp_refresh
    try:
        return VipConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, lines, source)) from None


class StatusWriter:
    def __init__(self, path: Path | None, source: Any) -> None:
        self.path = path
        self.source = source
        self._pending = False

    def changed(self) -> None:
        if self.path is None or self._pending:
            return
        self._pending = True
        # Coalesce bursts of changes (a flood of bad packets) into one write per 20 ms.
        asyncio.get_running_loop().call_later(0.02, self.write)

    def write(self) -> None:
        self._pending = False
        if self.path is None:
            return
        body = {"pid": os.getpid(), "time": time.time(), "instances": self.source.stats}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(body))
        tmp.replace(self.path)


async def run(config: VipConfig, *, priority: int | None, status_file: Path | None) -> int:
    from .actuator import VipActuator

    writer = StatusWriter(status_file, None)
    actuator = VipActuator(config, on_change=writer.changed)
    writer.source = actuator
    if priority is not None:
        actuator.set_priority(priority)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, actuator.set_priority, config.priority_active)
    loop.add_signal_handler(signal.SIGUSR2, actuator.set_priority, config.priority_passive)
    await actuator.start()
    writer.write()
    try:
        await stop.wait()
    finally:
        log.info("vrrp: stopping (resigning)")
        await actuator.close()
        writer.write()
        log.debug("vrrp: closed")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose > 1 else logging.INFO
    logging.basicConfig(
        level=level, format="%(asctime)s.%(msecs)03d %(levelname)s %(message)s", datefmt="%H:%M:%S"
    )
    try:
        config = load_config(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    priority = config.priority_active if args.active else args.priority
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run(config, priority=priority, status_file=args.status_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
