"""Benchmark (not a test): manual promotion -> Observation showing the new active replica.

    .venv/bin/python tests/source/bench_source_latency.py [N]

Starts a control plane and two replica agents, then promotes the passive replica N times
(bounded) and measures, per mode (SSE events; polling every 2 s), the time from the PUT
failover call to the Source yielding the Observation with the new active replica.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "cfapi"))

from cfapi_live import ControlPlaneProcess, control_plane, start_agent, wait_until

from watcher.cfapi import AsyncMeshApi, MeshApi
from watcher.lab.stack import AgentProcess
from watcher.source import NodeRef, Source, SourceConfig


async def measure(cp: ControlPlaneProcess, node: NodeRef, token_file: Path, mode: str, n: int) -> list[float]:
    poll = 30.0 if mode == "sse" else 2.0
    cfg = SourceConfig.model_validate(
        {
            "api": cp.base,
            "token_file": str(token_file),
            "subscribe": "sse" if mode == "sse" else "off",
            "poll_interval": poll,
        }
    )
    source = Source(cfg, node)
    it = source.run()
    out = []
    async with AsyncMeshApi(cp.base, cp.admin, account_id=node.account_id) as api:
        try:
            obs = await anext(it)
            while mode == "sse" and not source.stats.sse_connected:
                obs = await anext(it)
            for _ in range(n):
                assert obs.replicas is not None
                target = next(r.id for r in obs.replicas if r.ha_status == "passive")
                t0 = time.monotonic()
                await api.failover(node.node_id, target)
                async with asyncio.timeout(30):
                    while True:
                        obs = await anext(it)
                        if obs.replicas and any(
                            r.id == target and r.ha_status == "active" for r in obs.replicas
                        ):
                            break
                out.append(time.monotonic() - t0)
                await asyncio.sleep(0.2)
        finally:
            await it.aclose()
    return out


def main(n: int = 10) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cp = control_plane(Path(tmp) / "cp").start()
        agents: list[AgentProcess] = []
        try:
            with MeshApi(cp.base, cp.admin) as api:
                account = api.account()
                node_id = api.create_node("bench")["id"]
                token = api.node_token(node_id)
                agents = [
                    start_agent(cp.base, token, Path(tmp) / f"r{i}", f"gw-{i}", f"192.0.2.{11 + i}")
                    for i in range(2)
                ]
                wait_until(
                    lambda: sorted(r["ha_status"] for r in api.connections(node_id)) == ["active", "passive"],
                    20,
                    "replicas",
                    interval=0.2,
                )
            token_file = Path(tmp) / "token"
            token_file.write_text(cp.admin)
            node = NodeRef(account_id=account, node_id=node_id)
            for mode, count in (("sse", n), ("poll", max(3, n // 2))):
                lat = asyncio.run(measure(cp, node, token_file, mode, count))
                lat_ms = sorted(x * 1000 for x in lat)
                p95 = lat_ms[min(len(lat_ms) - 1, int(0.95 * len(lat_ms)))]
                print(
                    f"{mode:4s} n={len(lat_ms):3d} median={statistics.median(lat_ms):7.1f} ms "
                    f"p95={p95:7.1f} ms max={lat_ms[-1]:7.1f} ms"
                )
        finally:
            for agent in agents:
                agent.stop()
            cp.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
