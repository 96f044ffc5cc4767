"""The HA engine: replica connections, heartbeats (in memory), failover, promotion, node status.

All state changes run on the event loop thread, so no locks are needed. Each change commits its
database writes and its events in one transaction, then publishes the events and webhooks.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from . import _logic
from ._events import EventHub, Webhooks
from ._logic import Live
from ._store import Row, Store
from ._util import (
    CONFLICT,
    MASQUE_REQUIRED,
    NODE_NOT_FOUND,
    NOT_HA,
    REPLICA_NOT_CONNECTED,
    REPLICA_NOT_FOUND,
    REPLICA_OFFLINE,
    ApiError,
    new_uuid,
    not_found,
    now_iso,
)

log = logging.getLogger("watcher.controlplane.engine")
_DEFAULT_V4 = ipaddress.IPv4Network("100.96.0.0/12")
_DEFAULT_V6 = ipaddress.IPv6Network("2001:db8:96::/48")


@dataclass(frozen=True, slots=True)
class EngineConfig:
    detection_timeout: float = 3.0
    heartbeat_interval: float = 1.0
    colo_name: str = "LAB1"
    mesh_ipv4_range: ipaddress.IPv4Network = _DEFAULT_V4
    mesh_ipv6_range: ipaddress.IPv6Network = _DEFAULT_V6


class Engine:
    def __init__(
        self,
        store: Store,
        hub: EventHub,
        webhooks: Webhooks,
        config: EngineConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store, self.hub, self.webhooks, self.config, self.clock = store, hub, webhooks, config, clock
        self.started = clock()
        self.live: dict[str, dict[str, Live]] = {}
        self.last_heartbeat_at: dict[str, str] = {}
        for node in store.all_nodes():
            connected = [r["id"] for r in store.replicas(node["id"]) if r["connected"]]
            self.live[node["id"]] = _logic.grace(connected, self.started)
        self._pending: list[tuple[Row, Row]] = []

    # queries -------------------------------------------------------------------------------
    def node(self, node_id: str, *, account_id: str | None = None, live_only: bool = True) -> Row:
        row = self.store.node(node_id)
        if row is None or (account_id is not None and row["account_id"] != account_id):
            raise not_found(NODE_NOT_FOUND, "node", node_id)
        if live_only and row["deleted_at"] is not None:
            raise ApiError(404, NODE_NOT_FOUND, f"node {node_id!r} was deleted at {row['deleted_at']}")
        return row

    def ha_status(self, node: Row, replica_id: str) -> _logic.HaStatus:
        return _logic.ha_status(
            replica_id, node["active_replica_id"], self.live.get(node["id"], {}).get(replica_id)
        )

    def _replica_of(self, node: Row, replica_id: str) -> Row:
        row = self.store.replica(replica_id)
        if row is None or row["tunnel_id"] != node["id"]:
            raise ApiError(
                404, REPLICA_NOT_FOUND, f"replica {replica_id!r} is not a replica of node {node['id']!r}"
            )
        return row

    # replica-agent calls -------------------------------------------------------------------
    def register(self, node: Row, body: dict[str, Any], origin_ip: str) -> dict[str, Any]:
        if node["ha"] and body["transport"] == "wireguard":
            raise ApiError(
                400,
                MASQUE_REQUIRED,
                f"HA replicas require the MASQUE transport: node {node['name']!r} is an HA node, "
                "so register with transport 'masque' (wireguard replicas cannot be part of an HA node)",
            )
        live = self.live.setdefault(node["id"], {})
        row = self.store.replica(body["replica_id"]) if body.get("replica_id") else None
        if row is not None and row["tunnel_id"] != node["id"]:
            row = None  # an identity from another node is never reused here: start a new one
        rid = row["id"] if row is not None else new_uuid()
        if not node["ha"]:
            others = [r for r, lv in live.items() if lv.connected and r != rid]
            if others:
                raise ApiError(
                    409,
                    CONFLICT,
                    f"node {node['name']!r} is not an HA node and replica {others[0]!r} is already "
                    "connected: a non-HA node takes one replica",
                )
        now, wall = self.clock(), now_iso()
        fields = {
            "arch": body.get("arch"),
            "platform": body.get("platform"),
            "version": body.get("version"),
            "device_name": body.get("device_name"),
            "transport": body["transport"],
            "lan_addresses": json.dumps(body.get("lan_addresses") or []),
            "run_at": wall,
            "connected": 1,
            "conn_id": new_uuid(),
            "opened_at": wall,
            "origin_ip": origin_ip,
        }
        with self._change():
            if row is None:
                v4, v6 = self._allocate_mesh_ips()
                self.store.add_replica(
                    {"id": rid, "tunnel_id": node["id"], "mesh_ipv4": v4, "mesh_ipv6": v6, "created_at": wall}
                )
                self._emit(node, "registered", rid, "new replica")
            self.store.update("replicas", rid, **fields)
            live[rid] = Live(True, now)
            self.last_heartbeat_at[rid] = wall
            self._emit(node, "connected", rid, "register")
            node = self._settle(node["id"], "auto")
        replica = self.store.replica(rid)
        assert replica is not None
        log.info(
            "replica %s of node %s connected from %s (%s)",
            rid,
            node["name"],
            origin_ip,
            self.ha_status(node, rid),
        )
        return {
            "replica_id": rid,
            "ha_status": self.ha_status(node, rid),
            "mesh_ipv4": replica["mesh_ipv4"],
            "mesh_ipv6": replica["mesh_ipv6"],
            "heartbeat_interval": self.config.heartbeat_interval,
            "detection_timeout": self.config.detection_timeout,
            "tunnel_id": node["id"],
            "account_tag": node["account_id"],
        }

    def heartbeat(self, node: Row, replica_id: str, lan_addresses: list[str] | None) -> dict[str, Any]:
        row = self._replica_of(node, replica_id)
        live = self.live.get(node["id"], {}).get(replica_id)
        if live is None or not live.connected:
            raise ApiError(
                409,
                REPLICA_NOT_CONNECTED,
                f"replica {replica_id!r} is not connected (its heartbeats stopped): register again",
            )
        live.last_seen = self.clock()
        self.last_heartbeat_at[replica_id] = now_iso()
        if lan_addresses is not None and json.loads(row["lan_addresses"]) != lan_addresses:
            self.store.update("replicas", replica_id, lan_addresses=json.dumps(lan_addresses))
        return {"ha_status": self.ha_status(node, replica_id), "generation": node["generation"]}

    def disconnect(self, node: Row, replica_id: str) -> dict[str, Any]:
        self._replica_of(node, replica_id)
        live = self.live.get(node["id"], {}).get(replica_id)
        if live is not None and live.connected:
            with self._change():
                self._go_offline(node, replica_id, "graceful")
                node = self._settle(node["id"], "auto")
        return {"replica_id": replica_id, "ha_status": self.ha_status(node, replica_id)}

    # operator calls ------------------------------------------------------------------------
    def failover(self, node: Row, replica_id: str) -> Row:
        if not node["ha"]:
            raise ApiError(
                400, NOT_HA, f"node {node['name']!r} is not an HA node: it has no replica to fail over to"
            )
        self._replica_of(node, replica_id)
        if self.ha_status(node, replica_id) == "offline":
            raise ApiError(
                400,
                REPLICA_OFFLINE,
                f"replica {replica_id!r} is offline: only a connected replica can be promoted",
            )
        if node["active_replica_id"] != replica_id:
            with self._change():
                self.store.update("nodes", node["id"], active_replica_id=replica_id)
                node = self.node(node["id"])
                self._emit(node, "promoted", replica_id, "manual")
            log.info("replica %s of node %s promoted by hand", replica_id, node["name"])
        return node

    def delete_node(self, node: Row) -> Row:
        with self._change():
            for rid, live in list(self.live.get(node["id"], {}).items()):
                if live.connected:
                    self._go_offline(node, rid, "node deleted")
            self.store.update("nodes", node["id"], deleted_at=now_iso(), active_replica_id=None)
            self.store.db.execute(
                "UPDATE routes SET deleted_at = ? WHERE tunnel_id = ? AND deleted_at IS NULL",
                (now_iso(), node["id"]),
            )
        self.live.pop(node["id"], None)
        return self.node(node["id"], live_only=False)

    # the clock -----------------------------------------------------------------------------
    def tick(self) -> None:
        now = self.clock()
        for node_id, live in list(self.live.items()):
            if _logic.expired(live, now, self.config.detection_timeout):
                node = self.store.node(node_id)
                if node is None or node["deleted_at"] is not None:
                    continue
                with self._change():
                    for rid in _logic.expired(live, now, self.config.detection_timeout):
                        self._go_offline(node, rid, "timeout")
                    self._settle(node_id, "auto")

    # internals -----------------------------------------------------------------------------
    @contextmanager
    def _change(self) -> Iterator[None]:
        """One transaction; its events are published only once it has committed."""
        try:
            with self.store.tx():
                yield
        except BaseException:
            self._pending.clear()
            raise
        self._flush()

    def _go_offline(self, node: Row, replica_id: str, reason: str) -> None:
        self.live[node["id"]][replica_id].connected = False
        self.store.update("replicas", replica_id, connected=0)
        self._emit(node, "disconnected", replica_id, reason)
        log.info("replica %s of node %s disconnected (%s)", replica_id, node["name"], reason)

    def _settle(self, node_id: str, reason: str) -> Row:
        """Choose the active replica and the node status after a change; emit what changed."""
        node = self.node(node_id)
        decision = _logic.decide(
            ha=bool(node["ha"]),
            active=node["active_replica_id"],
            replicas=self.live.get(node_id, {}),
            ever_connected=node["status"] != "inactive",
            now=self.clock(),
            timeout=float("inf"),
        )
        if decision.active != node["active_replica_id"]:
            self.store.update("nodes", node_id, active_replica_id=decision.active)
            node = self.node(node_id)
            if decision.active is not None:
                self._emit(node, "promoted", decision.active, reason)
                log.info("replica %s of node %s promoted (%s)", decision.active, node["name"], reason)
        if decision.status != node["status"]:
            up = decision.status in ("healthy", "degraded")
            was_up = node["status"] in ("healthy", "degraded")
            stamps: dict[str, Any] = {}
            if up and not was_up:
                stamps = {"conns_active_at": now_iso(), "conns_inactive_at": None}
            elif was_up and not up:
                stamps = {"conns_active_at": None, "conns_inactive_at": now_iso()}
            self.store.update("nodes", node_id, status=decision.status, **stamps)
            node = self.node(node_id)
            self._emit(node, "status", decision.active, f"status {decision.status}")
        return node

    def _emit(self, node: Row, kind: str, replica_id: str | None, reason: str) -> None:
        fresh = self.store.node(node["id"])
        assert fresh is not None

        def build(generation: int) -> Row:
            return {
                "generation": generation,
                "type": kind,
                "tunnel_id": node["id"],
                "replica_id": replica_id,
                "reason": reason,
                "ha_status": self.ha_status(fresh, replica_id) if replica_id else None,
                "status": fresh["status"],
                "ts": now_iso(),
            }

        self._pending.append((fresh, self.store.add_event(node["id"], build)))

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for node, event in pending:
            self.hub.publish(event)
            if event["type"] in ("promoted", "status"):
                self.webhooks.notify(node["account_id"], notification(node, event))

    def _allocate_mesh_ips(self) -> tuple[str, str]:
        offset = self.store.next_counter("mesh_ip_offset")
        v4net, v6net = self.config.mesh_ipv4_range, self.config.mesh_ipv6_range
        if offset >= v4net.num_addresses - 1 or offset >= v6net.num_addresses - 1:
            raise ApiError(409, CONFLICT, f"the Mesh IP ranges {v4net} / {v6net} are exhausted")
        return str(v4net[offset]), str(v6net[offset])


def notification(node: Row, event: Row) -> dict[str, Any]:
    """A Cloudflare-notification-shaped body for one node event."""
    if event["type"] == "promoted":
        text = (
            f"Replica {event['replica_id']} of node {node['name']} was promoted to active ({event['reason']})"
        )
    else:
        text = f"Node {node['name']} is now {event['status']}"
    return {
        "name": "mesh-watcher node health",
        "text": text,
        "data": {
            "tunnel_id": node["id"],
            "tunnel_name": node["name"],
            "new_status": event["status"],
            "replica_id": event["replica_id"],
            "reason": event["reason"],
            "event": event["type"],
            "generation": event["generation"],
        },
        "ts": int(time.time()),
        "account_id": node["account_id"],
        "alert_type": "tunnel_health_event",
        "alert_correlation_id": new_uuid(),
        "alert_event": "ALERT_STATE_EVENT_START",
    }
