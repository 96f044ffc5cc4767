"""Fixtures for the routes tests: the standard lab with two replicas, and netlink monitors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from watcher.lab import Lab, MeshLab, build_mesh_lab

from ._helpers import Monitor


@pytest.fixture
def mlab(lab: Lab) -> MeshLab:
    mesh = build_mesh_lab(lab, replicas=2)
    # Keep IPv6 addresses over a link flap, as a router's static config would.
    mesh.router.sysctl("net.ipv6.conf.eth1.keep_addr_on_down", 1)
    return mesh


@pytest.fixture
def monitor(mlab: MeshLab, tmp_path: Path) -> Iterator[Callable[[], Monitor]]:
    made: list[Monitor] = []

    def start() -> Monitor:
        mon = Monitor(mlab.router, tmp_path / f"monitor{len(made)}.txt")
        made.append(mon)
        return mon

    yield start
