"""Per-family desired/believed state and the convergence steps (run in a worker thread)."""

from __future__ import annotations

import errno
import socket
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from ._codec import RTN_UNICAST, Route, RouteEncoder, RouteKey, RouteSpec, key_str
from ._kernel import Kernel, family_name
from ._netlink import NetlinkError

_MAX_LISTED = 5


@dataclass
class Outcome:
    routes_written: int = 0
    routes_deleted: int = 0
    nexthops_written: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return self.routes_written + self.routes_deleted + self.nexthops_written

    def add(self, other: Outcome) -> None:
        self.routes_written += other.routes_written
        self.routes_deleted += other.routes_deleted
        self.nexthops_written += other.nexthops_written
        self.errors += other.errors


@dataclass
class FamilyState:
    family: int
    nh_id: int
    spec: RouteSpec
    use_nh: bool
    gw: str | None = None  # where routes should point (last known; kept while the source is stale)
    oif: int = 0
    kgw: str | None = None  # what the kernel has: our nexthop object's / our routes' gateway
    koif: int = 0
    desired: set[RouteKey] = field(default_factory=set)
    installed: set[RouteKey] = field(default_factory=set)  # ours and right (as far as we know)
    claimed: set[RouteKey] = field(default_factory=set)  # slots we hold or held: a foreign write is drift
    conflicts: set[RouteKey] = field(default_factory=set)  # slots a foreign route held before us

    @property
    def name(self) -> str:
        return family_name(self.family)

    def encoder(self) -> RouteEncoder | None:
        if self.use_nh:
            return RouteEncoder(self.family, self.spec, nh_id=self.nh_id) if self.kgw else None
        if self.gw is None:
            return None
        gateway = socket.inet_pton(self.family, self.gw)
        return RouteEncoder(self.family, self.spec, gateway=gateway, oif=self.oif)

    def is_right(self, r: Route) -> bool:
        if r.proto != self.spec.proto or r.rtype != RTN_UNICAST or r.multipath:
            return False
        if self.use_nh:
            return r.nh_id == self.nh_id
        gw = self.gw
        return (
            r.nh_id == 0 and gw is not None and r.oif == self.oif
            and r.gateway == socket.inet_pton(self.family, gw)
        )  # fmt: skip

    def at_slot(self, r: Route) -> bool:
        return r.metric == self.spec.metric and r.tos == 0 and r.src_len == 0


def _fmt_errors(what: str, errors: dict[RouteKey, NetlinkError]) -> list[str]:
    items = sorted(errors.items())[:_MAX_LISTED]
    more = f" (and {len(errors) - _MAX_LISTED} more)" if len(errors) > _MAX_LISTED else ""
    text = "; ".join(f"{key_str(k)}: {e.strerror}" for k, e in items)
    return [f"{what} {len(errors)} route(s) failed: {text}{more}"]


def nexthop_error(fam: FamilyState, exc: NetlinkError) -> str:
    hint = ""
    if exc.code in (errno.ENETUNREACH, errno.EINVAL, errno.EHOSTUNREACH):
        hint = " - the gateway must be on a connected subnet of that interface"
    return f"nexthop {fam.nh_id:#x} ({fam.name}) via {fam.gw} ifindex {fam.oif}: {exc.strerror}{hint}"


def sync_nexthop(k: Kernel, fam: FamilyState, nhs: dict[int, dict[str, Any]] | None, out: Outcome) -> None:
    """Make our nexthop object point at fam.gw. `nhs` is a fresh dump, or None to trust fam.kgw."""
    stale_proto = False
    if nhs is not None:
        cur = nhs.get(fam.nh_id)
        stale_proto = cur is not None and cur["protocol"] != fam.spec.proto
        fam.kgw, fam.koif = (cur["gateway"], cur["oif"]) if cur and not stale_proto else (None, 0)
        if fam.gw is None and fam.kgw is not None:  # adopt what a previous run left
            fam.gw, fam.oif = fam.kgw, fam.koif
    if fam.gw is None or (not stale_proto and (fam.gw, fam.oif) == (fam.kgw, fam.koif)):
        return
    try:
        k.nexthop_replace(fam.nh_id, fam.gw, fam.oif, fam.spec.proto)
    except NetlinkError as exc:
        out.errors.append(nexthop_error(fam, exc))
        return
    fam.kgw, fam.koif = fam.gw, fam.oif
    out.nexthops_written += 1


