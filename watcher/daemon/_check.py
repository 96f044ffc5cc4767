"""check-config's host checks: what only the machine the watcher runs on can tell.

Each problem names file, line and key like the loader's own errors.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from pathlib import Path

from .._net import parse_listen
from .._yaml import _fmt, _line_for, parse_yaml
from ._local import LocalNet, _dump, net_for
from .config import WatcherConfig

Loc = tuple[str | int, ...]


def host_problems(config: WatcherConfig, path: str | Path) -> list[str]:
    path = str(path)
    _, lines = parse_yaml(Path(path).read_text(), path)
    problems: list[str] = []

    def add(loc: Loc, message: str) -> None:
        line = _line_for(lines, loc)
        problems.append(
            f"{path}:{line}: {_fmt(loc)}: {message}" if line else f"{path}: {_fmt(loc)}: {message}"
        )

    cp = config.control_plane
    try:
        cp.read_token()
    except ValueError as exc:
        add(("control_plane", "token_file"), str(exc))
    if cp.webhook is not None:
        try:
            cp.webhook.read_secret()
        except ValueError as exc:
            add(("control_plane", "webhook", "secret_file"), str(exc))

    try:
        nets = _dump()
    except OSError as exc:
        add((), f"cannot read this host's addresses: {exc}")
        return problems
    if config.mode == "router":
        _check_static(config, nets, add)
    if config.mode == "vip" and config.vip is not None:
        iface = config.vip.interface
        if not os.path.exists(f"/sys/class/net/{iface}"):
            add(("vip", "interface"), f"no interface {iface!r} on this host")
    if config.metrics.enabled:
        host, _ = parse_listen(config.metrics.listen)
        if host not in ("localhost", "0.0.0.0", "::") and not _is_local(host, nets):
            add(("metrics", "listen"), f"{host} is not an address of this host")
    return problems


def _check_static(config: WatcherConfig, nets: list[LocalNet], add: Callable[[Loc, str], None]) -> None:
    for i, entry in enumerate(config.replicas.static):
        for family in ("ipv4", "ipv6"):
            addr = getattr(entry, family)
            if addr is not None and net_for(nets, addr) is None:
                subnets = ", ".join(str(n.network) for n in nets if n.network.version == addr.version)
                add(
                    ("replicas", "static", i, family),
                    f"next-hop {addr} is not on a connected subnet of this host ({subnets or 'none'})",
                )


def _is_local(host: str, nets: list[LocalNet]) -> bool:
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    return addr.is_loopback or any(n.address == addr for n in nets)
