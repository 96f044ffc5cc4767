"""Bounded event retention (with the `reset` event) and the per-token API rate limit."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import time
from pathlib import Path

import httpx
from cp_helpers import Agents, ControlPlane, SseReader, make_cp, wait_for

RETAIN = 5


def _retained(cp: ControlPlane, nid: str) -> list[int]:
    db = sqlite3.connect(cp.state_dir / "state.db")  # a second reader: WAL lets it look while running
    try:
        rows = db.execute("SELECT generation FROM events WHERE tunnel_id = ? ORDER BY generation", (nid,))
        return [int(g) for (g,) in rows.fetchall()]
    finally:
        db.close()


def _read(url: str, token: str, last: int | None, count: int) -> list[dict[str, object]]:
    sse = SseReader(url, token, last_event_id=last)
    try:
        wait_for(lambda: len(sse.events) >= count, timeout=5, what=f"{count} events after {last}")
        time.sleep(0.2)  # nothing more comes
        return list(sse.events)
    finally:
        sse.close()


def test_event_retention_prunes_and_resets_a_stale_resume(tmp_path: Path, agents: Agents) -> None:
    cp = make_cp(tmp_path, "--event-retention", str(RETAIN)).start()
    try:
        nid, token = cp.create_node("retain")
        ra = agents.start(cp.base, token, "ret-a").wait_registered()
        wait_for(lambda: cp.active(nid) == ra, what="a active")
        rb = agents.start(cp.base, token, "ret-b").wait_registered()
        wait_for(lambda: cp.statuses(nid) == {ra: "active", rb: "passive"}, what="b passive")
        for target in (rb, ra, rb, ra, rb, ra):
            cp.ok("PUT", f"/accounts/{{a}}/warp_connector/{nid}/failover", json={"client_id": target})
        kept = _retained(cp, nid)
        current = kept[-1]
        assert current > 2 * RETAIN  # many more events happened than are kept
        assert kept == list(range(current - RETAIN + 1, current + 1))  # the table stays bounded
        url = f"{cp.base}/accounts/{cp.account}/warp_connector/{nid}/events"

        # a new subscriber (no Last-Event-ID) gets what is retained, no reset
        fresh = _read(url, cp.admin, None, RETAIN)
        assert [e["id"] for e in fresh] == kept and all(e["event"] != "reset" for e in fresh)
        # resuming from just before the oldest retained event is still complete
        edge = _read(url, cp.admin, kept[0] - 1, RETAIN)
        assert [e["id"] for e in edge] == kept
        # one further back: a gap, said with a reset event at the current generation, then live
        stale = SseReader(url, cp.admin, last_event_id=kept[0] - 2)
        try:
            wait_for(lambda: stale.events, timeout=5, what="reset event")
            (reset,) = stale.events
            assert reset["event"] == "reset" and reset["id"] == current
            data = reset["data"]
            assert isinstance(data, dict) and data["type"] == "reset" and data["oldest_retained"] == kept[0]
            assert data["requested"] == kept[0] - 2 and "re-read" in data["reason"]
            cp.ok("PUT", f"/accounts/{{a}}/warp_connector/{nid}/failover", json={"client_id": rb})
            wait_for(lambda: len(stale.events) >= 2, timeout=5, what="live event after the reset")
            assert stale.events[1]["id"] == current + 1 and stale.events[1]["event"] == "promoted"
        finally:
            stale.close()
        # an id from another history (newer than the node's generation) also resets
        ahead = _read(url, cp.admin, current + 100, 1)
        assert ahead[0]["event"] == "reset" and ahead[0]["id"] == current + 1
        bad = cp.get(f"/accounts/{{a}}/warp_connector/{nid}/events", headers={"Last-Event-ID": "-3"})
        assert bad.status_code == 400 and "Last-Event-ID" in bad.json()["errors"][0]["message"]

        # a lower retention applies at the next start
        cp.stop(signal.SIGTERM)
        cp.args += ["--event-retention", "2"]
        cp.start()
        assert _retained(cp, nid) == [current, current + 1]
    finally:
        with contextlib.suppress(Exception):
            cp.stop(signal.SIGKILL)


def test_rate_limit_per_token_with_retry_after(tmp_path: Path) -> None:
    limit, window = 6, 2
    cp = make_cp(tmp_path, "--rate-limit", f"{limit}/{window}").start()  # start() itself spends 1
    try:
        nid, node_token = cp.create_node("limited")  # 2 more from the admin budget
        read = cp.ok("POST", "/accounts/{a}/tokens", json={"name": "r", "scope": "read"})["value"]
        started = time.monotonic()
        for _ in range(limit):
            assert cp.get("/accounts/{a}/warp_connector", token=read).status_code == 200
        over = cp.get("/accounts/{a}/warp_connector", token=read)
        body = over.json()
        assert over.status_code == 429 and body["success"] is False and body["result"] is None
        (err,) = body["errors"]
        assert err["code"] == 10429 and f"More than {limit} requests per {window} seconds" in err["message"]
        wait = int(over.headers["retry-after"])
        assert 1 <= wait <= window
        assert over.headers["ratelimit-policy"] == f'"default";q={limit};w={window}'
        # refused requests do not count, and other tokens have their own budget
        assert cp.get("/accounts/{a}/warp_connector", token=read).status_code == 429
        assert cp.get("/accounts/{a}/warp_connector").status_code == 200  # admin
        # bad tokens are refused by authentication, not counted against anybody
        for _ in range(limit + 2):
            assert cp.get("/accounts", token="wrong").status_code == 401
        # replica-agent endpoints are never limited: heartbeats keep flowing
        rid = cp.ok("POST", "/connector/register", token=node_token, json={})["replica_id"]
        for _ in range(limit * 3):
            assert cp.request("POST", f"/connector/{rid}/heartbeat", token=node_token).status_code == 200
        assert cp.statuses(nid)[rid] == "active"
        # once retry-after has passed, the token works again
        time.sleep(max(0.0, started + wait + 0.1 - time.monotonic()))
        wait_for(
            lambda: cp.get("/accounts/{a}/warp_connector", token=read).status_code == 200,
            timeout=window + 2,
            interval=0.25,
            what="budget back",
        )
        assert httpx.get(cp.url + "/healthz").status_code == 200  # health is outside the API
    finally:
        with contextlib.suppress(Exception):
            cp.stop(signal.SIGKILL)
