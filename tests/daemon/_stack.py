"""The whole system in the mesh lab: control plane in the router namespace, agents on the replicas,
and the watcher daemon (`python -m watcher run`) in the router namespace. Real processes only."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from watcher.lab import MESH_HOST4, MESH_HOST6, MeshLab, replica_lan4

PY = sys.executable
# Fixed ports are safe here: they live in the lab's fresh router namespace, not on the host.
CP_PORT = 8787
METRICS = "127.0.0.1:9477"
API = f"http://192.0.2.1:{CP_PORT}/client/v4"
ADMIN = "admin-" + "x" * 32
HEALTH = "{probe: true, interval: 0.5, timeout: 0.4, failures: 2}"
# Makes replica i's LAN address unresolvable (no answer to ARP/NDP address resolution) while it
# stays up: only broadcast ARP requests and multicast Neighbor Solicitations are dropped, so the
# router's unicast re-validation of a neighbour it already knows still succeeds and the agent's
# heartbeats keep flowing. The watcher's health probes are exactly such broadcasts/multicasts.
_MUTE_RESOLUTION = """
table netdev mwmute {
  chain lan {
    type filter hook ingress device "eth0" priority 0;
    ether daddr ff:ff:ff:ff:ff:ff arp operation request drop
    ip6 daddr ff02::1:ff00:0/104 icmpv6 type nd-neighbor-solicit drop
  }
}
"""


def wait(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Stack:
    def __init__(self, mesh: MeshLab, tmp: Path) -> None:
        self.mesh = mesh
        self.router = mesh.router
        self.tmp = tmp
        self.cp: subprocess.Popen[bytes] | None = None
        self.watcher: subprocess.Popen[bytes] | None = None
        self.agents: dict[int, subprocess.Popen[bytes]] = {}
        self.account = ""
        self.node = ""
        (tmp / "admin.token").write_text(ADMIN)
        self.watcher_cwd = tmp / "watcher-cwd"  # stays empty: the watcher keeps no files
        self.notify_path = str(tmp / "notify.sock")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.notify.setblocking(False)

    # control plane ------------------------------------------------------------------------
    def start_cp(self) -> None:
        log = open(self.tmp / "cp.log", "ab")  # noqa: SIM115 - the process owns it
        self.cp = self.router.popen(
            [PY, "-m", "watcher", "control-plane", "--listen", f"192.0.2.1:{CP_PORT}",
             "--state-dir", str(self.tmp / "cp"), "--admin-token-file", str(self.tmp / "admin.token"),
             "--detection-timeout", "1.5", "--heartbeat-interval", "0.3"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait(lambda: self.curl("GET", "/readyz", base=f"http://192.0.2.1:{CP_PORT}", raw=True) == "200",
             30, "control plane ready")  # fmt: skip

    def stop_cp(self) -> None:
        assert self.cp is not None
        os.killpg(self.cp.pid, signal.SIGKILL)
        self.cp.wait(10)
        self.cp = None

    def curl(self, method: str, path: str, body: Any = None, *, base: str = API, raw: bool = False,
             token: str = ADMIN) -> Any:  # fmt: skip
        argv = ["curl", "-s", "-m", "5", "-X", method, "-H", f"Authorization: Bearer {token}"]
        if body is not None:
            argv += ["-H", "Content-Type: application/json", "--data", json.dumps(body)]
        if raw:
            argv += ["-o", "/dev/null", "-w", "%{http_code}"]
        proc = self.router.run([*argv, base + path], check=False, timeout=15)
        if raw:
            return proc.stdout.strip()
        doc = json.loads(proc.stdout)
        assert doc.get("success"), f"{method} {path}: {doc}"
        return doc["result"]

    def setup_node(self) -> str:
        self.account = self.curl("GET", "/accounts")[0]["id"]
        self.node = self.curl(
            "POST", f"/accounts/{self.account}/warp_connector", {"name": "office", "ha": True}
        )["id"]
        (self.tmp / "node.token").write_text(
            self.curl("GET", f"/accounts/{self.account}/warp_connector/{self.node}/token")
        )
        tok = self.curl("POST", f"/accounts/{self.account}/tokens", {"name": "watcher", "scope": "write"})
        (self.tmp / "watcher.token").write_text(tok["value"])
        return self.node

    def connections(self) -> list[dict[str, Any]]:
        return list(self.curl("GET", f"/accounts/{self.account}/warp_connector/{self.node}/connections"))

    def active(self) -> tuple[int, str] | None:
        """(replica index, replica id) of the active replica, from the control plane."""
        for c in self.connections():
            if c["ha_status"] == "active":
                for i in range(1, len(self.mesh.replicas) + 1):
                    if any(a.split("/")[0] == replica_lan4(i) for a in c.get("lan_addresses") or ()):
                        return i, c["id"]
        return None

    def replica_id(self, i: int) -> str:
        for c in self.connections():
            if any(a.split("/")[0] == replica_lan4(i) for a in c.get("lan_addresses") or ()):
                return str(c["id"])
        raise AssertionError(f"replica {i} not registered")

    def failover(self, replica_id: str) -> None:
        self.curl(
            "PUT", f"/accounts/{self.account}/warp_connector/{self.node}/failover", {"client_id": replica_id}
        )

    def add_node(self, name: str, *, ha: bool = False) -> str:
        """Another node of the account (setup_node made the watched one); returns its id."""
        body = {"name": name, "ha": ha}
        return str(self.curl("POST", f"/accounts/{self.account}/warp_connector", body)["id"])

    def add_route(self, network: str, node: str) -> str:
        """A teamnet route of `network` to `node`; returns the route id."""
        body = {"network": network, "tunnel_id": node}
        return str(self.curl("POST", f"/accounts/{self.account}/teamnet/routes", body)["id"])

    def delete_route(self, route_id: str) -> None:
        self.curl("DELETE", f"/accounts/{self.account}/teamnet/routes/{route_id}")

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        """Every event of the node so far as (type, data): the stream replayed from generation 0."""
        url = f"{API}/accounts/{self.account}/warp_connector/{self.node}/events"
        headers = ["-H", f"Authorization: Bearer {ADMIN}", "-H", "Last-Event-ID: 0"]
        proc = self.router.run(["curl", "-s", "-N", "-m", "3", *headers, url], check=False, timeout=15)
        out: list[tuple[str, dict[str, Any]]] = []
        for block in proc.stdout.split("\n\n"):
            fields = dict(ln.split(": ", 1) for ln in block.splitlines() if ": " in ln and ln[0] != ":")
            if "event" in fields and "data" in fields:
                out.append((fields["event"], json.loads(fields["data"])))
        return out

    # agents -------------------------------------------------------------------------------
    def start_agent(self, i: int) -> None:
        host = self.mesh.replica(i)
        log = open(self.tmp / f"agent{i}.log", "ab")  # noqa: SIM115
        self.agents[i] = host.popen(
            [PY, "-m", "watcher", "replica", "--token-file", str(self.tmp / "node.token"), "--api", API,
             "--state-dir", str(self.tmp / f"agent{i}"), "--device-name", f"replica{i}", "--dataplane"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def start_agents(self, *indices: int) -> None:
        """Start the agents of these replicas and wait until the control plane sees them online."""
        for i in indices:
            self.start_agent(i)
        wait(lambda: sum(c["ha_status"] != "offline" for c in self.connections()) >= len(indices), 30,
             f"{len(indices)} replicas online")  # fmt: skip

    def mute_resolution(self, i: int, muted: bool = True) -> None:
        """Replica i stops (or resumes) answering ARP requests and Neighbor Solicitations."""
        host = self.mesh.replica(i)
        if muted:
            host.run(["nft", "-f", "-"], input_=_MUTE_RESOLUTION)
        else:
            host.run(["nft", "delete", "table", "netdev", "mwmute"])

    def kill_agent(self, i: int) -> None:
        proc = self.agents.pop(i)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    # watcher ------------------------------------------------------------------------------
    def write_config(self, extra: str = "", *, health: str = HEALTH, learn_routes: bool = False) -> Path:
        """The watcher's config; `health` is the section's flow mapping; `learn_routes` turns
        on routes.learn.teamnet_routes (read every second)."""
        path = self.tmp / "watcher.yaml"
        interval = "  routes_interval: 1.0\n" if learn_routes else ""
        learn = "  learn: {teamnet_routes: true}\n" if learn_routes else ""
        path.write_text(
            f"""mode: router
