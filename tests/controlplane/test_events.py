"""The event stream (order, resume with Last-Event-ID) and webhook delivery, against real processes."""

from __future__ import annotations

import time

import httpx
from cp_helpers import Agents, ControlPlane, SseReader, WebhookReceiver, wait_for


def test_sse_promotions_in_order_and_resume_misses_nothing(cp: ControlPlane, agents: Agents) -> None:
    nid, token = cp.create_node("sse")
    a, b = agents.start(cp.base, token, "sse-a"), agents.start(cp.base, token, "sse-b")
    ids = [a.wait_registered(), b.wait_registered()]
    wait_for(lambda: sorted(cp.statuses(nid).values()) == ["active", "passive"], what="both connected")
    url = f"{cp.base}/accounts/{cp.account}/warp_connector/{nid}/events"
    first = SseReader(url, cp.admin, last_event_id=0)
    promoted: list[str] = []

    def flip(n: int) -> None:
        for _ in range(n):
            target = next(r for r, s in cp.statuses(nid).items() if s == "passive")
            cp.ok("PUT", f"/accounts/{{a}}/warp_connector/{nid}/failover", json={"client_id": target})
            promoted.append(target)

    flip(4)
    wait_for(
        lambda: sum(e["event"] == "promoted" and e["data"]["reason"] == "manual" for e in first.events) == 4,
        what="first reader saw 4 manual promotions",
    )
    first.close()
    seen = list(first.events)
    last = seen[-1]["id"]
    flip(3)  # while nobody listens
    second = SseReader(url, cp.admin, last_event_id=last)
    flip(3)  # live again
    try:
        wait_for(
            lambda: (
                sum(e["event"] == "promoted" and e["data"]["reason"] == "manual" for e in second.events) == 6
            ),
            what="second reader saw 6 manual promotions",
        )
    finally:
        second.close()
    everything = seen + second.events
    gens = [e["id"] for e in everything]
    assert gens == list(range(1, len(gens) + 1)), gens  # no gap, no duplicate, in order
    assert all(e["data"]["generation"] == e["id"] and e["data"]["type"] == e["event"] for e in everything)
    manual = [
        e["data"]["replica_id"]
        for e in everything
        if e["event"] == "promoted" and e["data"]["reason"] == "manual"
    ]
    assert manual == promoted and set(manual) == set(ids)
    bad = cp.get(f"/accounts/{{a}}/warp_connector/{nid}/events", headers={"Last-Event-ID": "x"})
    assert bad.status_code == 400 and "Last-Event-ID" in bad.json()["errors"][0]["message"]
    # a read token may subscribe
    read = cp.ok("POST", "/accounts/{a}/tokens", json={"name": "r", "scope": "read"})["value"]
    with httpx.stream("GET", url, headers={"Authorization": f"Bearer {read}"}, timeout=5) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")


def test_webhook_delivery_with_secret_and_retries(cp: ControlPlane) -> None:
    good = WebhookReceiver()
    flaky = WebhookReceiver(statuses=[503, 503])
    try:
        hook = cp.ok(
            "POST",
            "/accounts/{a}/alerting/v3/destinations/webhooks",
            json={"name": "ops", "url": good.url, "secret": "s3cret"},
        )
        cp.ok(
            "POST",
            "/accounts/{a}/alerting/v3/destinations/webhooks",
            json={"name": "flaky", "url": flaky.url, "secret": "other"},
        )
        nid, token = cp.create_node("hooked")
        rid = cp.ok("POST", "/connector/register", token=token, json={"transport": "masque"})["replica_id"]
        # no heartbeats follow: the replica times out and the node goes down
        wait_for(lambda: len(good.calls) >= 3, what="three notifications")
        time.sleep(0.3)
        for headers, body in good.calls:
            assert headers["cf-webhook-auth"] == "s3cret"
            assert body["alert_type"] == "tunnel_health_event" and body["account_id"] == cp.account
            assert body["policy_id"] == hook["id"] and body["name"] == "ops" and body["alert_correlation_id"]
            assert body["data"]["tunnel_id"] == nid and body["data"]["tunnel_name"] == "hooked"
            assert isinstance(body["ts"], int) and body["text"]
        got = [(b["data"]["event"], b["data"]["new_status"], b["data"]["replica_id"]) for _, b in good.calls]
        assert ("promoted", "degraded", rid) in got or ("promoted", "inactive", rid) in got
        assert [g[1] for g in got if g[0] == "status"] == ["degraded", "down"]
        # the flaky receiver answered 503 twice: those notifications came again until accepted
        wait_for(lambda: len(flaky.calls) >= 5, what="retries")
        time.sleep(1.0)
        ids = [c[1]["alert_correlation_id"] for c in flaky.calls]
        assert len(ids) == 5 and len(set(ids)) == 3, ids
        assert all(h["cf-webhook-auth"] == "other" for h, _ in flaky.calls)
    finally:
        good.close()
        flaky.close()
