"""Router mode end to end in the mesh lab, every part a real process:

control plane (router ns, 192.0.2.1) <- agents (replica ns, --dataplane) ; watcher daemon (router ns)
client -> router -> [active replica] -> meshhost (100.96.0.100 / 2001:db8:96::100)
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from watcher.lab import MeshLab, replica_lan4, replica_lan6

from ._stack import PY, Stack, wait

pytestmark = [pytest.mark.netns, pytest.mark.timeout(240)]


def test_router_mode_end_to_end(mesh_lab: MeshLab, tmp_path: Path) -> None:
    s = Stack(mesh_lab, tmp_path)
    try:
        _scenario(s, mesh_lab, tmp_path)
    except BaseException:
        print(s.dump_logs())
        raise
    finally:
        s.close()


def _scenario(s: Stack, mesh: MeshLab, tmp: Path) -> None:
    s.start_cp()
    s.setup_node()
    for i in (1, 2, 3):
        s.start_agent(i)
    wait(lambda: sum(c["ha_status"] != "offline" for c in s.connections()) == 3, 30, "3 replicas online")
    s.write_config()
    s.start_watcher()

    # 1. The watcher follows the first active replica; READY=1 once applied.
    first, first_id = wait(s.active, 20, "an active replica")
    wait(lambda: s.target() == first_id, 30, "watcher targets the active replica")
    assert any(n == "READY=1" for n in wait(s.notifications, 10, "sd_notify READY"))
    routes = s.routes()
    assert f"via {replica_lan4(first)} dev eth1" in routes and f"via {replica_lan6(first)} dev eth1" in routes
    s.flows_through(first)

    proc = mesh.router.run([PY, "-m", "watcher", "status", "--url", "http://127.0.0.1:9477"], check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"target:        {first_id} via {replica_lan4(first)}/{replica_lan6(first)}" in proc.stdout
    assert "stale:         no" in proc.stdout and "NOT IN SYNC" not in proc.stdout

    # 2. Manual promotion through the API.
    second = next(j for j in (1, 2, 3) if j != first)
    second_id = s.replica_id(second)
    s.failover(second_id)
    wait(lambda: s.target() == second_id, 15, "watcher follows the manual failover")
    s.flows_through(second)

    # 3. kill -9 the active agent: the control plane promotes another, the watcher follows.
    s.kill_agent(second)
    third, third_id = wait(lambda: (a := s.active()) and a[0] != second and a, 20, "automatic promotion")
    wait(lambda: s.target() == third_id, 15, "watcher follows the automatic failover")
    s.flows_through(third)
    assert (s.metric("mesh_watcher_failovers_total") or 0) >= 1

    # 4. Control plane gone: routes stay (fail-static), the decision is marked stale.
    before = s.routes()
    s.stop_cp()
    wait(lambda: s.metric("mesh_watcher_decision_stale") == 1, 20, "stale decision")
    st = s.status()
    assert st is not None and st["stale"] and st["target"]["replica"] == third_id
    assert s.metric("mesh_watcher_control_plane_up") == 0
    assert s.routes() == before
    # ... and back: the watcher resumes.
    s.start_cp()
    wait(lambda: s.metric("mesh_watcher_decision_stale") == 0, 30, "fresh decision after restart")
    active = wait(s.active, 20, "an active replica after restart")
    wait(lambda: s.target() == active[1], 15, "watcher targets the active replica again")
    s.flows_through(active[0])

    # 5. Watcher SIGKILL + restart: the new process adopts the kernel state, changing nothing.
    mon_log = open(tmp / "monitor.txt", "wb")  # noqa: SIM115
    monitor = mesh.router.popen(
        ["ip", "monitor", "route", "nexthop"], stdout=mon_log, stderr=subprocess.STDOUT
    )
    time.sleep(0.5)
    before = s.routes()
    assert s.watcher is not None
    text = mesh.router.run(["curl", "-s", "-m", "5", "http://127.0.0.1:9477/metrics"]).stdout
    print("\n".join(ln for ln in text.splitlines() if ln.startswith("mesh_watcher_convergence_seconds_")))
    os.killpg(s.watcher.pid, signal.SIGKILL)
    s.watcher.wait(10)
    s.start_watcher()
    wait(lambda: s.target() == active[1], 30, "restarted watcher in sync")
    time.sleep(2.0)  # a late rewrite would show up here
    os.killpg(monitor.pid, signal.SIGTERM)
    monitor.wait(10)
    mon_log.close()
    assert (tmp / "monitor.txt").read_text().strip() == "", "restart changed the kernel"
    assert s.routes() == before

    # 6. SIGHUP with an unchanged target changes nothing; a new prefix is added without touching the rest.
    assert s.watcher is not None
    s.notifications()
    mon_log = open(tmp / "monitor2.txt", "wb")  # noqa: SIM115
    monitor = mesh.router.popen(
        ["ip", "monitor", "route", "nexthop"], stdout=mon_log, stderr=subprocess.STDOUT
    )
    time.sleep(0.5)
    s.write_config("")  # same content (comments aside): nothing to do
    os.kill(s.watcher.pid, signal.SIGHUP)
    got = wait(lambda: (n := s.notifications()) and "READY=1" in n and n, 15, "READY after reload")
    assert any(x == "RELOADING=1" for x in got), got
    time.sleep(1.0)
    assert (tmp / "monitor2.txt").read_text().strip() == "", "a no-op reload changed the kernel"
    s.write_config().write_text(
        s.write_config().read_text().replace('"2001:db8:96::/48"]', '"2001:db8:96::/48", "2001:db8:97::/48"]')
    )
    os.kill(s.watcher.pid, signal.SIGHUP)
    wait(lambda: "2001:db8:97::/48" in mesh.router.ip("-6", "route", "show", "2001:db8:97::/48").stdout,
         15, "the new prefix after reload")  # fmt: skip
    time.sleep(1.0)
    os.killpg(monitor.pid, signal.SIGTERM)
    monitor.wait(10)
    mon_log.close()
    changes = [ln for ln in (tmp / "monitor2.txt").read_text().splitlines() if ln.strip()]
    assert changes and all("2001:db8:97::/48" in ln for ln in changes), changes
    assert s.routes() == before

    # 7. SIGTERM: STOPPING=1, exit 0, routes stay (withdraw_on_stop is off).
    s.notifications()
    os.kill(s.watcher.pid, signal.SIGTERM)
    assert s.watcher.wait(20) == 0
    assert "STOPPING=1" in s.notifications()
    assert s.routes() == before

    # Hooks ran for each transition, in order.
    lines = (tmp / "hooks.log").read_text().splitlines()
    assert lines[0] == f">{first_id} {replica_lan4(first)}"
    assert f"{first_id}>{second_id} {replica_lan4(second)}" in lines
    assert f"{second_id}>{third_id} {replica_lan4(third)}" in lines


def _vip_config(s: Stack, i: int, replica_id: str) -> Path:
    path = s.tmp / f"vip{i}.yaml"
    path.write_text(
        f"""mode: vip