node: {{account_id: {self.account}, node_id: {self.node}}}
control_plane:
  api: {API}
  token_file: {self.tmp / "watcher.token"}
  poll_interval: 1.0
  timeout: 1.0
  backoff_max: 1.0
{interval}routes:
  prefixes: [100.96.0.0/12, "2001:db8:96::/48"]
{learn}decide: {{hold_down: 0}}
health: {health}
hooks:
  - command: [{PY}, "{self.hook_script()}"]
metrics: {{listen: "{METRICS}"}}
{extra}"""
        )
        return path

    def hook_script(self) -> Path:
        path = self.tmp / "hook.py"
        path.write_text(
            "import os\n"
            f"with open({str(self.tmp / 'hooks.log')!r}, 'a') as f:\n"
            "    e = os.environ\n"
            "    f.write(e['MESH_OLD_REPLICA'] + '>' + e['MESH_NEW_REPLICA'] + ' '\n"
            "            + e['MESH_NEXTHOP_IPV4'] + '\\n')\n"
        )
        return path

    def start_watcher(self) -> None:
        log = open(self.tmp / "watcher.log", "ab")  # noqa: SIM115
        env = {**os.environ, "NOTIFY_SOCKET": self.notify_path}
        self.watcher_cwd.mkdir(exist_ok=True)
        self.watcher = self.router.popen(
            [PY, "-m", "watcher", "-v", "run", "--config", str(self.tmp / "watcher.yaml")],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.watcher_cwd,
        )  # fmt: skip

    def kill_watcher(self) -> None:
        assert self.watcher is not None
        os.killpg(self.watcher.pid, signal.SIGKILL)
        self.watcher.wait(10)
        self.watcher = None

    def notifications(self) -> list[str]:
        out: list[str] = []
        with contextlib.suppress(BlockingIOError):
            while True:
                out += self.notify.recv(4096).decode().split("\n")
        return out

    def status(self) -> dict[str, Any] | None:
        proc = self.router.run([PY, "-m", "watcher", "status", "--json", "--url", f"http://{METRICS}"],
                               check=False, timeout=20)  # fmt: skip
        if not proc.stdout.strip():
            return None
        return dict(json.loads(proc.stdout))

    def metrics_text(self) -> str:
        return self.router.run(["curl", "-s", "-m", "5", f"http://{METRICS}/metrics"], check=False).stdout

    def metric(self, name: str, **labels: str) -> float | None:
        """The first sample `name` whose labels include `labels`; None if absent or no watcher."""
        for family in text_string_to_metric_families(self.metrics_text()):
            for sample in family.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    return float(sample.value)
        return None

    def target(self) -> str | None:
        st = self.status()
        if not st or not st.get("in_sync") or not st.get("target"):
            return None
        return str(st["target"]["replica"])

    def routes(self) -> str:
        v4 = self.router.ip("route", "show", "100.96.0.0/12").stdout
        v6 = self.router.ip("-6", "route", "show", "2001:db8:96::/48").stdout
        return v4 + v6

    def owned_routes(self) -> dict[str, str]:
        """The router's routes with the watcher's protocol (250): prefix -> the rest of the line."""
        out = self.router.ip("route", "show", "proto", "250").stdout
        out += self.router.ip("-6", "route", "show", "proto", "250").stdout
        return {ln.split()[0]: " ".join(ln.split()[1:]) for ln in out.splitlines() if ln.strip()}

    def flows_through(self, i: int) -> None:
        """Client pings to both Mesh addresses are forwarded by replica i, and by no other replica."""
        mesh = self.mesh
        others = [j for j in range(1, len(mesh.replicas) + 1) if j != i]
        before = {j: mesh.forwarded_packets(j) for j in range(1, len(mesh.replicas) + 1)}
        # The new active replica's agent turns forwarding on within a heartbeat: allow a few tries.
        wait(lambda: mesh.client.ping(MESH_HOST4, timeout=1), 10, f"IPv4 ping via replica {i}")
        wait(lambda: mesh.client.ping(MESH_HOST6, timeout=1), 10, f"IPv6 ping via replica {i}")
        mid = {j: mesh.forwarded_packets(j) for j in before}
        assert mid[i] - before[i] >= 4, (before, mid)
        assert mesh.client.ping(MESH_HOST4, count=2, timeout=1) and mesh.client.ping(
            MESH_HOST6, count=2, timeout=1
        )
        after = {j: mesh.forwarded_packets(j) for j in before}
        assert after[i] - mid[i] >= 8, (mid, after)
        assert all(after[j] == mid[j] for j in others), (mid, after)

    def dump_logs(self) -> str:
        """The tail of every process log, for a failed test's output."""
        out = []
        for log in sorted(self.tmp.glob("*.log")):
            out.append(f"--- {log.name}\n" + log.read_text(errors="replace")[-4000:])
        return "\n".join(out)

    def close(self) -> None:
        self.notify.close()
