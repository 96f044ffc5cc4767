"""kill -9 of the control plane in the middle of a stream of writes loses nothing it acknowledged.

Writer threads create nodes, routes and API tokens and flip the active replica of an HA node with
real agents, recording every write that got a 2xx. The test kill -9s the control plane while they
run, checks the database file as the crash left it (integrity, no half-written object), restarts it,
and checks that every acknowledged write is there. Several rounds on the same state.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import signal
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cp_helpers import Agents, ControlPlane, make_cp, wait_for

ROUNDS = 3
WRITERS = 3
MAX_WRITES_PER_ROUND = 400  # per writer; the kill comes long before


@dataclass
class Acked:
    nodes: set[str] = field(default_factory=set)
    routes: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (network, tunnel_id)
    tokens: dict[str, str] = field(default_factory=dict)  # id -> value
    failovers: list[str] = field(default_factory=list)  # acknowledged targets, in order
    in_flight_failover: str | None = None  # sent when the control plane died, answer never seen
    serial: itertools.count[int] = field(default_factory=itertools.count)  # unique names, all rounds
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        return len(self.nodes) + len(self.routes) + len(self.tokens) + len(self.failovers)


class Writers:
    def __init__(self, cp: ControlPlane, acked: Acked, ha_node: str, replicas: tuple[str, str]) -> None:
        self.cp, self.acked, self.ha_node, self.replicas = cp, acked, ha_node, replicas
        self.threads = [threading.Thread(target=self._crud, args=(i,), daemon=True) for i in range(WRITERS)]
        self.threads.append(threading.Thread(target=self._failovers, daemon=True))

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self) -> None:
        for t in self.threads:
            t.join(15)
            assert not t.is_alive(), "a writer did not stop after the control plane died"
        assert self.acked.errors == []

    def _client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.cp.base + f"/accounts/{self.cp.account}",
            headers={"Authorization": f"Bearer {self.cp.admin}"},
            timeout=5,
        )

    def _crud(self, seed: int) -> None:
        rng = random.Random(seed)
        with self._client() as http:
            for _ in range(MAX_WRITES_PER_ROUND):
                n = next(self.acked.serial)
                try:
                    kind = rng.choice(("node", "route", "route", "token"))
                    if kind == "node":
                        resp = http.post("/warp_connector", json={"name": f"n{n}", "ha": rng.random() < 0.5})
                        if resp.is_success:
                            with self.acked.lock:
                                self.acked.nodes.add(resp.json()["result"]["id"])
                    elif kind == "route":
                        with self.acked.lock:
                            tunnel = rng.choice(sorted(self.acked.nodes))
                        network = f"10.{n // 256 % 256}.{n % 256}.0/24"
                        resp = http.post("/teamnet/routes", json={"network": network, "tunnel_id": tunnel})
                        if resp.is_success:
                            with self.acked.lock:
                                self.acked.routes[resp.json()["result"]["id"]] = (network, tunnel)
                    else:
                        resp = http.post("/tokens", json={"name": f"t{n}", "scope": "read"})
                        if resp.is_success:
                            result = resp.json()["result"]
                            with self.acked.lock:
                                self.acked.tokens[result["id"]] = result["value"]
                    if not resp.is_success:  # every write is valid: any refusal is a bug
                        self.acked.errors.append(f"{kind}: {resp.status_code} {resp.text}")
                        return
                except httpx.HTTPError:
                    return  # the control plane is gone: this write was never acknowledged

    def _failovers(self) -> None:
        with self._client() as http:
            active = self.acked.failovers[-1] if self.acked.failovers else self.replicas[1]
            for _ in range(MAX_WRITES_PER_ROUND):
                # always the other replica, so that every acknowledged failover is a promotion
                target = active = self.replicas[0] if active == self.replicas[1] else self.replicas[1]
                self.acked.in_flight_failover = target
                try:
                    resp = http.put(f"/warp_connector/{self.ha_node}/failover", json={"client_id": target})
                except httpx.HTTPError:
                    return
                self.acked.in_flight_failover = None
                if not resp.is_success:
                    self.acked.errors.append(f"failover: {resp.status_code} {resp.text}")
                    return
                self.acked.failovers.append(target)
                time.sleep(0.01)


def check_crashed_database(path: Path, acked: Acked, ha_node: str) -> list[str]:
    """Open the file exactly as kill -9 left it: intact, every reference whole. Returns the manual
    promotions recorded for the HA node, in order."""
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        orphans = db.execute(
            "SELECT id FROM routes WHERE tunnel_id NOT IN (SELECT id FROM nodes)"
            " UNION ALL SELECT id FROM replicas WHERE tunnel_id NOT IN (SELECT id FROM nodes)"
            " UNION ALL SELECT id FROM nodes WHERE active_replica_id IS NOT NULL AND active_replica_id"
            "  NOT IN (SELECT id FROM replicas r WHERE r.tunnel_id = nodes.id)"
        ).fetchall()
        assert orphans == [], orphans
        # every node's generation is its last event: no event without its state change, or back
        gaps = db.execute(
            "SELECT n.id, n.generation, MAX(e.generation) FROM nodes n LEFT JOIN events e"
            " ON e.tunnel_id = n.id GROUP BY n.id HAVING n.generation != COALESCE(MAX(e.generation), 0)"
        ).fetchall()
        assert gaps == [], gaps
        rows = db.execute(
            "SELECT data FROM events WHERE tunnel_id = ? AND type = 'promoted' ORDER BY generation",
            (ha_node,),
        ).fetchall()
        return [d["replica_id"] for (raw,) in rows if (d := json.loads(raw))["reason"] == "manual"]
    finally:
        db.close()


def test_kill9_during_writes_loses_nothing_acknowledged(tmp_path: Path, agents: Agents) -> None:
    cp = make_cp(tmp_path).start()
    try:
        nid, token = cp.create_node("ha")
        a = agents.start(cp.base, token, "dur-a")
        ra = a.wait_registered()
        wait_for(lambda: cp.active(nid) == ra, what="a active")
        rb = agents.start(cp.base, token, "dur-b").wait_registered()
        wait_for(lambda: cp.statuses(nid) == {ra: "active", rb: "passive"}, what="b passive")
        acked = Acked(nodes={nid})
        rng = random.Random(7)
        totals = []
        for _ in range(ROUNDS):
            writers = Writers(cp, acked, nid, (rb, ra))
            before = acked.count()
            writers.start()
            # mid-stream: some writes answered, many more on their way
            wait_for(lambda: acked.count() >= before + 30, timeout=20, interval=0.01, what="writes")  # noqa: B023
            time.sleep(rng.uniform(0.0, 0.3))
            cp.stop(signal.SIGKILL)
            writers.join()
            totals.append(acked.count() - before)

            manual = check_crashed_database(cp.state_dir / "state.db", acked, nid)
            # every acknowledged failover is recorded; the one in flight may or may not be
            assert manual[: len(acked.failovers)] == acked.failovers
            assert len(manual) - len(acked.failovers) in ((0, 1) if acked.in_flight_failover else (0,))
            if len(manual) > len(acked.failovers):
                assert manual[-1] == acked.in_flight_failover
                acked.failovers.append(manual[-1])  # it committed: the next round expects it
            acked.in_flight_failover = None

            cp.start()
            nodes = {n["id"] for n in cp.ok("GET", "/accounts/{a}/warp_connector?per_page=1000")}
            assert acked.nodes <= nodes, acked.nodes - nodes
            routes = {
                r["id"]: (r["network"], r["tunnel_id"])
                for r in cp.ok("GET", "/accounts/{a}/teamnet/routes?per_page=1000")
            }
            assert all(routes.get(rid) == want for rid, want in acked.routes.items())
            for value in acked.tokens.values():
                assert cp.get("/accounts", token=value).status_code == 200
            listed = {t["id"] for t in cp.ok("GET", "/accounts/{a}/tokens?per_page=1000")}
            assert set(acked.tokens) <= listed
            # the last acknowledged promotion is the active replica, and it stays (no failover)
            want = acked.failovers[-1] if acked.failovers else ra
            assert cp.active(nid) == want
        time.sleep(1.0)
        assert cp.statuses(nid)[acked.failovers[-1]] == "active"
        print(f"\nacknowledged writes per round before kill -9: {totals}")
        assert min(totals) >= 30
    finally:
        with contextlib.suppress(Exception):
            cp.stop(signal.SIGKILL)
