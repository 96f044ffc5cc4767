"""`mesh-watcher demo`: the whole system, live, in network namespaces on this machine.

The embedded control plane runs on the router, three replica agents register with a node token,
the watcher (router mode, subscribed to the event stream) points the router's Mesh routes at the
active replica, and a client pings a host on the Mesh side throughout. The demo then promotes a
replica by hand and kills the active agent, showing how fast outbound traffic follows each time
and how many packets were lost. Every namespace and process it starts is removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

METRICS = "192.0.2.1:9477"
PING_INTERVAL = 0.02


def _say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def _info(text: str) -> None:
    print(f"   {text}", flush=True)


def _wait(predicate: Callable[[], object], what: str, timeout: float = 15.0, interval: float = 0.05) -> None:
    """Wait until `predicate()` is truthy, polling every `interval` (>= 50 ms for the API: the
    control plane keeps its default per-token rate limit here). An error counts as "not there
    yet" (connection refused, empty output, ...), except a demo process having died."""
    from .lab.stack import ProcessExited, wait_until

    def check() -> object:
        try:
            return predicate()
        except ProcessExited:
            raise
        except Exception:
            return None

    try:
        wait_until(check, timeout, what, interval)
    except TimeoutError:
        raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}") from None


class _Pinger:
    """A continuous ping from the client, read back as sent/received counts."""

    def __init__(self, host: Any, dst: str) -> None:
        argv = ["ping", "-n", "-q", "-i", str(PING_INTERVAL), "-W", "1", dst]
        if ":" in dst:
            argv.insert(1, "-6")
        self.proc = host.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def stop(self) -> tuple[int, int]:
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=10)
        for line in out.splitlines():
            if "packets transmitted" in line:
                parts = line.split(",")
                return int(parts[0].split()[0]), int(parts[1].split()[0])
        return 0, 0


def _router_nexthop(router: Any) -> str:
    out: str = router.run(["ip", "-4", "nexthop", "show"]).stdout.strip()
    return out.split(" via ")[1].split(maxsplit=1)[0] if " via " in out else "(none)"


