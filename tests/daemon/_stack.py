"""The whole system in the mesh lab for the daemon tests: `watcher.lab.stack.MeshStack` plus what
only these tests ask (the config they share, a hook that logs, assertions on traffic)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from watcher.lab import MESH_HOST4, MESH_HOST6, MeshLab, wait_until
from watcher.lab.stack import PY, MeshStack

API = "http://192.0.2.1:8787/client/v4"
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
wait = wait_until

__all__ = ["API", "PY", "Stack", "wait"]


class Stack(MeshStack):
    def __init__(self, mesh: MeshLab, tmp: Path, **kwargs: Any) -> None:
        super().__init__(mesh, tmp, notify=True, **kwargs)
        assert self.api_url == API

    @property
    def watcher_cwd(self) -> Path:
        assert self.watcher.cwd is not None
        return self.watcher.cwd

    def mute_resolution(self, i: int, muted: bool = True) -> None:
        """Replica i stops (or resumes) answering ARP requests and Neighbor Solicitations."""
        host = self.mesh.replica(i)
        if muted:
            host.run(["nft", "-f", "-"], input_=_MUTE_RESOLUTION)
        else:
            host.run(["nft", "delete", "table", "netdev", "mwmute"])

    # watcher ------------------------------------------------------------------------------
    def write_config(self, extra: str = "", *, health: str = HEALTH, learn_routes: bool = False) -> Path:
        """The watcher's config; `health` is the section's flow mapping; `learn_routes` turns
        on routes.learn.teamnet_routes (read every second)."""
        interval = "  routes_interval: 1.0\n" if learn_routes else ""
        learn = "  learn: {teamnet_routes: true}\n" if learn_routes else ""
        return self.watcher.write_config(
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
metrics: {{listen: "{self.watcher.metrics_url.removeprefix("http://")}"}}
{extra}"""
        )

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
        self.watcher.start()

    def kill_watcher(self) -> None:
        self.watcher.kill()

    def notifications(self) -> list[str]:
        return self.watcher.notifications()

    def status(self) -> dict[str, Any] | None:
        """`mesh-watcher status --json` (the command, not just the endpoint)."""
        out = self.watcher.status_command(as_json=True).stdout
        return dict(json.loads(out)) if out.strip() else None

    def target(self) -> str | None:
        st = self.status()
        if not st or not st.get("in_sync") or not st.get("target"):
            return None
        return str(st["target"]["replica"])

    def metric(self, name: str, **labels: str) -> float | None:
        return self.watcher.metric(name, **labels)

    def metrics_text(self) -> str:
        return self.watcher.metrics_text()

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