def converge(
    k: Kernel,
    fam: FamilyState,
    routes: list[Route] | None,
    *,
    have_target: bool,
    only: set[RouteKey] | None = None,
) -> Outcome:
    """Fix fam's routes. `routes`: a fresh dump of our table, or None to trust our beliefs.

    `only` limits the pass to those prefixes (event-driven repair): they are rewritten without
    looking, since the event already said they are wrong.
    """
    out = Outcome()
    replace: list[RouteKey] = []
    create: list[RouteKey] = []
    delete: dict[int, list[RouteKey]] = defaultdict(list)  # metric -> our routes to remove
    desired, claimed = fam.desired, fam.claimed
    if only is not None:
        for key in only & desired:
            (replace if key in claimed else create).append(key)
    elif routes is not None:
        at_slot: dict[RouteKey, Route] = {}
        for r in routes:
            if r.family != fam.family or r.tos or r.src_len:
                continue
            if r.metric == fam.spec.metric:
                at_slot[r.key] = r
            elif r.proto == fam.spec.proto and have_target:
                delete[r.metric].append(r.key)  # ours under an old metric
        fam.installed, fam.conflicts = set(), set()
        if not have_target:  # before the first target: what we find is what we keep
            desired |= {key for key, r in at_slot.items() if r.proto == fam.spec.proto}
        for key in desired:
            found = at_slot.get(key)
            if found is None:
                (replace if key in claimed else create).append(key)
            elif fam.is_right(found):
                fam.installed.add(key)
                claimed.add(key)
            elif found.proto == fam.spec.proto or key in claimed:
                claimed.add(key)
                replace.append(key)
            else:
                fam.conflicts.add(key)
        for key, r in at_slot.items():
            if r.proto == fam.spec.proto and key not in desired and have_target:
                delete[fam.spec.metric].append(key)
    else:
        if not fam.use_nh and (fam.gw, fam.oif) != (fam.kgw, fam.koif):
            fam.installed.clear()  # every route carries the old gateway
        for key in desired - fam.installed:
            (replace if key in claimed else create).append(key)
        if have_target:
            delete[fam.spec.metric] = sorted(claimed - desired)
    enc = fam.encoder()
    if enc is not None and (replace or create):
        errors = k.install(enc, replace, create)
        for key in (*replace, *create):
            err = errors.get(key)
            if err is None:
                out.routes_written += 1
                fam.installed.add(key)
                claimed.add(key)
                fam.conflicts.discard(key)
            elif err.code == errno.EEXIST and key not in claimed:
                fam.conflicts.add(key)  # a foreign route had this slot first: not ours to take
                del errors[key]
            else:
                fam.installed.discard(key)
        if errors:
            out.errors += _fmt_errors(f"{fam.name} via {fam.gw}:", errors)
        if not fam.use_nh:
            fam.kgw, fam.koif = fam.gw, fam.oif
    for metric, keys in delete.items():
        if not keys:
            continue
        spec = RouteSpec(fam.spec.table, metric, fam.spec.proto)
        errors = k.delete(RouteEncoder(fam.family, spec), keys)
        out.routes_deleted += len(keys) - len(errors)
        if metric == fam.spec.metric:
            for key in keys:
                if key not in errors:
                    claimed.discard(key)
                    fam.installed.discard(key)
        if errors:
            out.errors += _fmt_errors(f"{fam.name} delete:", errors)
    return out


def withdraw(k: Kernel, fams: list[FamilyState], *, nexthops_supported: bool) -> Outcome:
    """Remove every route with our protocol in our table, then our nexthop objects."""
    out = Outcome()
    for fam in fams:
        mine: dict[int, list[RouteKey]] = defaultdict(list)
        for r in k.routes(fam.family, fam.spec.table):
            if r.proto == fam.spec.proto and r.family == fam.family:
                mine[r.metric].append(r.key)
        for metric, keys in mine.items():
            spec = RouteSpec(fam.spec.table, metric, fam.spec.proto)
            errors = k.delete(RouteEncoder(fam.family, spec), keys)
            out.routes_deleted += len(keys) - len(errors)
            if errors:
                out.errors += _fmt_errors(f"{fam.name} withdraw:", errors)
        fam.installed.clear()
        fam.claimed.clear()
    if nexthops_supported:  # also after `use_nexthop_objects: off`: a previous run may have left them
        nhs = k.nexthops()
        for fam in fams:
            cur = nhs.get(fam.nh_id)
            if cur is not None and cur["protocol"] == fam.spec.proto:
                k.nexthop_delete(fam.nh_id)
                out.nexthops_written += 1
            fam.kgw = None
    return out


def adopt(k: Kernel, fam: FamilyState, nhs: dict[int, dict[str, Any]] | None) -> None:
    """Learn what a previous run left, changing nothing: our nexthop, our routes, foreign holders."""
    if fam.use_nh and nhs is not None:
        cur = nhs.get(fam.nh_id)
        if cur is not None and cur["protocol"] == fam.spec.proto:
            fam.gw, fam.oif = fam.kgw, fam.koif = cur["gateway"], cur["oif"]
    routes = [r for r in k.routes(fam.family, fam.spec.table) if r.family == fam.family and fam.at_slot(r)]
    ours = [r for r in routes if r.proto == fam.spec.proto]
    if not fam.use_nh and ours:
        votes: dict[tuple[bytes, int], int] = defaultdict(int)
        for r in ours:
            if r.gateway and not r.nh_id:
                votes[(r.gateway, r.oif)] += 1
        if votes:
            gw, oif = max(votes.items(), key=lambda kv: kv[1])[0]
            fam.gw, fam.oif = fam.kgw, fam.koif = socket.inet_ntop(fam.family, gw), oif
    for r in routes:
        if r.proto == fam.spec.proto:
            fam.desired.add(r.key)
            fam.claimed.add(r.key)
            if fam.is_right(r):
                fam.installed.add(r.key)
        elif r.key in fam.desired:
            fam.conflicts.add(r.key)
