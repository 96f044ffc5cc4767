"""Real packets: the client's traffic to a Mesh IP leaves through the replica we point at."""

from __future__ import annotations

from watcher.lab import MESH_HOST4, MESH_HOST6, MeshLab
from watcher.routes import RoutesActuator, RoutesConfig

from ._helpers import R1, R2, target


async def test_ping_follows_the_failover(mlab: MeshLab) -> None:
    for i in (1, 2):
        mlab.set_replica_forwarding(i, True)
    cfg = RoutesConfig.model_validate({"prefixes": ["100.96.0.0/12", "2001:db8:96::/48"]})
    act = RoutesActuator(cfg, netns=mlab.router.netns)
    await act.start()
    await act.apply(target(R1))
    base = mlab.forwarded_packets(1), mlab.forwarded_packets(2)
    assert mlab.client.ping(MESH_HOST4, count=2) and mlab.client.ping(MESH_HOST6, count=2)
    mid = mlab.forwarded_packets(1), mlab.forwarded_packets(2)
    assert mid[0] - base[0] >= 4 and mid[1] == base[1]
    await act.apply(target(R2))
    assert mlab.client.ping(MESH_HOST4, count=2) and mlab.client.ping(MESH_HOST6, count=2)
    end = mlab.forwarded_packets(1), mlab.forwarded_packets(2)
    assert end[1] - mid[1] >= 4 and end[0] == mid[0]
    await act.close()
