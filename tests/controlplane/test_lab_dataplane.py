"""In the netns lab: only the active replica forwards; a failover moves the data plane.

The control plane runs inside the router namespace on the router's LAN address, so the agents in the
replica namespaces reach it as real replicas would. The test reaches the API with curl run inside the
router namespace (the root namespace has no route into the lab, by design).
"""

from __future__ import annotations

import json
import re
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cp_helpers import AgentProc, Agents, ControlPlane, make_cp, wait_for

from watcher.lab import MESH_HOST4, Host, MeshLab, replica_lan4

pytestmark = pytest.mark.netns
DETECTION, HEARTBEAT = 1.0, 0.2


def api(router: Host, cp: ControlPlane, method: str, path: str, body: Any = None) -> Any:
    argv = [
        "curl",
        "-sS",
        "-m",
        "5",
        "-X",
        method,
        "-H",
        f"Authorization: Bearer {cp.admin}",
        cp.base + path.replace("{a}", cp.account),
    ]
    if body is not None:
        argv += ["-H", "content-type: application/json", "-d", json.dumps(body)]
    out = json.loads(router.run(argv).stdout)
    assert out["success"], out
    return out["result"]


def forwarding(host: Host) -> str:
    return host.run(["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.strip()


def test_only_active_replica_forwards(mesh_lab: MeshLab, tmp_path: Path, agents: Agents) -> None:
    router, client = mesh_lab.router, mesh_lab.client
    r1, r2 = mesh_lab.replica(1), mesh_lab.replica(2)
    cp = make_cp(tmp_path, detection=DETECTION, heartbeat=HEARTBEAT)
    cp.host = router
    cp.start(listen="192.0.2.1:0")
    cp.account = api(router, cp, "GET", "/accounts")[0]["id"]
    node = api(router, cp, "POST", "/accounts/{a}/warp_connector", {"name": "lab", "ha": True})
    token = api(router, cp, "GET", f"/accounts/{{a}}/warp_connector/{node['id']}/token")
    a1 = agents.start(cp.base, token, "r1", extra=["--dataplane"], host=r1)
    id1 = a1.wait_registered()

    def statuses() -> dict[str, str]:
        return {
            r["id"]: r["ha_status"]
            for r in api(router, cp, "GET", f"/accounts/{{a}}/warp_connector/{node['id']}/connections")
        }

    wait_for(lambda: statuses().get(id1) == "active", what="r1 active")
    a2 = agents.start(cp.base, token, "r2", extra=["--dataplane"], host=r2)
    id2 = a2.wait_registered()
    wait_for(lambda: statuses() == {id1: "active", id2: "passive"}, what="r2 passive")
    wait_for(lambda: forwarding(r1) == "1" and forwarding(r2) == "0", what="forwarding follows the roles")
    reps = {
        r["id"]: r for r in api(router, cp, "GET", f"/accounts/{{a}}/warp_connector/{node['id']}/connections")
    }
    # LAN addresses were detected from the interfaces; origin is the replica's LAN address
    assert replica_lan4(1) in reps[id1]["lan_addresses"] and "203.0.113.11" in reps[id1]["lan_addresses"]
    assert reps[id2]["conns"][0]["origin_ip"] == replica_lan4(2)

    # the router sends Mesh traffic to the active replica's reported LAN address
    lan1 = next(a for a in reps[id1]["lan_addresses"] if a.startswith("192.0.2."))
    router.ip("route", "replace", "100.96.0.0/12", "via", lan1)
    before1, before2 = mesh_lab.forwarded_packets(1), mesh_lab.forwarded_packets(2)
    assert client.ping(MESH_HOST4, count=3, timeout=1)
    assert mesh_lab.forwarded_packets(1) >= before1 + 3
    assert mesh_lab.forwarded_packets(2) == before2

    # manual failover: r1 stops forwarding, so traffic still sent to it is dropped
    api(router, cp, "PUT", f"/accounts/{{a}}/warp_connector/{node['id']}/failover", {"client_id": id2})
    wait_for(lambda: forwarding(r1) == "0" and forwarding(r2) == "1", timeout=5, what="data plane moved")
    before1 = mesh_lab.forwarded_packets(1)
    assert not client.ping(MESH_HOST4, count=2, timeout=1)
    assert mesh_lab.forwarded_packets(1) == before1
    # once the router follows the promotion, traffic flows through r2 only
    lan2 = next(a for a in reps[id2]["lan_addresses"] if a.startswith("192.0.2."))
    router.ip("route", "replace", "100.96.0.0/12", "via", lan2)
    before1, before2 = mesh_lab.forwarded_packets(1), mesh_lab.forwarded_packets(2)
    assert client.ping(MESH_HOST4, count=3, timeout=1)
    assert mesh_lab.forwarded_packets(2) >= before2 + 3
    assert mesh_lab.forwarded_packets(1) == before1

    # control plane gone: after the detection timeout the active replica stops forwarding too
    lost_at = time.monotonic()
    cp.stop(signal.SIGKILL)
    wait_for(lambda: forwarding(r2) == "0", timeout=DETECTION + 5, what="forwarding off when unreachable")
    # counted from the last answered heartbeat, which came at most about one interval before the kill
    assert time.monotonic() - lost_at >= DETECTION - 2 * HEARTBEAT


def statuses(router: Host, cp: ControlPlane, node_id: str) -> dict[str, str]:
    replicas = api(router, cp, "GET", f"/accounts/{{a}}/warp_connector/{node_id}/connections")
    return {r["id"]: r["ha_status"] for r in replicas}


def _forwarding_log(agent_log: Path) -> list[tuple[datetime, bool]]:
    """(time, on) of every forwarding change an agent logged (all agents log with one clock)."""
    changes = []
    for line in agent_log.read_text().splitlines():
        m = re.match(r"(\S+ \S+) INFO watcher\.agent: forwarding (on|off) ", line)
        if m:
            changes.append((datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f"), m.group(2) == "on"))
    return changes


def _overlap(new_log: Path, old_log: Path, since: datetime) -> float:
    """Seconds both forwarded after `since`: from the new one's 'on' to the old one's 'off'."""
    on = next(t for t, up in _forwarding_log(new_log) if up and t >= since)
    off = next(t for t, up in _forwarding_log(old_log) if not up and t >= since)
    return max(0.0, (off - on).total_seconds())


def test_promotion_moves_forwarding_before_the_next_heartbeat(
    mesh_lab: MeshLab, tmp_path: Path, agents: Agents
) -> None:
    """With a long heartbeat interval, a manual promotion still moves the data plane at once: the
    agents hold the node's event stream open and heartbeat as soon as it reports the promotion. With
    --no-push they learn at their next heartbeat; either way both forward for under one interval."""
    slow_beat = 2.0
    router, r1, r2 = mesh_lab.router, mesh_lab.replica(1), mesh_lab.replica(2)
    cp = make_cp(tmp_path, detection=3 * slow_beat, heartbeat=slow_beat)
    cp.host = router
    cp.start(listen="192.0.2.1:0")
    cp.account = api(router, cp, "GET", "/accounts")[0]["id"]
    node = api(router, cp, "POST", "/accounts/{a}/warp_connector", {"name": "push", "ha": True})
    token = api(router, cp, "GET", f"/accounts/{{a}}/warp_connector/{node['id']}/token")
    failover = f"/accounts/{{a}}/warp_connector/{node['id']}/failover"

    def start(name: str, host: Host, *extra: str) -> AgentProc:
        return agents.start(cp.base, token, name, extra=["--dataplane", *extra], host=host)

    a1 = start("p1", r1)
    id1 = a1.wait_registered()
    wait_for(lambda: forwarding(r1) == "1", timeout=10, what="r1 forwards")
    a2 = start("p2", r2)
    id2 = a2.wait_registered()
    time.sleep(0.5)  # both agents' event streams are open

    since = datetime.now()
    promoted_at = time.monotonic()
    api(router, cp, "PUT", failover, {"client_id": id2})
    wait_for(lambda: forwarding(r2) == "1" and forwarding(r1) == "0", timeout=5, interval=0.01, what="moved")
    took = time.monotonic() - promoted_at
    # a quarter interval: heartbeats alone would make both agents' next beat land that soon 1 time in 16
    assert took < slow_beat / 4, f"forwarding moved after {took:.2f}s: not pushed"
    assert _overlap(a2.log, a1.log, since) < slow_beat / 4

    # without the push: the next heartbeat carries it, still under one interval of overlap. Restart
    # the agents with --no-push one at a time (stopping the active one hands over to r1 at once).
    assert a1.stop(signal.SIGTERM) == 0
    a1 = start("p1", r1, "--no-push")
    assert a1.wait_registered() == id1
    wait_for(lambda: statuses(router, cp, node["id"]).get(id1) == "passive", what="r1 back, passive")
    assert a2.stop(signal.SIGTERM) == 0
    a2 = start("p2", r2, "--no-push")
    assert a2.wait_registered() == id2
    wait_for(lambda: statuses(router, cp, node["id"]) == {id1: "active", id2: "passive"}, what="r2 passive")
    wait_for(lambda: forwarding(r1) == "1" and forwarding(r2) == "0", timeout=3 * slow_beat, what="settled")
    since = datetime.now()
    api(router, cp, "PUT", failover, {"client_id": id2})
    wait_for(lambda: forwarding(r2) == "1" and forwarding(r1) == "0", timeout=3 * slow_beat, what="moved")
    assert _overlap(a2.log, a1.log, since) < slow_beat + 0.5
    print(f"\nforwarding moved {took * 1000:.0f} ms after PUT failover (heartbeat every {slow_beat}s)")
