"""ARP/NDP probes against real neighbours in lab namespaces, and the failure-threshold logic."""

from __future__ import annotations

import ipaddress
import json
import sys

import pytest

from watcher._types import NextHop
from watcher.daemon.config import HealthConfig
from watcher.daemon.health import HealthTracker
from watcher.lab import Lab

PROBE = """
import asyncio, ipaddress, json, sys
from watcher.daemon._local import local_networks
from watcher.daemon.health import probe_address

async def main():
    nets = await local_networks()
    addrs = [ipaddress.ip_address(a) for a in sys.argv[1:]]
    results = await asyncio.gather(*(probe_address(nets, a, 0.5) for a in addrs))
    print(json.dumps(dict(zip(sys.argv[1:], results))))

asyncio.run(main())
"""


@pytest.mark.netns
def test_arp_and_ndp_probes_see_live_neighbours_only(lab: Lab) -> None:
    lab.add_switch("lan")
    a, b = lab.add_host("a"), lab.add_host("b")
    lab.connect(a, "lan", ["192.0.2.1/24", "2001:db8:1::1/64"])
    lab.connect(b, "lan", ["192.0.2.2/24", "2001:db8:1::2/64"])
    targets = ["192.0.2.2", "2001:db8:1::2", "192.0.2.99", "2001:db8:1::99", "203.0.113.5"]
    out = json.loads(a.run([sys.executable, "-c", PROBE, *targets]).stdout)
    # Live neighbour answers; absent address and off-subnet address do not.
    assert out == {
        "192.0.2.2": True,
        "2001:db8:1::2": True,
        "192.0.2.99": False,
        "2001:db8:1::99": False,
        "203.0.113.5": False,
    }
    # The neighbour goes away: the very next probe says so (no 30 s REACHABLE cache).
    b.ip("link", "set", "eth0", "down")
    out = json.loads(a.run([sys.executable, "-c", PROBE, "192.0.2.2", "2001:db8:1::2"]).stdout)
    assert out == {"192.0.2.2": False, "2001:db8:1::2": False}


async def test_tracker_needs_consecutive_failures() -> None:
    tracker = HealthTracker(HealthConfig(interval=1, timeout=0.1, failures=3))
    hop = NextHop("r1", ipaddress.IPv4Address("192.0.2.50"), None)
    # No connected networks: every probe fails without touching the network.
    results = [await tracker.probe({"r1": hop}, []) for _ in range(4)]
    assert results == [{"r1": True}, {"r1": True}, {"r1": False}, {"r1": False}]
    # A replica that disappears from the probe set is forgotten.
    assert await tracker.probe({}, []) == {}
