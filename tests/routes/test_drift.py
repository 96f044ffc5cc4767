"""Drift: foreign writes, deleted nexthops, link and address changes, lost events - all repaired."""

from __future__ import annotations

from watcher.lab import MeshLab
from watcher.routes import Repair, RoutesActuator, RoutesConfig

from ._helpers import NH4, NH6, R1, eventually, nets4, nets6, routes, target

PREFIXES = nets4(200) + nets6(10)


def _ours_ok(mlab: MeshLab) -> bool:
    v4, v6 = routes(mlab.router, "route"), routes(mlab.router, "-6", "route")
    return v4.count(f"nhid {NH4} via 192.0.2.11 dev eth1 proto 250 metric 1024") == 201 and (
        v6.count(f"nhid {NH6} via 2001:db8:1::b dev eth1 proto 250 metric 1024") == 11
    )


async def _started(mlab: MeshLab, **kw: object) -> tuple[RoutesActuator, list[Repair]]:
    seen: list[Repair] = []
    cfg = RoutesConfig.model_validate({"prefixes": ["100.96.0.0/12", "2001:db8:96::/48"], **kw})
    act = RoutesActuator(cfg, netns=mlab.router.netns, on_repair=seen.append)
    await act.start()
    await act.apply(target(R1, PREFIXES))
    assert _ours_ok(mlab)
    return act, seen


async def test_announced_drift_is_repaired(mlab: MeshLab) -> None:
    r = mlab.router
    r.ip("route", "add", "198.18.0.0/15", "via", "192.0.2.13", "proto", "static")  # foreign, untouched
    act, seen = await _started(mlab)
    r.ip("route", "replace", "100.96.0.48/28", "via", "192.0.2.13", "metric", "1024")
    r.ip("-6", "route", "replace", "2001:db8:a:3::/64", "via", "2001:db8:1::d", "metric", "1024")
    await eventually(lambda: _ours_ok(mlab), 5, "repair of a foreign replace")
    r.ip("route", "del", "100.96.0.64/28", "metric", "1024")
    r.ip("-6", "route", "del", "2001:db8:96::/48", "metric", "1024")
    await eventually(lambda: _ours_ok(mlab), 5, "repair of a foreign delete")
    r.ip("nexthop", "del", "id", str(NH4))  # the kernel silently drops the 201 routes using it
    await eventually(lambda: _ours_ok(mlab), 5, "repair of a deleted nexthop")
    r.ip("nexthop", "replace", "id", str(NH6), "via", "2001:db8:1::d", "dev", "eth1", "proto", "250")
    await eventually(lambda: _ours_ok(mlab), 5, "repair of a replaced nexthop")
    kinds = {rep.kind for rep in seen}
    assert {"route_replaced", "route_deleted", "nexthop_deleted", "nexthop_replaced"} <= kinds, seen
    assert act.stats.repairs["route_replaced"] >= 2 and act.stats.repairs["nexthop_deleted"] >= 202
    assert all(rep.latency is not None and rep.latency < 5 for rep in seen)
    assert "198.18.0.0/15 via 192.0.2.13 dev eth1 proto static" in routes(r, "route")
    assert act.stats.errors == 0
    await act.close()


async def test_link_flap_and_address_loss_are_repaired(mlab: MeshLab) -> None:
    r = mlab.router
    act, seen = await _started(mlab)
    r.ip("link", "set", "eth1", "down")  # the kernel flushes our nexthops and routes
    await eventually(lambda: "proto 250" not in routes(r, "route"), 5, "flush on link down")
    r.ip("link", "set", "eth1", "up")
    await eventually(lambda: _ours_ok(mlab), 10, "repair after link up")
    assert act.stats.repairs["link_event"] > 0 or act.stats.repairs["nexthop_deleted"] > 0
    r.ip("addr", "del", "192.0.2.1/24", "dev", "eth1")
    r.ip("-6", "addr", "del", "2001:db8:1::1/64", "dev", "eth1")
    await eventually(lambda: act.stats.reconciles["link_event"] >= 2, 5, "a re-dump after address loss")
    r.ip("addr", "add", "192.0.2.1/24", "dev", "eth1")
    r.ip("-6", "addr", "add", "2001:db8:1::1/64", "dev", "eth1", "nodad")
    await eventually(lambda: _ours_ok(mlab), 10, "routes right after the address is back")
    assert any(rep.kind in ("link_event", "nexthop_deleted") for rep in seen)
    await act.close()


async def test_unannounced_drift_caught_by_periodic_reconcile(mlab: MeshLab) -> None:
    act, seen = await _started(mlab, reconcile_interval=0.5)
    assert act._watcher is not None
    act._watcher.close()  # as if every event were lost
    # Let one periodic pass drain whatever start-up events were already queued: a pending pass of
    # another kind would otherwise absorb the periodic one (passes merge, the stronger kind wins).
    passes = act.stats.reconciles["periodic"]
    await eventually(lambda: act.stats.reconciles["periodic"] > passes, 5, "a quiet periodic pass")
    seen.clear()
    before = act.stats.repairs["periodic"]
    r = mlab.router
    r.ip("route", "del", "100.96.0.144/28", "metric", "1024")
    r.ip("route", "replace", "100.96.0.160/28", "via", "192.0.2.13", "metric", "1024")
    await eventually(lambda: _ours_ok(mlab), 5, "periodic repair")
    assert act.stats.repairs["periodic"] - before == 2
    assert {rep.kind for rep in seen} == {"periodic"}
    # An overflowing event socket (ENOBUFS) forces the same full pass, reported as "resync".
    r.ip("route", "del", "100.96.0.176/28", "metric", "1024")
    act._schedule_full("resync", 0.0)
    await eventually(lambda: act.stats.repairs["resync"] == 1, 5, "resync repair")
    await act.close()
