"""The Source and the client against a live embedded control plane with real replica agents."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cfapi_live import ControlPlaneProcess, start_agent, wait_until

from watcher._aio import wait_for
from watcher._types import Observation
from watcher.cfapi import AsyncMeshApi, MeshApi
from watcher.lab.stack import AgentProcess
from watcher.source import NodeRef, Source, SourceConfig


@dataclass
class Site:
    cp: ControlPlaneProcess
    account: str
    node: str
    replicas: dict[str, str]  # device name -> replica id
    agents: list[AgentProcess]

    def config(self, tmp: Path, **kw: Any) -> SourceConfig:
        token = tmp / "api.token"
        token.write_text(self.cp.admin)
        return SourceConfig.model_validate(
            {"api": self.cp.base, "token_file": str(token), "poll_interval": 30, "timeout": 2.0, **kw}
        )

    def ref(self) -> NodeRef:
        return NodeRef(account_id=self.account, node_id=self.node)


@pytest.fixture
def site(control_plane: ControlPlaneProcess, tmp_path: Path) -> Iterator[Site]:
    with MeshApi(control_plane.base, control_plane.admin) as api:
        account = api.account()
        node = api.create_node("office", ha=True)["id"]
        token = api.node_token(node)
        agents = [
            start_agent(control_plane.base, token, tmp_path / name, name, lan)
            for name, lan in (("gw-a", "192.0.2.11"), ("gw-b", "192.0.2.12"))
        ]
        try:
            wait_until(
                lambda: sorted(r["ha_status"] for r in api.connections(node)) == ["active", "passive"],
                20,
                "two replicas, one active",
                interval=0.2,
            )
            replicas = {r["device_name"]: r["id"] for r in api.connections(node)}
            yield Site(control_plane, account, node, replicas, agents)
        finally:
            for agent in agents:
                agent.stop()


def active_of(obs: Observation) -> str | None:
    assert obs.replicas is not None, obs.error
    active = [r.id for r in obs.replicas if r.ha_status == "active"]
    return active[0] if active else None


async def until(
    it: AsyncIterator[Observation], pred: Callable[[Observation], bool], within: float
) -> Observation:
    async with asyncio.timeout(within):
        while True:
            obs = await anext(it)
            if pred(obs):
                return obs


async def promote_other(site: Site, current: str | None) -> tuple[str, float]:
    target = next(r for r in site.replicas.values() if r != current)
    async with AsyncMeshApi(site.cp.base, site.cp.admin, account_id=site.account) as api:
        t0 = time.monotonic()
        await api.failover(site.node, target)
    return target, t0


async def test_promotion_observed_via_event_stream(site: Site, tmp_path: Path) -> None:
    source = Source(site.config(tmp_path, subscribe="sse"), site.ref())
    it = source.run()
    try:
        first = await until(it, lambda o: o.replicas is not None, 10)
        assert first.trigger == "startup"
        r = next(r for r in first.replicas or () if r.device_name == "gw-a")
        assert r.lan_addresses == ("192.0.2.11",) and r.mesh_ipv4 and r.origin_ips  # extension fields parsed
        await until(it, lambda o: source.stats.sse_connected, 10)
        target, t0 = await promote_other(site, active_of(first))
        seen = await until(it, lambda o: o.replicas is not None and active_of(o) == target, 10)
    finally:
        await it.aclose()
    # poll_interval is 30 s: only the event stream can have caused this read.
    assert seen.trigger == "event" and seen.received_at >= t0
    assert source.stats.events >= 1 and source.last_event_id is not None


async def test_resume_with_last_event_id_replays_missed_promotion(site: Site, tmp_path: Path) -> None:
    async with AsyncMeshApi(site.cp.base, site.cp.admin, account_id=site.account) as api:
        replicas = await api.connections(site.node)
        active = next(r["id"] for r in replicas if r["ha_status"] == "active")
        # Read the history so far to learn the current generation, as a previous run would have:
        # everything replayed from 0, until the stream goes quiet.
        last: str | None = None
        stream = api.events(site.node, last_event_id="0")
        try:
            async with asyncio.timeout(10):
                while True:
                    try:
                        event = await wait_for(anext(stream), 0.5)
                    except TimeoutError:
                        break
                    last = event.id
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        assert last is not None
        target, _ = await promote_other(site, active)  # while nobody listens
        got = []
        stream = api.events(site.node, last_event_id=last)
        try:
            async with asyncio.timeout(10):
                async for event in stream:
                    assert int(event.id or 0) > int(last)
                    got.append(event)
                    if event.event == "promoted":
                        break
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
    promoted = got[-1].json()
    assert promoted["replica_id"] == target and promoted["reason"] == "manual"

    # A Source started with the saved id replays it too and reads the new state at once.
    source = Source(site.config(tmp_path, subscribe="sse"), site.ref(), last_event_id=last)
    it = source.run()
    try:
        obs = await until(it, lambda o: o.trigger == "event", 10)
    finally:
        await it.aclose()
    assert active_of(obs) == target and source.stats.events >= 1


async def test_poll_only_mode_observes_promotion(site: Site, tmp_path: Path) -> None:
    source = Source(site.config(tmp_path, subscribe="off", poll_interval=0.5), site.ref())
    it = source.run()
    try:
        first = await until(it, lambda o: o.replicas is not None, 10)
        target, t0 = await promote_other(site, active_of(first))
        seen = await until(it, lambda o: o.replicas is not None and active_of(o) == target, 10)
    finally:
        await it.aclose()
    assert seen.trigger == "poll" and seen.received_at >= t0 - 0.6
    assert source.stats.events == 0 and source.stats.sse_mode == "off"


async def test_webhook_from_control_plane_triggers_read(site: Site, tmp_path: Path) -> None:
    (tmp_path / "hook").write_text("hook-secret")
    cfg = site.config(
        tmp_path, subscribe="off", webhook={"listen": "127.0.0.1:0", "secret_file": str(tmp_path / "hook")}
    )
    source = Source(cfg, site.ref())
    it = source.run()
    try:
        first = await until(it, lambda o: o.replicas is not None, 10)
        host, port = source.webhook_address or ("", 0)
        async with AsyncMeshApi(site.cp.base, site.cp.admin, account_id=site.account) as api:
            await api.create_webhook("watcher", f"http://{host}:{port}/", "hook-secret")
        target, t0 = await promote_other(site, active_of(first))
        seen = await until(it, lambda o: o.trigger == "webhook" and active_of(o) == target, 10)
    finally:
        await it.aclose()
    assert seen.received_at >= t0 and source.stats.webhooks["ok"] >= 1


async def test_learned_routes_are_other_nodes(site: Site, tmp_path: Path) -> None:
    async with AsyncMeshApi(site.cp.base, site.cp.admin, account_id=site.account) as api:
        other = await api.create_node("branch", ha=True)
        await api.create_route("198.51.100.0/24", other["id"], comment="branch lan")
        await api.create_route("2001:db8:5::/48", other["id"])
        await api.create_route("192.0.2.0/24", site.node, comment="our own lan")
    source = Source(site.config(tmp_path, subscribe="off", learn_routes=True), site.ref())
    it = source.run()
    try:
        obs = await until(it, lambda o: o.replicas is not None, 10)
    finally:
        await it.aclose()
    assert [str(n) for n in obs.routes or ()] == ["198.51.100.0/24", "2001:db8:5::/48"]


async def test_control_plane_down_gives_error_observations_then_recovers(site: Site, tmp_path: Path) -> None:
    source = Source(site.config(tmp_path, subscribe="auto", poll_interval=0.5, backoff_max=1.0), site.ref())
    it = source.run()
    try:
        await until(it, lambda o: o.replicas is not None and source.stats.sse_connected, 10)
        await asyncio.to_thread(site.cp.stop)
        down = await until(it, lambda o: o.replicas is None, 10)
        assert down.error is not None and down.error.startswith(("unreachable", "timeout", "server_error"))
        await asyncio.to_thread(site.cp.start)
        back = await until(it, lambda o: o.replicas is not None, 20)
        await until(it, lambda o: source.stats.sse_connected, 20)
    finally:
        await it.aclose()
    assert back.replicas and source.stats.errors["unreachable"] >= 1
