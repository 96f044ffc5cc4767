"""The whole system in a mesh lab, for the tests, the demo and the bench.

    stack = MeshStack(build_mesh_lab(lab), tmp)
    stack.start_cp(); stack.setup_node(); stack.start_agents(1, 2, 3)
    stack.watcher.write_config(stack.router_config(prefixes)); stack.watcher.start()

Control plane in the router namespace on 192.0.2.1 (the replicas' LAN side), one agent per
replica host, the watcher daemon in the router namespace. Every process logs to `tmp/<name>.log`;
the lab kills whatever is left at teardown. The launchers are public on their own too:
ControlPlaneProcess / AgentProcess / WatcherProcess (loopback or inside any lab Host).
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from ._cp import API_PREFIX, AgentProcess, ApiCallFailed, ControlPlaneProcess
from ._proc import PY, InHost, LabProcess, ProcessExited, http_request, watcher_argv
from ._wait import WaitTimeout, wait_until
from ._watcherproc import WatcherProcess
from .topology import MeshLab, replica_lan4, replica_lan6

__all__ = [
    "API_PREFIX",
    "PY",
    "AgentProcess",
    "ApiCallFailed",
    "ControlPlaneProcess",
    "InHost",
    "LabProcess",
    "MeshStack",
    "ProcessExited",
    "WaitTimeout",
    "WatcherProcess",
    "http_request",
    "wait_until",
    "watcher_argv",
]

CP_ADDR = "192.0.2.1"
# A fixed port is safe: it lives in the lab's fresh router namespace, not on the host.
CP_PORT = 8787


class MeshStack:
    """Control plane + agents + watcher over a MeshLab. Keyword arguments tune the plane
    (`rate_limit` "0" = off, the harness default; None = the plane's 1200 / 5 min)."""

    def __init__(
        self,
        mesh: MeshLab,
        tmp: Path,
        *,
        detection_timeout: float | None = 1.5,
        heartbeat_interval: float | None = 0.3,
        rate_limit: str | None = "0",
        cp_args: Sequence[str] = (),
        metrics: str = "127.0.0.1:9477",
        notify: bool = False,
    ) -> None:
        self.mesh = mesh
        self.router = mesh.router
        self.tmp = tmp
        self.cp = ControlPlaneProcess(
            tmp / "cp",
            host=self.router,
            listen=f"{CP_ADDR}:{CP_PORT}",
            rate_limit=rate_limit,
            detection_timeout=detection_timeout,
            heartbeat_interval=heartbeat_interval,
            args=cp_args,
            log=tmp / "cp.log",
        )
        self.api_url = f"http://{CP_ADDR}:{CP_PORT}{API_PREFIX}"
        self.agents: dict[int, AgentProcess] = {}
        self.watcher = WatcherProcess(
            tmp / "watcher.yaml",
            host=self.router,
            metrics=metrics,
            log=tmp / "watcher.log",
            cwd=tmp / "watcher-cwd",  # stays empty: the watcher keeps no files
            notify_socket=tmp / "notify.sock" if notify else None,
        )
        self.account = ""
        self.node = ""

    # -- control plane ---------------------------------------------------------------------------
    def start_cp(self) -> None:
        self.cp.start()

    def stop_cp(self, sig: int = signal.SIGKILL) -> None:
        self.cp.stop(sig)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """An admin API call that must succeed; `path` is below /client/v4."""
        return self.cp.result(method, path, body)

    def setup_node(self, name: str = "office", *, ha: bool = True, watcher_scope: str = "write") -> str:
        """The watched node, its node token in tmp/node.token and an API token for the watcher
        (`watcher_scope`) in tmp/watcher.token. Returns the node id."""
        self.account = self.call("GET", "/accounts")[0]["id"]
        self.node = self.call("POST", f"/accounts/{self.account}/warp_connector", {"name": name, "ha": ha})[
            "id"
        ]
        (self.tmp / "node.token").write_text(self.call("GET", f"{self.node_path()}/token"))
        tok = self.call(
            "POST", f"/accounts/{self.account}/tokens", {"name": "watcher", "scope": watcher_scope}
        )
        (self.tmp / "watcher.token").write_text(tok["value"])
        return self.node

    def node_path(self, node: str | None = None) -> str:
        return f"/accounts/{self.account}/warp_connector/{node or self.node}"

    def add_node(self, name: str, *, ha: bool = False) -> str:
        """Another node of the account; returns its id."""
        return str(
            self.call("POST", f"/accounts/{self.account}/warp_connector", {"name": name, "ha": ha})["id"]
        )

    def add_route(self, network: str, node: str) -> str:
        """A teamnet route of `network` to `node`; returns the route id."""
        body = {"network": network, "tunnel_id": node}
        return str(self.call("POST", f"/accounts/{self.account}/teamnet/routes", body)["id"])

    def delete_route(self, route_id: str) -> None:
        self.call("DELETE", f"/accounts/{self.account}/teamnet/routes/{route_id}")

    def connections(self) -> list[dict[str, Any]]:
        return list(self.call("GET", f"{self.node_path()}/connections"))

    def index_of(self, conn: dict[str, Any]) -> int | None:
        """The replica host (1-based) whose LAN address a connection reports."""
        for i in range(1, len(self.mesh.replicas) + 1):
            if any(str(a).split("/")[0] == replica_lan4(i) for a in conn.get("lan_addresses") or ()):
                return i
        return None

    def active(self) -> tuple[int, str] | None:
        """(replica host index, replica id) of the active replica, from the control plane."""
        for c in self.connections():
            if c["ha_status"] == "active" and (i := self.index_of(c)) is not None:
                return i, str(c["id"])
        return None

    def replica_id(self, i: int) -> str:
        for c in self.connections():
            if self.index_of(c) == i:
                return str(c["id"])
        raise LookupError(f"replica {i} is not registered")

    def online(self) -> dict[int, str]:
        """{host index: replica id} of the replicas not offline."""
        return {
            i: str(c["id"])
            for c in self.connections()
            if c["ha_status"] != "offline" and (i := self.index_of(c)) is not None
        }

    def failover(self, replica_id: str) -> None:
        self.call("PUT", f"{self.node_path()}/failover", {"client_id": replica_id})

    def events(self, last_event_id: int = 0, quiet: float = 1.0) -> list[tuple[str, dict[str, Any]]]:
        """The node's events after `last_event_id` as (type, data): read until the stream has been
        quiet for `quiet` s (the replay is over)."""
        from ..cfapi import SSEDecoder

        def read() -> list[tuple[str, dict[str, Any]]]:
            out: list[tuple[str, dict[str, Any]]] = []
            headers = {"Authorization": f"Bearer {self.cp.admin}", "Last-Event-ID": str(last_event_id)}
            decoder = SSEDecoder()
            url = f"{self.cp.base}{self.node_path()}/events"
            try:
                with httpx.stream(
                    "GET", url, headers=headers, timeout=httpx.Timeout(5.0, read=quiet)
                ) as resp:
                    for line in resp.iter_lines():
                        ev = decoder.decode(line)
                        if ev is not None and ev.data:
                            out.append((ev.event, ev.json()))
            except httpx.ReadTimeout:
                pass
            return out

        return self.router.call(read)

    # -- agents ----------------------------------------------------------------------------------
    def start_agent(self, i: int, *, dataplane: bool = True, extra: Sequence[str] = ()) -> AgentProcess:
        agent = AgentProcess(
            self.api_url,
            self.tmp / f"agent{i}",
            token_file=self.tmp / "node.token",
            host=self.mesh.replica(i),
            device_name=f"replica{i}",
            dataplane=dataplane,
            extra=extra,
            log=self.tmp / f"agent{i}.log",
        )
        self.agents[i] = agent.start()
        return agent

    def start_agents(self, *indices: int, timeout: float = 30.0, **kwargs: Any) -> dict[int, str]:
        """Start these replicas' agents; wait until the plane sees them all online (and one
        active). Returns {index: replica id}."""
        for i in indices:
            self.start_agent(i, **kwargs)

        def up() -> dict[int, str] | None:
            for i in indices:
                self.agents[i].alive()
            got = self.online()
            return got if set(indices) <= got.keys() and self.active() else None

        return wait_until(up, timeout, f"replicas {list(indices)} online")

    def kill_agent(self, i: int) -> None:
        self.agents.pop(i).kill()

    # -- watcher -------------------------------------------------------------------------------
    def router_config(
        self, prefixes: Sequence[str], *, control_plane: dict[str, Any] | None = None, **sections: Any
    ) -> dict[str, Any]:
        """A router-mode watcher config for this node (see `config`)."""
        return self.config(
            "router", control_plane=control_plane, routes={"prefixes": list(prefixes)}, **sections
        )

    def vip_config(
        self, vip: dict[str, Any], *, control_plane: dict[str, Any] | None = None, **sections: Any
    ) -> dict[str, Any]:
        """A VIP-mode watcher config for this node, to run on a replica host (see `config`)."""
        return self.config("vip", control_plane=control_plane, vip=vip, health={"probe": False}, **sections)

    def config(
        self, mode: str, *, control_plane: dict[str, Any] | None = None, **sections: Any
    ) -> dict[str, Any]:
        """A watcher config for this node (JSON is YAML): `control_plane` entries are merged over
        the API/token defaults; a mapping section is merged over the default one, others replace it."""
        doc: dict[str, Any] = {
            "mode": mode,
            "node": {"account_id": self.account, "node_id": self.node},
            "control_plane": {
                "api": self.api_url,
                "token_file": str(self.tmp / "watcher.token"),
                **(control_plane or {}),
            },
            # No dampening: consecutive promotions must each be applied at once.
            "decide": {"hold_down": 0},
            # Each host's own namespace: no clash between daemons on different hosts.
            "metrics": {"listen": self.watcher.metrics_url.removeprefix("http://")},
        }
        for key, value in sections.items():
            doc[key] = (
                {**doc[key], **value} if isinstance(doc.get(key), dict) and isinstance(value, dict) else value
            )
        return doc

    def gateway(self, i: int, family: int) -> str:
        return replica_lan4(i) if family == 4 else replica_lan6(i)

    def dump_logs(self, chars: int = 4000) -> str:
        """The tail of every process log, for a failed run's output."""
        return "\n".join(
            f"--- {log.name}\n" + log.read_text(errors="replace")[-chars:]
            for log in sorted(self.tmp.glob("*.log"))
        )

    def close(self) -> None:
        self.watcher.close()
