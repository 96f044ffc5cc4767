"""Helpers for the routes tests: targets, prefixes, a netlink monitor, bounded waits."""

from __future__ import annotations

import asyncio
import ipaddress
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from watcher._types import IPNetwork, NextHop, Target
from watcher.lab import Host

NH4, NH6 = 0x6D770004, 0x6D770006
R1 = ("192.0.2.11", "2001:db8:1::b")
R2 = ("192.0.2.12", "2001:db8:1::c")


def target(
    replica: tuple[str, str] | None, prefixes: tuple[IPNetwork, ...] = (), *, stale: bool = False
) -> Target:
    if replica is None:
        return Target(None, "unknown", stale=stale, prefixes=prefixes)
    v4, v6 = (ipaddress.ip_address(a) for a in replica)
    return Target(NextHop(replica[0], v4, v6), "test", stale=stale, prefixes=prefixes)  # type: ignore[arg-type]


def nets4(count: int, base: str = "100.96.0.0") -> tuple[IPNetwork, ...]:
    """`count` /28s carved from the Mesh range (only ever installed inside lab namespaces)."""
    start = int(ipaddress.IPv4Address(base))
    return tuple(ipaddress.IPv4Network((start + (i << 4), 28)) for i in range(count))


def nets6(count: int) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.IPv6Network(f"2001:db8:a:{i:x}::/64") for i in range(count))


def wait_until(pred: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s")


def routes(host: Host, *args: str) -> str:
    return host.ip(*args).stdout


class Monitor:
    """`ip -ts monitor route nexthop` inside a host; lines() is what the kernel announced."""

    def __init__(self, host: Host, path: Path) -> None:
        self.path = path
        self._out = path.open("w")
        self.proc = host.popen(["ip", "-ts", "monitor", "route", "nexthop"], stdout=self._out,
                               stderr=subprocess.STDOUT)  # fmt: skip
        time.sleep(0.3)  # let it subscribe before anything happens

    def stop(self) -> list[str]:
        time.sleep(0.3)  # let the last notifications reach it
        self.proc.kill()
        self.proc.wait(5)
        self._out.close()
        return [line for line in self.path.read_text().splitlines() if line.strip()]


async def eventually(pred: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> float:
    """Poll `pred` without blocking the event loop (the actuator runs on it). Returns the wait."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if pred():
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s")
