"""Building the daemon's parts from the config: the source and the actuator for the mode.

Factories are parameters of the service so the loop can run against other implementations of
the same seams (watcher._types.Actuator, an Observation stream), e.g. in benchmarks.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Protocol

from .._types import Actuator, Observation, Trigger
from .config import WatcherConfig

log = logging.getLogger(__name__)


class SourceLike(Protocol):
    """What the service needs of watcher.source.Source."""

    stats: Any

    def run(self) -> AsyncIterator[Observation]: ...

    def request_refresh(self, trigger: Trigger = "manual", received_at: float | None = None) -> None: ...

    async def failover(self, replica_id: str) -> None: ...


class _SourceAdapter:
    """watcher.source.Source plus the failover call the service makes through its client."""

    def __init__(self, config: WatcherConfig) -> None:
        from ..source import Source

        self._source = Source(config.source_config(), config.node)
        self.stats = self._source.stats
        self._node_id = config.node.node_id

    def run(self) -> AsyncIterator[Observation]:
        return self._source.run()

    def request_refresh(self, trigger: Trigger = "manual", received_at: float | None = None) -> None:
        self._source.request_refresh(trigger, received_at)

    async def failover(self, replica_id: str) -> None:
        await self._source.client.failover(self._node_id, replica_id)


def default_source(config: WatcherConfig) -> SourceLike:
    return _SourceAdapter(config)


OnTakeover = Callable[[], Awaitable[None]]
OnVrrpTransition = Callable[[int, str, str, str], Awaitable[None] | None]


def default_actuator(
    config: WatcherConfig, *, on_takeover: OnTakeover, on_vrrp_transition: OnVrrpTransition
) -> Actuator:
    if config.mode == "vip":
        from ..vip import VipActuator

        assert config.vip is not None
        return VipActuator(config.vip, on_takeover=on_takeover, on_transition=on_vrrp_transition)
    from ..routes import RoutesActuator

    assert config.routes is not None
    actuator: Actuator = RoutesActuator(config.routes)
    return actuator


ActuatorFactory = Callable[..., Actuator]
SourceFactory = Callable[[WatcherConfig], SourceLike]


def actuator_stats(actuator: Actuator) -> dict[str, Any]:
    """The actuator's own view for /status: `kernel` (its `state()`) and `stats` (its counters)."""
    out: dict[str, Any] = {}
    state = getattr(actuator, "state", None)
    if callable(state):
        try:
            out["kernel"] = state()
        except Exception as exc:  # status must render even when the actuator is half-closed
            out["kernel"] = {"error": str(exc)}
    stats = getattr(actuator, "stats", None)
    if callable(stats):
        stats = stats()
    if dataclasses.is_dataclass(stats) and not isinstance(stats, type):
        stats = {
            f.name: getattr(stats, f.name)
            for f in dataclasses.fields(stats)
            if isinstance(getattr(stats, f.name), (int, float, str, bool, dict, type(None)))
        }
    if isinstance(stats, Mapping):
        out["stats"] = dict(stats)
    return out


def routes_metrics(actuator: Actuator) -> dict[str, Any]:
    """watcher.routes RoutesStats -> what ExternalStats exports."""
    stats = getattr(actuator, "stats", None)
    return {
        "managed_routes": getattr(stats, "routes_installed", 0),
        "drift_repairs": dict(getattr(stats, "repairs", {}) or {}),
    }
