"""Fixtures for the VIP tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from vip_lab import CLIENT4, CLIENT6, VrrpLab, host_ip4

from watcher.lab import Lab


@pytest.fixture
def vrrp_lab(lab: Lab, tmp_path: Path) -> VrrpLab:
    lab.add_switch("lan")
    hosts = []
    for i in (1, 2, 3):
        h = lab.add_host(f"h{i}")
        lab.connect(h, "lan", [f"{host_ip4(i)}/24", f"2001:db8:1::{10 + i:x}/64"])
        hosts.append(h)
    client = lab.add_host("client")
    lab.connect(client, "lan", [f"{CLIENT4}/24", f"{CLIENT6}/64"])
    return VrrpLab(lab, hosts, client, tmp_path)
