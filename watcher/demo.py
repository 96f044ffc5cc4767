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
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

PORT = 8787
API = f"http://192.0.2.1:{PORT}/client/v4"
METRICS = "192.0.2.1:9477"
PING_INTERVAL = 0.02


def _say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def _info(text: str) -> None:
    print(f"   {text}", flush=True)


def _wait(predicate: Callable[[], object], what: str, timeout: float = 15.0) -> float:
    """Wait until `predicate()` is truthy; returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if predicate():
                return time.monotonic() - start
        except _Fatal:
            raise
        except Exception:  # not there yet (connection refused, empty output, ...)
            pass
        time.sleep(0.01)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


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


def _log(path: Path) -> int:
    """An append-only log file descriptor for a child process (the child keeps its own copy)."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)


def _alive(proc: subprocess.Popen[bytes], log: Path) -> bool:
    if proc.poll() is not None:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise _Fatal(f"a demo process exited with status {proc.returncode}; its log ends:\n{tail}")
    return True


class _Fatal(RuntimeError):
    pass


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return json.load(resp)


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
    _wait(lambda: _router_nexthop(mesh.router) != before, "the router to follow")
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
def _running_demo(replicas: int) -> Iterator[tuple[Any, Any, str, Path, list[Any]]]:
    from .cfapi import MeshApi
    from .lab import Lab, build_mesh_lab

    with Lab() as lab, tempfile.TemporaryDirectory(prefix="mesh-watcher-demo-") as tmp:
        state = Path(tmp)
        _say(
            f"Building the lab: client, router, {replicas} replica hosts and a Mesh-side host"
            " (network namespaces)"
        )
        mesh = build_mesh_lab(lab, replicas=replicas)
        mesh.router.sysctl("net.ipv4.nexthop_compat_mode", 0)
        _info(f"namespaces: {', '.join(h.netns for h in lab.hosts.values())}")

        _say(f"Starting the embedded control plane in the router namespace: {API}")
        py = [sys.executable, "-m", "watcher"]
        cp = mesh.router.popen(
            [
                *py,
                "control-plane",
                "--listen",
                f"192.0.2.1:{PORT}",
                "--state-dir",
                str(state / "cp"),
                "--detection-timeout",
                "1.0",
                "--heartbeat-interval",
                "0.2",
                "--colo-name",
                "LAB1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=_log(state / "cp.log"),
        )
        token_file = state / "cp" / "admin.token"
        _wait(
            lambda: _alive(cp, state / "cp.log")
            and token_file.exists()
            and mesh.router.call(_get, f"http://192.0.2.1:{PORT}/readyz"),
            "the control plane",
        )
        # The API client runs inside the router namespace, like every other part of the demo.
        api = _InNetns(mesh.router, mesh.router.call(MeshApi, API, token_file.read_text().strip()))
        node = api.create_node("branch-office", ha=True)
        api.create_route("100.96.0.0/12", node["id"], comment="Mesh IPs")
        _info(f"node {node['name']} ({node['id']}), HA, status {node['status']}")
        node_token = api.node_token(node["id"])

        _say(f"Starting {replicas} replica agents (what `warp-cli connector new TOKEN` does, simulated)")
        agents: list[Any] = []
        for i in range(1, replicas + 1):
            agents.append(_start_agent(mesh, i, node_token, state))
            time.sleep(0.3)  # so replica1 is first, and so active
        _wait(
            lambda: sum(r["ha_status"] != "offline" for r in api.connections(node["id"])) == replicas,
            "all replicas to connect",
        )
        print(_replica_table(api, node["id"]))
        yield mesh, api, node["id"], state, agents


class _InNetns:
    """The blocking API client, used from a thread inside the router namespace (where the API is)."""

    def __init__(self, host: Any, api: Any) -> None:
        self.host, self.api = host, api

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.api, name)
        return lambda *args, **kwargs: self.host.call(method, *args, **kwargs)


def _start_agent(mesh: Any, i: int, token: str, state: Path) -> Any:
    host = mesh.replica(i)
    return host.popen(
        [
            sys.executable,
            "-m",
            "watcher",
            "replica",
            "--api",
            API,
            "--token",
            token,
            "--state-dir",
            str(state / f"replica{i}"),
            "--device-name",
            f"replica{i}",
            "--dataplane",
            "--lan-address",
            f"192.0.2.{10 + i}",
            "--lan-address",
            f"2001:db8:1::{10 + i:x}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=_log(state / f"replica{i}.log"),
    )


def _watcher_config(node_id: str, token_file: Path) -> str:
    return f"""\
mode: router
node: {{node_id: {node_id}}}
control_plane:
  api: {API}
  token_file: {token_file}
  poll_interval: 2.0
  subscribe: sse
replicas: {{use_reported_lan_addresses: true}}
routes:
  prefixes: [100.96.0.0/12, 2001:db8:96::/48]
decide: {{hold_down: 0}}
metrics: {{listen: "{METRICS}"}}
"""


def run_demo(args: argparse.Namespace) -> int:
    from .lab import MESH_HOST4, MESH_HOST6

    with _running_demo(args.replicas) as (mesh, api, node_id, state, agents):
        _say("Starting the watcher on the router: router mode, subscribed to the node's event stream")
        cfg = state / "watcher.yaml"
        cfg.write_text(_watcher_config(node_id, state / "cp" / "admin.token"))
        print("   " + cfg.read_text().replace("\n", "\n   ").rstrip())
        watcher = mesh.router.popen(
            [sys.executable, "-m", "watcher", "run", "--config", str(cfg)],
            stdout=subprocess.DEVNULL,
            stderr=_log(state / "watcher.log"),
        )
        _wait(
            lambda: _alive(watcher, state / "watcher.log") and _router_nexthop(mesh.router) == "192.0.2.11",
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
            agents[1].send_signal(signal.SIGKILL)
            # The agent's namespace stays; its forwarding sysctl stays on as a crashed host's
            # would not forward: close it by hand, as the host going down would.
            mesh.set_replica_forwarding(2, False)

        _failover_phase(mesh, "Automatic failover: kill -9 the active replica's agent (replica2)", crash)
        print(_replica_table(api, node_id))

        _say("replica2 comes back: it stays passive (promotion is non-preemptive)")
        agents[1] = _start_agent(mesh, 2, api.node_token(node_id), state)
        _wait(
            lambda: any(
                r.get("device_name") == "replica2" and r["ha_status"] == "passive"
                for r in api.connections(node_id)
            ),
            "replica2 to reconnect",
        )
        print(_replica_table(api, node_id))
        with contextlib.suppress(Exception):
            status = mesh.router.run(
                [sys.executable, "-m", "watcher", "status", "--url", f"http://{METRICS}"], check=False
            ).stdout
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
