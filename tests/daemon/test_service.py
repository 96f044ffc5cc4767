"""The daemon loop against scripted observations and a recording actuator (the _types seams):
hold-down rechecks without a new read, apply retries, promotion, reload, stop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from watcher._aio import wait_for
from watcher._types import Observation, Replica, Target
from watcher.cfapi import ApiError, ClientStats
from watcher.daemon.config import WatcherConfig, load_config
from watcher.daemon.service import Watcher
from watcher.source import SourceStats

CONFIG = """\
mode: router
node: {node_id: n1}
control_plane: {api: "http://127.0.0.1:9/client/v4", token: t}
routes: {prefixes: [100.96.0.0/12]}
replicas:
  use_reported_lan_addresses: false
  static:
    - {match: {id: a}, ipv4: 192.0.2.11}
    - {match: {id: b}, ipv4: 192.0.2.12}
decide: {hold_down: 0.6}
health: {probe: false}
metrics: {listen: "127.0.0.1:0"}
"""


class ScriptedSource:
    def __init__(self) -> None:
        self.stats = SourceStats(client=ClientStats())
        self.queue: asyncio.Queue[Observation] = asyncio.Queue()
        self.failovers: list[str] = []
        self.fail_with: Exception | None = None
        self.refreshes = 0

    async def run(self) -> AsyncIterator[Observation]:
        while True:
            yield await self.queue.get()

    def request_refresh(self, trigger: str = "manual", received_at: float | None = None) -> None:
        self.refreshes += 1

    async def failover(self, replica_id: str) -> None:
        if self.fail_with:
            raise self.fail_with
        self.failovers.append(replica_id)

    def push(self, *replicas: Replica, error: str | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.queue.put_nowait(Observation(loop.time(), "event", None if error else replicas, error=error))


class RecordingActuator:
    name = "rec"

    def __init__(self, log: list[Any]) -> None:
        self.log = log
        self.fail_next = 0

    async def start(self) -> None:
        self.log.append(("start", self))

    async def apply(self, target: Target) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise OSError("netlink said no")
        self.log.append(("apply", target.nexthop.replica_id if target.nexthop else None, target.stale))

    async def close(self, *, withdraw: bool = False) -> None:
        self.log.append(("close", withdraw))


class Harness:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.source = ScriptedSource()
        self.log: list[Any] = []
        self.actuators: list[RecordingActuator] = []
        self.fail_first = 0
        self.watcher = Watcher(
            load_config(path), config_path=path, registry=CollectorRegistry(),
            source_factory=lambda _c: self.source, actuator_factory=self._actuator,
        )  # fmt: skip

    def _actuator(self, config: WatcherConfig, **_: Any) -> RecordingActuator:
        act = RecordingActuator(self.log)
        act.fail_next = self.fail_first
        self.actuators.append(act)
        return act

    def applies(self) -> list[Any]:
        return [e for e in self.log if e[0] == "apply"]

    async def until(self, pred: Any, timeout: float = 5.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not pred():
            assert asyncio.get_running_loop().time() < deadline, f"timeout; log={self.log}"
            await asyncio.sleep(0.01)


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    path = tmp_path / "watcher.yaml"
    path.write_text(CONFIG)
    return Harness(path)


async def test_hold_down_rechecks_without_a_new_read(harness: Harness) -> None:
    h, src = harness, harness.source
    task = asyncio.create_task(h.watcher.run())
    src.push(Replica("a", "active"), Replica("b", "passive"))
    await h.until(lambda: h.applies() == [("apply", "a", False)])
    t0 = asyncio.get_running_loop().time()
    src.push(Replica("a", "passive"), Replica("b", "active"))
    await h.until(lambda: len(h.applies()) == 2)
    waited = asyncio.get_running_loop().time() - t0
    assert h.applies()[-1] == ("apply", "b", False)
    assert 0.4 <= waited < 3, waited  # deferred by the hold-down, then applied by the timer alone
    h.watcher.request_stop()
    assert await wait_for(task, 10) == 0
    assert h.log[-1] == ("close", False)


async def test_apply_failure_is_retried_and_counted(harness: Harness) -> None:
    h, src = harness, harness.source
    h.fail_first = 1
    task = asyncio.create_task(h.watcher.run())
    src.push(Replica("a", "active"), Replica("b", "passive"))
    await h.until(lambda: h.watcher.decision is not None)
    assert h.applies() == [] and h.watcher.apply_error and "netlink said no" in h.watcher.apply_error
    assert h.watcher.registry.get_sample_value("mesh_watcher_apply_errors_total") == 1
    src.push(Replica("a", "active"), Replica("b", "passive"))  # same target: still retried
    await h.until(lambda: h.applies() == [("apply", "a", False)])
    assert h.watcher.apply_error is None
    # Control plane errors: stale target applied once, not on every failed read.
    src.push(error="unreachable: refused")
    src.push(error="unreachable: refused")
    await h.until(lambda: h.watcher.registry.get_sample_value("mesh_watcher_decision_stale") == 1)
    await asyncio.sleep(0.1)
    assert h.applies() == [("apply", "a", False), ("apply", "a", True)]
    # /status over HTTP, from the same server as /metrics.
    host, port = h.watcher.http_address or ("", 0)
    async with httpx.AsyncClient() as client:
        doc = (await client.get(f"http://{host}:{port}/status")).json()
    assert doc["target"]["replica"] == "a" and doc["stale"] and doc["in_sync"]
    assert doc["alerts"][0]["kind"] == "control_plane_unreachable"
    h.watcher.request_stop()
    await wait_for(task, 10)


async def test_promotion_results_are_counted(harness: Harness) -> None:
    h = harness
    w = h.watcher
    w.source = h.source
    await w._promote("b", "test")
    h.source.fail_with = ApiError("needs write", status=403)
    await w._promote("b", "test")
    assert h.source.failovers == ["b"] and h.source.refreshes == 1
    assert w.registry.get_sample_value("mesh_watcher_promotion_requests_total", {"result": "ok"}) == 1
    assert w.registry.get_sample_value("mesh_watcher_promotion_requests_total", {"result": "forbidden"}) == 1


async def test_reload_applies_through_the_same_path(harness: Harness) -> None:
    h, src = harness, harness.source
    task = asyncio.create_task(h.watcher.run())
    src.push(Replica("a", "active"), Replica("b", "passive"))
    await h.until(lambda: h.applies() == [("apply", "a", False)])
    # A decide-only change: same target, so the actuator is not even called.
    h.path.write_text(CONFIG.replace("hold_down: 0.6", "hold_down: 2"))
    h.watcher.request_reload()
    await h.until(lambda: h.watcher.config.decide.hold_down == 2)
    await asyncio.sleep(0.1)
    assert len(h.actuators) == 1 and h.applies() == [("apply", "a", False)]
    # A broken file is refused and the running config kept.
    h.path.write_text(CONFIG.replace("mode: router", "mode: bogus"))
    h.watcher.request_reload()
    await asyncio.sleep(0.2)
    assert h.watcher.config.decide.hold_down == 2
    # A next-hop map change re-decides at once from the last observation.
    h.path.write_text(CONFIG.replace("192.0.2.11", "192.0.2.21"))
    h.watcher.request_reload()
    await h.until(
        lambda: (
            str(h.watcher.decision and h.watcher.decision.nexthop and h.watcher.decision.nexthop.ipv4)
            == "192.0.2.21"
        )
    )
    # A routes change swaps the actuator without withdrawing, then applies the current target once.
    text = CONFIG.replace("192.0.2.11", "192.0.2.21")
    h.path.write_text(text.replace("[100.96.0.0/12]", "[100.96.0.0/12, 2001:db8:96::/48]"))
    h.watcher.request_reload()
    await h.until(lambda: len(h.actuators) == 2 and len(h.applies()) == 3)
    assert ("close", False) in h.log and h.applies()[-1] == ("apply", "a", False)
    status = json.loads(json.dumps(h.watcher.status(), default=str))
    assert status["applied"]["nexthop"] == {"replica": "a", "ipv4": "192.0.2.21", "ipv6": None}
    h.watcher.request_stop()
    await wait_for(task, 10)
