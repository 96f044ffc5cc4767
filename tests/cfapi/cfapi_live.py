"""Real processes for the client/source integration tests: watcher.lab.stack's launchers with the
fast timings these tests want (a failover in about a second)."""

from __future__ import annotations

from pathlib import Path

from watcher.lab import wait_until
from watcher.lab.stack import AgentProcess, ControlPlaneProcess

__all__ = ["ControlPlaneProcess", "control_plane", "start_agent", "wait_until"]


def control_plane(state_dir: Path) -> ControlPlaneProcess:
    """A loopback control plane (not started), rate limit off."""
    return ControlPlaneProcess(
        state_dir, heartbeat_interval=0.3, detection_timeout=1.5, log=state_dir / "control-plane.log"
    )


def start_agent(api: str, token: str, state_dir: Path, name: str, lan: str) -> AgentProcess:
    """A started `mesh-watcher replica` reporting `lan` as its LAN address."""
    agent = AgentProcess(
        api, state_dir, token=token, device_name=name, lan_addresses=[lan], log=state_dir / "agent.log"
    )
    return agent.start()
