"""The watcher daemon: source -> decide -> actuator, plus metrics, hooks, health and systemd.

Everything that changes state runs on one task (`_main`) fed by a queue: observations from the
source, health results, hold-down rechecks, SIGHUP and SIGTERM. So an apply never overlaps
another, and a reload goes through the same decide/apply path as an observation: an unchanged
target reaches the actuator as an idempotent apply, which changes nothing in the kernel.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from .. import __version__
from .._aio import wait_for
from .._types import Actuator, Observation, Target
from .._yaml import ConfigError
from ._http import StatusServer
from ._local import LocalNet, NetsRefresher, local_networks, networks
from ._parts import (
    ActuatorFactory,
    SourceFactory,
    SourceLike,
    default_actuator,
    default_source,
    routes_metrics,
)
from ._status import build_status, change_kind, differs, short
from .config import WatcherConfig, load_config
from .decide import ALERT_KINDS, DecideState, Decision, decide
from .health import HealthTracker
from .hooks import HookRunner, transition_env
from .metrics import Metrics
from .nexthop import describe
from .sdnotify import Notifier

log = logging.getLogger("watcher.daemon")


class Watcher:
    def __init__(
        self,
        config: WatcherConfig,
        *,
        config_path: str | Path | None = None,
        registry: CollectorRegistry | None = None,
        notifier: Notifier | None = None,
        source_factory: SourceFactory = default_source,
        actuator_factory: ActuatorFactory = default_actuator,
        clock: Callable[[], float] = time.monotonic,
        freeze_gc: bool = False,
    ) -> None:
        """`freeze_gc`: gc.freeze() after start-up and reloads (for the daemon process, which
        owns its heap; not for an embedding test process)."""
        self.config = config
        self._freeze_gc = freeze_gc
        self.config_path = Path(config_path) if config_path else None
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = Metrics(self.registry, node=config.node.node_id, version=__version__)
        self.notifier = notifier or Notifier()
        self._source_factory = source_factory
        self._actuator_factory = actuator_factory
        self.clock = clock
        self.hooks = HookRunner(config.hooks, on_result=lambda r: self.metrics.hook_runs.labels(r).inc())
        self.tracker = HealthTracker(config.health)
        self.state = DecideState()
        self.health: dict[str, bool] = {}
        self.nets: list[LocalNet] = []
        self.last_observation: Observation | None = None
        self.decision: Decision | None = None
        self.applied: Target | None = None
        self.apply_error: str | None = None
        self.vrrp_state: str | None = None
        self.ready = False
        self.started_at = time.time()
        self.http_address: tuple[str, int] | None = None
        self.source: SourceLike | None = None
        self.actuator: Actuator | None = None
        self._events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._server: StatusServer | None = None
        self._recheck_at: float | None = None
        self._alerts: frozenset[str] = frozenset()
        self._promoting: asyncio.Task[None] | None = None
        self._nets = NetsRefresher(self._events, self.clock)

    # -- lifecycle ------------------------------------------------------------------------
    async def run(self) -> int:
        """Run until SIGTERM/SIGINT (or `request_stop`). Returns the exit code."""
        loop = asyncio.get_running_loop()
        for sig, what in ((signal.SIGTERM, "stop"), (signal.SIGINT, "stop"), (signal.SIGHUP, "reload")):
            loop.add_signal_handler(sig, self._events.put_nowait, (what, None))
        try:
            await self._start()
            return await self._main()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            await self._shutdown()

    def request_stop(self) -> None:
        self._events.put_nowait(("stop", None))

    def request_reload(self) -> None:
        self._events.put_nowait(("reload", None))

    async def _start(self) -> None:
        self.notifier.status("starting")
        await self._start_server()
        self.hooks.start()
        self.nets = await local_networks()
        self._nets.read_at = self.clock()
        self.actuator = self._new_actuator(self.config)
        await self.actuator.start()
        self._start_source()
        if self.notifier.watchdog_interval():
            self._tasks["watchdog"] = asyncio.create_task(self.notifier.watchdog_loop(), name="watchdog")
        if self.config.mode == "router" and self.config.health.probe:
            self._tasks["health"] = asyncio.create_task(self._health_loop(), name="health")

    async def _shutdown(self) -> None:
        self.notifier.stopping("stopping")
        for task in self._tasks.values():
            task.cancel()
        extra = [t for t in (self._promoting, self._nets.task) if t is not None]
        for task in extra:
            task.cancel()
        for task in [*self._tasks.values(), *extra]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self.actuator is not None:
            # VRRP always resigns (a VIP held without VRRP is a split brain); routes stay unless asked.
            withdraw = self.config.routes.withdraw_on_stop if self.config.routes is not None else True
            try:
                await self.actuator.close(withdraw=withdraw)
            except Exception:
                log.exception("closing the %s actuator failed", self.actuator.name)
            self.actuator = None
        await self.hooks.close(drain_timeout=2.0)
        if self._server is not None:
            await self._server.close()
        self.notifier.close()

    async def _start_server(self) -> None:
        if not self.config.metrics.enabled:
            return
        self._server = StatusServer(self.registry, self.status)
        self.http_address = await self._server.start(*self.config.metrics.address())
        log.info("metrics and status on http://%s:%d/", *self.http_address)

    def _start_source(self) -> None:
        source = self._source_factory(self.config)
        self.source = source
        self.metrics.external.source = lambda: source.stats
        self._tasks["source"] = asyncio.create_task(self._pump(source), name="source")

    def _new_actuator(self, config: WatcherConfig) -> Actuator:
        actuator = self._actuator_factory(
            config, on_takeover=self._on_takeover, on_vrrp_transition=self._on_vrrp_transition
        )
        stats = getattr(actuator, "stats", None)
        if config.mode == "vip" and stats is not None:
            self.metrics.external.vip = lambda: getattr(actuator, "stats", {})
        elif stats is not None:
            self.metrics.external.routes = lambda: routes_metrics(actuator)
        return actuator

    async def _pump(self, source: SourceLike) -> None:
        try:
            async for observation in source.run():
                await self._events.put(("observation", observation))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("the control-plane source failed")
            await self._events.put(("fatal", f"source failed: {exc}"))

    # -- the loop -------------------------------------------------------------------------
    async def _main(self) -> int:
        while True:
            timeout = None if self._recheck_at is None else max(0.0, self._recheck_at - self.clock())
            try:
                kind, value = await wait_for(self._events.get(), timeout)
            except TimeoutError:
                kind, value = "recheck", None
            if kind == "stop":
                log.info("stopping")
                return 0
            if kind == "fatal":
                log.error("%s", value)
                return 1
            if kind == "observation":
                await self._on_observation(value)
            elif kind == "nets":
                if networks(value) != networks(self.nets):
                    self.nets = value
                    await self._redecide()
                else:
                    self.nets = value  # interfaces/MACs may differ; the decision cannot
            elif kind == "health":
                self.health = value
                self.metrics.set_health(value)
                await self._redecide()
            elif kind == "recheck":
                self._recheck_at = None
                await self._redecide()
            elif kind == "reload":
                await self._reload()

    async def _on_observation(self, observation: Observation) -> None:
        ok = observation.replicas is not None
        self.metrics.observed(ok, at_monotonic=observation.received_at)
        if observation.replicas is not None:
            self.metrics.set_replicas(observation.replicas)
        self.last_observation = observation
        await self._decide_and_apply(observation)
        if observation.replicas is not None:
            self._nets.maybe_refresh()

    async def _redecide(self) -> None:
        if self.last_observation is not None:
            again = dataclasses.replace(self.last_observation, received_at=self.clock(), trigger="manual")
            await self._decide_and_apply(again)

    async def _decide_and_apply(self, observation: Observation) -> None:
        decision, self.state = decide(
            observation, self.state, self.config, self.health, connected=networks(self.nets)
        )
        previous, self.decision = self.decision, decision
        target = decision.target()
        applied_ok = True
        if self.applied is None or differs(target, self.applied):
            applied_ok = await self._apply(target)
        if decision.changed:
            level = logging.INFO if applied_ok else logging.ERROR
            log.log(level, "next-hop %s -> %s: %s", describe(decision.previous), describe(decision.nexthop),
                    decision.reason)  # fmt: skip
            if applied_ok:
                self.metrics.convergence.observe(max(0.0, self.clock() - observation.received_at))
                self.metrics.failovers.labels(change_kind(decision)).inc()
                self._run_hooks(decision)
        elif previous is None or (previous.stale, previous.nexthop) != (decision.stale, decision.nexthop):
            log.info("%s", decision.reason)
        else:
            log.debug("%s", decision.reason)
        self.metrics.set_active(decision.nexthop)
        self.metrics.set_stale(decision.stale)
        self._report_alerts(decision)
        self._recheck_at = decision.recheck_at
        if decision.promote and (self._promoting is None or self._promoting.done()):
            self._promoting = asyncio.create_task(self._promote(decision.promote, "next-hop unhealthy"))
        if not self.ready:
            self.ready = True
            self.notifier.ready(short(decision))
            self._freeze_heap()
        elif previous is None or short(previous) != short(decision):
            self.notifier.status(short(decision))

    async def _apply(self, target: Target) -> bool:
        assert self.actuator is not None
        try:
            await self.actuator.apply(target)
        except Exception as exc:
            # Retried on the next observation: `applied` still differs from the target.
            log.exception("applying %s failed", describe(target.nexthop))
            self.apply_error = f"{type(exc).__name__}: {exc}"
            self.metrics.apply_errors.inc()
            return False
        self.applied = target
        self.apply_error = None
        return True

    def _report_alerts(self, decision: Decision) -> None:
        kinds = decision.alert_kinds()
        self.metrics.set_alerts(kinds, ALERT_KINDS)
        for alert in decision.alerts:
            if alert.kind not in self._alerts:
                log.warning("alert %s: %s", alert.kind, alert.message)
        for gone in self._alerts - kinds:
            log.info("alert %s cleared", gone)
        self._alerts = kinds

    def _run_hooks(self, decision: Decision) -> None:
        self.hooks.submit(
            transition_env(
                node_id=self.config.node.node_id,
                mode=self.config.mode,
                old_replica=decision.previous.replica_id if decision.previous else None,
                new=decision.nexthop,
                reason=decision.reason,
                state=self.vrrp_state if self.config.mode == "vip" else None,
            )
        )

    # -- health, promotion, VRRP ------------------------------------------------------------
    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.health.interval)
            if self.decision is None:
                continue
            hops = {rid: r.nexthop for rid, r in self.decision.resolutions.items() if r.nexthop is not None}
            try:
                result = await self.tracker.probe(hops, self.nets)
            except OSError as exc:
                log.warning("health probes failed: %s", exc)
                continue
            if result != self.health:
                await self._events.put(("health", result))

    async def _promote(self, replica_id: str, why: str) -> None:
        if self.source is None:
            return
        log.warning("requesting promotion of replica %s (%s)", replica_id, why)
        try:
            await self.source.failover(replica_id)
        except Exception as exc:
            status = getattr(exc, "status", None)
            result = "forbidden" if status in (401, 403) else "failed"
            hint = " (the control_plane token needs write scope)" if result == "forbidden" else ""
            log.error("promotion of %s failed: %s%s", replica_id, exc, hint)
            self.metrics.promotions.labels(result).inc()
            return
        self.metrics.promotions.labels("ok").inc()
        self.source.request_refresh("manual")

    async def _on_takeover(self) -> None:
        vip = self.config.vip
        if vip is not None and vip.promote_on_takeover and vip.local_replica_id:
            await self._promote(vip.local_replica_id, "VRRP takeover")

    def _on_vrrp_transition(self, family: int, old: str, new: str, reason: str) -> None:
        self.vrrp_state = new
        log.info("vrrp IPv%d: %s -> %s (%s)", family, old, new, reason)
        current = self.decision.nexthop if self.decision else None
        env = transition_env(
            node_id=self.config.node.node_id,
            mode="vip",
            old_replica=current.replica_id if current else None,
            new=current,
            reason=f"vrrp IPv{family} {old} -> {new}: {reason}",
            state=new,
        )
        self.hooks.submit(env)

    # -- reload -------------------------------------------------------------------------------
    async def _reload(self) -> None:
        self.notifier.reloading()
        if self.config_path is None:
            self.notifier.ready("reload ignored: no config file")
            return
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            log.error("reload failed, keeping the running config:\n%s", exc)
            self.notifier.ready(f"reload failed: {str(exc).splitlines()[0]}")
            return
        old = self.config
        if new.mode != old.mode or new.node != old.node:
            log.error("reload: changing mode or node needs a restart; keeping the running config")
            self.notifier.ready("reload refused: mode/node changed")
            return
        self.config = new
        self.hooks.update(new.hooks)
        self.tracker.update_config(new.health)
        if new.metrics != old.metrics:
            if self._server is not None:
                await self._server.close()
                self._server = None
            await self._start_server()
        if (new.routes, new.vip) != (old.routes, old.vip):
            await self._swap_actuator(new)
        if new.source_config() != old.source_config():
            self._tasks.pop("source").cancel()
            self._start_source()
        log.info("configuration reloaded from %s", self.config_path)
        await self._redecide()
        self._freeze_heap()
        self.notifier.ready(short(self.decision) if self.decision else "reloaded")

    async def _swap_actuator(self, config: WatcherConfig) -> None:
        # The new actuator adopts what the old one installed (same ownership markers), so
        # routes stay in place; VRRP cannot hand over, so a VIP change re-elects.
        assert self.actuator is not None
        if config.mode == "vip":
            log.warning("reload: vip section changed; restarting VRRP (the VIP may move briefly)")
        await self.actuator.close(withdraw=False)
        self.actuator = self._new_actuator(config)
        await self.actuator.start()
        self.applied = None  # force one apply of the current target

    def status(self) -> dict[str, Any]:
        return build_status(self)

    def _freeze_heap(self) -> None:
        """Move what is alive after start-up (modules, config, 10k+ route keys) out of the GC's
        reach. Measured: a full collection over that heap paused the event loop 30-40 ms, in the
        middle of failovers; after a freeze the collector only walks what was allocated since.
        """
        if self._freeze_gc:
            gc.collect()
            gc.freeze()