def _replica_table(api: Any, node_id: str) -> str:
    rows = [("replica", "status", "mesh ipv4", "lan addresses", "device")]
    for rep in api.connections(node_id):
        rows.append(
            (
                rep["id"][:8],
                rep["ha_status"],
                str(rep.get("mesh_ipv4", "")),
                ",".join(rep.get("lan_addresses", [])[:2]),
                str(rep.get("device_name", "")),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("   " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def _failover_phase(mesh: Any, title: str, act: Callable[[], None]) -> None:
    """Run `act` under continuous pings; report when the router followed and what was lost."""
    from .lab import MESH_HOST4, MESH_HOST6

    _say(title)
    pingers = [_Pinger(mesh.client, MESH_HOST4), _Pinger(mesh.client, MESH_HOST6)]
    time.sleep(0.5)
    before = _router_nexthop(mesh.router)
    start = time.monotonic()
    act()
    # Polls `ip`, not the API: a fine interval keeps the reported time precise.
    _wait(lambda: _router_nexthop(mesh.router) != before, "the router to follow", interval=0.01)
    took = time.monotonic() - start
    after = _router_nexthop(mesh.router)
    _info(f"router's Mesh routes moved {before} -> {after} {took * 1000:.0f} ms after the trigger")
    time.sleep(1.0)
    for name, pinger in zip(("IPv4", "IPv6"), pingers, strict=True):
        sent, received = pinger.stop()
        lost = sent - received
        outage = lost * PING_INTERVAL * 1000
        every = f"{name} ping every {PING_INTERVAL * 1000:.0f} ms"
        _info(f"{every}: {sent} sent, {lost} lost (~{outage:.0f} ms of outage)")


@contextlib.contextmanager
def _running_demo(replicas: int) -> Iterator[tuple[Any, Any, str]]:
    from .lab import Lab, build_mesh_lab
    from .lab.stack import MeshStack

    with Lab() as lab, tempfile.TemporaryDirectory(prefix="mesh-watcher-demo-") as tmp:
        _say(
            f"Building the lab: client, router, {replicas} replica hosts and a Mesh-side host"
            " (network namespaces)"
        )
        mesh = build_mesh_lab(lab, replicas=replicas)
        mesh.router.sysctl("net.ipv4.nexthop_compat_mode", 0)
        _info(f"namespaces: {', '.join(h.netns for h in lab.hosts.values())}")

        # The plane keeps Cloudflare's default rate limit: the demo polls it gently.
        stack = MeshStack(
            mesh, Path(tmp), detection_timeout=1.0, heartbeat_interval=0.2, rate_limit=None,
            cp_args=["--colo-name", "LAB1"], metrics=METRICS,
        )  # fmt: skip
        _say(f"Starting the embedded control plane in the router namespace: {stack.api_url}")
        stack.start_cp()
        # The API client's sockets live in the router namespace, where the API is.
        api = stack.cp.api()
        try:
            node = api.create_node("branch-office", ha=True)
            stack.account, stack.node = str(node["account_tag"]), str(node["id"])
            api.create_route("100.96.0.0/12", node["id"], comment="Mesh IPs")
            _info(f"node {node['name']} ({node['id']}), HA, status {node['status']}")
            (stack.tmp / "node.token").write_text(api.node_token(node["id"]))

            _say(f"Starting {replicas} replica agents (what `warp-cli connector new TOKEN` does, simulated)")
            for i in range(1, replicas + 1):
                stack.start_agent(i)
                time.sleep(0.3)  # so replica1 is first, and so active
            _wait(
                lambda: sum(r["ha_status"] != "offline" for r in api.connections(node["id"])) == replicas,
                "all replicas to connect",
                interval=0.2,
            )
            print(_replica_table(api, node["id"]))
            yield stack, api, node["id"]
        finally:
            api.close()


def run_demo(args: argparse.Namespace) -> int:
    from .lab import MESH_HOST4, MESH_HOST6, MESH_RANGE4, MESH_RANGE6

    with _running_demo(args.replicas) as (stack, api, node_id):
        mesh = stack.mesh
        _say("Starting the watcher on the router: router mode, subscribed to the node's event stream")
        config = stack.router_config(
            [MESH_RANGE4, MESH_RANGE6],
            # The demo's watcher uses the admin token: no token of its own to make.
            control_plane={"token_file": str(stack.cp.state_dir / "admin.token"), "poll_interval": 2.0,
                           "subscribe": "sse"},
            replicas={"use_reported_lan_addresses": True},
        )  # fmt: skip
        del config["node"]["account_id"]  # the only account the token sees
        cfg = stack.watcher.write_config(config)
        print("   " + cfg.read_text().replace("\n", "\n   ").rstrip())
        stack.watcher.start()
        _wait(
            lambda: stack.watcher.alive() and _router_nexthop(mesh.router) == "192.0.2.11",
            "the watcher's first reconcile",
        )
        _info(
            "router: "
            + mesh.router.run(["ip", "route", "show", "proto", "250"])
            .stdout.strip()
            .replace("\n", "\n           ")
        )
        _info(
            "router: "
            + mesh.router.run(["ip", "nexthop", "show"]).stdout.strip().replace("\n", "\n           ")
        )
        assert mesh.client.ping(MESH_HOST4) and mesh.client.ping(MESH_HOST6)
        _info(
            f"client -> {MESH_HOST4} and {MESH_HOST6} flow through replica1 "
            f"({mesh.forwarded_packets(1)} packets forwarded by it)"
        )

        def manual() -> None:
            reps = api.connections(node_id)
            target = next(r for r in reps if r.get("device_name") == "replica2")
            api.failover(node_id, target["id"])

        _failover_phase(mesh, "Manual failover: PUT …/failover {client_id: replica2}", manual)
        print(_replica_table(api, node_id))

        def crash() -> None:
            stack.agents[2].send(signal.SIGKILL)
            # The agent's namespace stays; its forwarding sysctl stays on as a crashed host's
            # would not forward: close it by hand, as the host going down would.
            mesh.set_replica_forwarding(2, False)

        _failover_phase(mesh, "Automatic failover: kill -9 the active replica's agent (replica2)", crash)
        print(_replica_table(api, node_id))

        _say("replica2 comes back: it stays passive (promotion is non-preemptive)")
        stack.agents[2].wait(10)
        stack.start_agent(2)
        _wait(
            lambda: any(
                r.get("device_name") == "replica2" and r["ha_status"] == "passive"
                for r in api.connections(node_id)
            ),
            "replica2 to reconnect",
            interval=0.2,
        )
        print(_replica_table(api, node_id))
        with contextlib.suppress(Exception):
            status = stack.watcher.status_command().stdout
            _say("mesh-watcher status")
            print("   " + status.strip().replace("\n", "\n   "))
        if args.hold:
            _say(f"Holding for {args.hold:.0f}s (namespaces {mesh.router.netns[:-6]}*); Ctrl-C ends it")
            with contextlib.suppress(KeyboardInterrupt):
                time.sleep(args.hold)
        _say("Tearing down: every process and namespace of the demo")
    print("   done: nothing left behind", flush=True)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="live demo in network namespaces (needs root)")
    p.add_argument("--replicas", type=int, default=3, choices=range(2, 6), metavar="N")
    p.add_argument("--hold", type=float, default=0.0, help="keep the lab up this many seconds at the end")
    p.set_defaults(func=lambda a: _guarded(run_demo, a))


def _guarded(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print(
            "mesh-watcher demo: needs root (network namespaces); run contrib/demo.sh with sudo",
            file=sys.stderr,
        )
        return 1
    try:
        return func(args)
    except RuntimeError as exc:
        print(f"\nmesh-watcher demo: {exc}", file=sys.stderr)
        return 1
