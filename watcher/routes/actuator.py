"""Router-mode actuator: the Mesh prefixes point at the active replica's LAN address.

Routes (our protocol number, in our table, at our metric) reference one nexthop object per
family, so a failover is one RTM_NEWNEXTHOP per family whatever the number of prefixes.
Without nexthop objects every route carries the gateway and a failover rewrites them in batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from pyroute2 import AsyncIPRoute

from .._types import IPNetwork, Target
from ._codec import RTM_NEWROUTE, Route, RouteKey, RouteSpec, key_of
from ._drift import EventWatcher, Handlers
from ._kernel import Kernel
from ._nhmsg import RTM_DELNEXTHOP
from ._onlink import resolve_gateway
from ._state import FamilyState, Outcome, adopt, converge, sync_nexthop, withdraw
from ._stats import Repair, RepairKind, RoutesStats
from .config import RoutesConfig

log = logging.getLogger(__name__)
FAMILIES: tuple[int, int] = (int(socket.AF_INET), int(socket.AF_INET6))
# When two triggers ask for a full pass at once, report the most specific one.
_PRIORITY = {"nexthop_deleted": 0, "nexthop_replaced": 1, "link_event": 2, "resync": 3, "periodic": 4}
_LINK_DEBOUNCE = 0.05


class RoutesError(RuntimeError):
    """The actuator could not make (part of) the target true; the message says what and why."""


class _Hooks(Handlers):
    def __init__(self, owner: RoutesActuator) -> None:
        self.o = owner

    def route(self, mtype: int, route: Route, t: float) -> None:
        self.o._on_route(mtype, route, t)

    def nexthop(self, mtype: int, nh: dict[str, Any], t: float) -> None:
        self.o._on_nexthop(mtype, nh, t)

    def link(self, family: int | None, t: float) -> None:
        self.o._gateways.clear()  # an address or link change may move or remove a gateway's subnet
        self.o._schedule_full("link_event", t, None if family not in FAMILIES else (family,))

    def overflow(self, t: float) -> None:
        self.o._gateways.clear()  # events were lost, link/address ones among them maybe
        self.o.stats.event_overflows += 1
        self.o._schedule_full("resync", t)


class RoutesActuator:
    """Implements watcher._types.Actuator for router mode (see package docstring for the API)."""

    name = "routes"

    def __init__(
        self,
        config: RoutesConfig,
        *,
        netns: str | None = None,
        on_repair: Callable[[Repair], None] | None = None,
    ) -> None:
        self.config = config
        self.netns = netns
        self.on_repair = on_repair
        self.stats = RoutesStats()
        self._spec = RouteSpec(config.table, config.metric, config.protocol)
        self._kernel: Kernel | None = None
        self._ipr: Any = None
        self._watcher: EventWatcher | None = None
        self._fams: dict[int, FamilyState] = {}
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._pending_routes: dict[int, dict[RouteKey, tuple[RepairKind, float]]] = {}
        self._pending_full: dict[int, tuple[RepairKind, float]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._have_target = False
        self._nh_supported = False
        self._retry: asyncio.TimerHandle | None = None
        self._retry_delay = 0.5
        self._desired_cache: tuple[tuple[IPNetwork, ...], dict[int, set[RouteKey]]] | None = None
        # Gateway -> (address, ifindex) checked on-link, until a link/address event or an error:
        # the check is two netlink round trips per family (~1 ms each), on every failover's path.
        self._gateways: dict[str, tuple[str, int]] = {}

    # lifecycle ---------------------------------------------------------------------
    @property
    def nexthop_objects(self) -> bool:
        return self.stats.nexthop_objects

    async def start(self) -> None:
        cfg = self.config
        self._kernel = kernel = await asyncio.to_thread(Kernel, self.netns)
        self._ipr = AsyncIPRoute(netns=self.netns, flags=0) if self.netns else AsyncIPRoute()
        self._nh_supported = await asyncio.to_thread(kernel.supports_nexthops)
        if cfg.use_nexthop_objects == "on" and not self._nh_supported:
            raise RoutesError(
                "routes.use_nexthop_objects is 'on' but this kernel has no nexthop objects (< 5.3)"
            )
        use_nh = self._nh_supported and cfg.use_nexthop_objects != "off"
        self.stats.nexthop_objects = use_nh
        ids = dict(zip(FAMILIES, (cfg.nexthop_ids.ipv4, cfg.nexthop_ids.ipv6), strict=True))
        static: dict[int, set[RouteKey]] = {f: set() for f in FAMILIES}
        for net in cfg.prefixes:
            key = key_of(net)
            static[key[0]].add(key)
        self._static = static
        self._fams = {f: FamilyState(f, ids[f], self._spec, use_nh, desired=set(static[f])) for f in FAMILIES}
        self._pending_routes = {f: {} for f in FAMILIES}
        # Watch before the adopting dump, so nothing that happens in between is missed.
        self._watcher = EventWatcher(self.netns, _Hooks(self), lambda: kernel.portid)
        self._watcher.start(cfg.table)
        nhs = await asyncio.to_thread(kernel.nexthops) if self._nh_supported else None
        for fam in self._fams.values():
            cur = (nhs or {}).get(fam.nh_id)
            if cur is not None and cur["protocol"] != cfg.protocol:
                await self.close()
                raise RoutesError(
                    f"nexthop id {fam.nh_id:#x} exists with protocol {cur['protocol']}, not ours "
                    f"({cfg.protocol}): set routes.nexthop_ids.{fam.name} to an unused id"
                )
        async with self._lock:
            for fam in self._fams.values():
                await asyncio.to_thread(adopt, kernel, fam, nhs)
        self._update_gauges()
        self._tasks = [
            asyncio.create_task(self._repair_loop(), name="routes-repair"),
            asyncio.create_task(self._periodic_loop(), name="routes-periodic"),
        ]

    async def close(self, *, withdraw: bool = False) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._retry is not None:
            self._retry.cancel()
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None
        kernel = self._kernel
        if kernel is not None and withdraw:
            async with self._lock:
                out = await asyncio.to_thread(self._withdraw_sync, kernel)
            self._account(out)
            self._update_gauges()
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None
        if kernel is not None:
            kernel.close()
            self._kernel = None

    def _withdraw_sync(self, kernel: Kernel) -> Outcome:
        return withdraw(kernel, list(self._fams.values()), nexthops_supported=self._nh_supported)

    # the target ----------------------------------------------------------------------
    async def apply(self, target: Target) -> None:
        t0 = time.monotonic()
        if self._kernel is None:
            raise RoutesError("the routes actuator is not started")
        if target.stale or target.nexthop is None:
            log.info("routes: keeping what is installed (%s)", target.reason)  # fail-static
            return
        errors: list[str] = []
        wanted = dict(zip(FAMILIES, (target.nexthop.ipv4, target.nexthop.ipv6), strict=True))
        desired = self._desired_for(target.prefixes)
        for family, fam in self._fams.items():
            addr = wanted[family]
            if addr is not None and (str(addr) != fam.gw or not fam.oif):
                known = self._gateways.get(str(addr))
                if known is not None:
                    fam.gw, fam.oif = known
                else:
                    res = await resolve_gateway(self._ipr, str(addr))
                    if res.error:
                        errors.append(f"replica {target.nexthop.replica_id}: {res.error}")
                    else:
                        fam.gw, fam.oif = res.address, res.oif
                        self._gateways[str(addr)] = (res.address, res.oif)
            fam.desired = desired[family]
            if fam.desired and fam.gw is None:
                errors.append(f"{len(fam.desired)} {fam.name} prefix(es) have no next hop yet")
        self._have_target = True
        async with self._lock:
            out = await asyncio.to_thread(self._apply_sync, self._kernel)
        self.stats.last_apply_seconds = time.monotonic() - t0
        self._account(out, errors)
        self._update_gauges()
        if out.errors or errors:
            self._gateways.clear()  # the kernel may know better now: check again next time
            raise RoutesError("; ".join(errors + out.errors))

    def _desired_for(self, prefixes: tuple[IPNetwork, ...]) -> dict[int, set[RouteKey]]:
        # A failover usually repeats the prefixes: skip re-encoding 10k+ keys (~1 us each).
        cached = self._desired_cache
        if cached is not None and (cached[0] is prefixes or cached[0] == prefixes):
            return {f: set(keys) for f, keys in cached[1].items()}
        desired = {f: set(self._static[f]) for f in FAMILIES}
        for net in prefixes:
            key = key_of(net)
            desired[key[0]].add(key)
        self._desired_cache = (prefixes, desired)
        return {f: set(keys) for f, keys in desired.items()}

    def _apply_sync(self, kernel: Kernel) -> Outcome:
        out = Outcome()
        for fam in self._fams.values():
            if fam.use_nh:
                sync_nexthop(kernel, fam, None, out)
            out.add(converge(kernel, fam, None, have_target=True))
        return out

    async def reconcile(self, kind: RepairKind = "periodic") -> Repair:
        """A full re-dump and repair now (what the periodic backstop does)."""
        if self._kernel is None:
            raise RoutesError("the routes actuator is not started")
        t0 = time.monotonic()
        async with self._lock:
            out = await asyncio.to_thread(self._full_sync, self._kernel, set(FAMILIES))
        return self._report(kind, out, t0)

    def _full_sync(self, kernel: Kernel, families: set[int]) -> Outcome:
        out = Outcome()
        nhs = kernel.nexthops() if self._nh_supported else None
        for family in sorted(families):
            fam = self._fams[family]
            if fam.use_nh:
                sync_nexthop(kernel, fam, nhs, out)
            routes = kernel.routes(family, fam.spec.table)
            out.add(converge(kernel, fam, routes, have_target=self._have_target))
            cur = (nhs or {}).get(fam.nh_id)
            if not fam.use_nh and cur is not None and cur["protocol"] == fam.spec.proto:
                kernel.nexthop_delete(fam.nh_id)  # left by a run with nexthop objects on
                out.nexthops_written += 1
        return out

    def state(self) -> dict[str, Any]:
        """A summary for status pages and logs."""
        fams = {
            fam.name: {
                "gateway": fam.gw,
                "ifindex": fam.oif,
                "nexthop_id": fam.nh_id if fam.use_nh else None,
                "prefixes": len(fam.desired),
                "installed": len(fam.installed),
                "conflicts": len(fam.conflicts),
            }
            for fam in self._fams.values()
        }
        return {"nexthop_objects": self.stats.nexthop_objects, "families": fams}

    # drift ---------------------------------------------------------------------------
    def _on_route(self, mtype: int, r: Route, t: float) -> None:
        fam = self._fams.get(r.family)
        if fam is None or not fam.at_slot(r) or r.key not in fam.desired:
            return
        if mtype == RTM_NEWROUTE:
            if fam.is_right(r) or (r.proto != fam.spec.proto and r.key not in fam.claimed):
                return
            kind: RepairKind = "route_replaced"
        else:
            if r.proto != fam.spec.proto and r.key not in fam.claimed:
                return
            kind = "route_deleted"
        pending = self._pending_routes[r.family]
        pending[r.key] = (kind, min(t, pending.get(r.key, (kind, t))[1]))
        self._wake.set()

    def _on_nexthop(self, mtype: int, nh: dict[str, Any], t: float) -> None:
        fam = next((f for f in self._fams.values() if f.nh_id == nh["id"]), None)
        if fam is None or not fam.use_nh:
            return
        if mtype == RTM_DELNEXTHOP:
            self._schedule_full("nexthop_deleted", t, (fam.family,))
        elif (nh["gateway"], nh["oif"], nh["protocol"]) != (fam.gw, fam.oif, fam.spec.proto) and fam.gw:
            self._schedule_full("nexthop_replaced", t, (fam.family,))

    def _schedule_full(self, kind: RepairKind, t: float, families: tuple[int, ...] | None = None) -> None:
        for family in families or FAMILIES:
            cur = self._pending_full.get(family)
            if cur is None or _PRIORITY.get(kind, 9) < _PRIORITY.get(cur[0], 9):
                self._pending_full[family] = (kind, min(t, cur[1]) if cur else t)
        self._wake.set()

    async def _repair_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if any(k == "link_event" for k, _ in self._pending_full.values()):
                await asyncio.sleep(_LINK_DEBOUNCE)  # one pass for a burst of link/address events
            full, self._pending_full = self._pending_full, {}
            routes, self._pending_routes = self._pending_routes, {f: {} for f in FAMILIES}
            kernel = self._kernel
            if kernel is None:
                return
            failed = False
            async with self._lock:
                by_kind: dict[RepairKind, list[int]] = {}
                for family, (kind, _t) in full.items():
                    by_kind.setdefault(kind, []).append(family)
                for kind, families in by_kind.items():
                    t0 = min(full[f][1] for f in families)
                    out = await asyncio.to_thread(self._full_sync, kernel, set(families))
                    failed |= bool(self._report(kind, out, t0).detail)
                for family, items in routes.items():
                    if family in full or not items:
                        continue
                    route_kinds: tuple[RepairKind, ...] = ("route_replaced", "route_deleted")
                    for rkind in route_kinds:
                        keys = {k for k, (kd, _t) in items.items() if kd == rkind}
                        if keys:
                            t0 = min(items[k][1] for k in keys)
                            out = await asyncio.to_thread(self._repair_sync, kernel, family, keys)
                            failed |= bool(self._report(rkind, out, t0).detail)
            self._update_gauges()
            self._schedule_retry(failed, full)

    def _repair_sync(self, kernel: Kernel, family: int, keys: set[RouteKey]) -> Outcome:
        return converge(kernel, self._fams[family], None, have_target=self._have_target, only=keys)

    def _schedule_retry(self, failed: bool, full: dict[int, tuple[RepairKind, float]]) -> None:
        if not failed:
            self._retry_delay = 0.5
            return
        if self._retry is not None:
            self._retry.cancel()
        kind: RepairKind = next(iter(full.values()))[0] if full else "periodic"
        delay = self._retry_delay
        self._retry_delay = min(delay * 2, self.config.reconcile_interval)
        self._retry = asyncio.get_running_loop().call_later(
            delay, lambda: self._schedule_full(kind, time.monotonic())
        )

    async def _periodic_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.reconcile_interval)
            self._schedule_full("periodic", time.monotonic())

    # reporting -----------------------------------------------------------------------
    def _report(self, kind: RepairKind, out: Outcome, t0: float) -> Repair:
        latency = time.monotonic() - t0
        if kind in _PRIORITY:
            self.stats.reconciles[kind] += 1
        self._account(out)
        repair = Repair(kind, out.changes, latency if out.changes else None, "; ".join(out.errors))
        if out.changes:
            self.stats.repairs[kind] += out.changes
            self.stats.repair_latencies.append(latency)
            log.warning("routes: repaired %d object(s) after %s in %.1f ms", out.changes, kind, latency * 1e3)
        if (out.changes or out.errors) and self.on_repair is not None:
            try:
                self.on_repair(repair)
            except Exception:
                log.exception("routes: on_repair callback failed")
        return repair

    def _account(self, out: Outcome, extra: list[str] | None = None) -> None:
        s = self.stats
        s.route_writes += out.routes_written
        s.route_deletes += out.routes_deleted
        s.nexthop_writes += out.nexthops_written
        errors = (extra or []) + out.errors
        if errors:
            s.errors += len(errors)
            s.last_error = "; ".join(errors)
            log.error("routes: %s", s.last_error)

    def _update_gauges(self) -> None:
        self.stats.routes_installed = sum(len(f.installed) for f in self._fams.values())
        self.stats.route_conflicts = sum(len(f.conflicts) for f in self._fams.values())
