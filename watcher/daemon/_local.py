"""This host's connected subnets (read-only netlink dump), for next-hop resolution and probing."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._types import IPAddress, IPNetwork

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LocalNet:
    ifname: str
    ifindex: int
    mac: bytes
    address: IPAddress  # our own address on that subnet (the probe's source)
    network: IPNetwork


def _dump() -> list[LocalNet]:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        links = {
            int(link["index"]): (str(link.get("IFLA_IFNAME")), str(link.get("IFLA_ADDRESS") or ""))
            for link in ipr.get_links()
        }
        out: list[LocalNet] = []
        for msg in ipr.get_addr():
            addr = msg.get("IFA_ADDRESS")
            name, mac = links.get(int(msg["index"]), ("", ""))
            if not addr or not name or name == "lo":
                continue
            iface = ipaddress.ip_interface(f"{addr}/{msg['prefixlen']}")
            if iface.ip.is_link_local or iface.ip.is_loopback:
                continue
            raw_mac = bytes.fromhex(mac.replace(":", "")) if mac else b"\0" * 6
            out.append(LocalNet(name, int(msg["index"]), raw_mac, iface.ip, iface.network))
    return out


async def local_networks() -> list[LocalNet]:
    """Connected subnets of the namespace this process runs in (no link-local, no loopback)."""
    return await asyncio.to_thread(_dump)


def networks(nets: list[LocalNet]) -> tuple[IPNetwork, ...]:
    return tuple(dict.fromkeys(n.network for n in nets))


def net_for(nets: list[LocalNet], addr: IPAddress) -> LocalNet | None:
    best: LocalNet | None = None
    for net in nets:
        inside = net.network.version == addr.version and addr in net.network
        if inside and (best is None or net.network.prefixlen > best.network.prefixlen):
            best = net
    return best


class NetsRefresher:
    """Re-reads the connected subnets in the background, at most every `interval` seconds.

    Not awaited before deciding: the netlink dump (on a thread) took up to 10 ms, on the path
    of every failover. Decisions use the last dump; a fresh one is put on `events` as
    ("nets", [LocalNet]) and decided again, so an added or removed subnet still takes effect.
    """

    def __init__(
        self, events: asyncio.Queue[tuple[str, Any]], clock: Callable[[], float], interval: float = 1.0
    ) -> None:
        self.events, self.clock, self.interval = events, clock, interval
        self.read_at = -1e9
        self.task: asyncio.Task[None] | None = None

    def maybe_refresh(self) -> None:
        if self.clock() - self.read_at < self.interval or (self.task is not None and not self.task.done()):
            return
        self.read_at = self.clock()
        self.task = asyncio.create_task(self._refresh(), name="local-networks")

    async def _refresh(self) -> None:
        try:
            nets = await local_networks()
        except OSError as exc:
            log.debug("re-reading the connected subnets failed: %s", exc)
            return
        await self.events.put(("nets", nets))