node: {{account_id: {s.account}, node_id: {s.node}}}
control_plane:
  api: "http://192.0.2.1:8787/client/v4"
  token_file: {s.tmp / "watcher.token"}
  poll_interval: 1.0
vip:
  interface: eth0
  vrid: 42
  local_replica_id: {replica_id}
  addresses: [192.0.2.254/24]
  advert_interval: 0.1
health: {{probe: false}}
hooks:
  - command: [sh, -c, 'echo "$MESH_STATE $MESH_NEW_REPLICA" >> {s.tmp / f"vip{i}.hooks"}']
metrics: {{listen: "127.0.0.1:9477"}}
"""
    )
    return path


def _holds_vip(mesh: MeshLab, i: int) -> bool:
    return "192.0.2.254/24" in mesh.replica(i).ip("-4", "addr", "show", "dev", "eth0").stdout


def test_vip_mode_follows_the_active_replica(mesh_lab: MeshLab, tmp_path: Path) -> None:
    s = Stack(mesh_lab, tmp_path)
    try:
        s.start_cp()
        s.setup_node()
        for i in (1, 2):
            s.start_agent(i)
        wait(lambda: sum(c["ha_status"] != "offline" for c in s.connections()) == 2, 30, "2 replicas online")
        ids = {i: s.replica_id(i) for i in (1, 2)}
        for i in (1, 2):
            log = open(tmp_path / f"vipwatcher{i}.log", "ab")  # noqa: SIM115
            argv = [PY, "-m", "watcher", "run", "--config", str(_vip_config(s, i, ids[i]))]
            mesh_lab.replica(i).popen(argv, stdout=log, stderr=subprocess.STDOUT)
        active, _ = wait(s.active, 20, "an active replica")
        other = 3 - active
        wait(
            lambda: _holds_vip(mesh_lab, active) and not _holds_vip(mesh_lab, other),
            30,
            "VIP on the active host",
        )
        s.failover(ids[other])
        wait(lambda: _holds_vip(mesh_lab, other) and not _holds_vip(mesh_lab, active), 30, "VIP moved")
        metrics = (
            mesh_lab.replica(other).run(["curl", "-s", "-m", "5", "http://127.0.0.1:9477/metrics"]).stdout
        )
        assert 'mesh_watcher_vrrp_state{family="ipv4",state="master"} 1.0' in metrics
        assert "mesh_watcher_active_replica_info{" in metrics and ids[other] in metrics
        hooks = wait(lambda: (p := tmp_path / f"vip{other}.hooks").exists() and p.read_text(), 10, "hooks")
        assert "master" in hooks
    except BaseException:
        print(s.dump_logs())
        raise
    finally:
        s.close()
