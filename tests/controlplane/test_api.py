"""Every endpoint against a real `mesh-watcher control-plane` process: results and error envelopes."""

from __future__ import annotations

import re
import stat
from typing import Any

import httpx
from cp_helpers import ControlPlane


def _error(resp: httpx.Response, status: int) -> dict[str, Any]:
    body = resp.json()
    assert resp.status_code == status, (resp.status_code, body)
    assert body["success"] is False and body["result"] is None and body["messages"] == []
    (err,) = body["errors"]
    assert isinstance(err["code"], int) and err["code"] >= 1000
    return dict(err)


def test_health_openapi_and_account(shared_cp: ControlPlane) -> None:
    assert httpx.get(shared_cp.url + "/healthz").status_code == 200
    assert httpx.get(shared_cp.url + "/readyz").json()["result"]["status"] == "ready"
    spec = httpx.get(shared_cp.base + "/openapi.json").json()
    assert "/client/v4/accounts/{account_id}/warp_connector/{tunnel_id}/failover" in spec["paths"]
    accounts = shared_cp.ok("GET", "/accounts")
    assert len(accounts) == 1 and re.fullmatch(r"[0-9a-f]{32}", accounts[0]["id"])
    mode = stat.S_IMODE((shared_cp.state_dir / "admin.token").stat().st_mode)
    assert mode == 0o600


def test_node_lifecycle(shared_cp: ControlPlane) -> None:
    cp = shared_cp
    node = cp.ok("POST", "/accounts/{a}/warp_connector", json={"name": "life", "ha": True})
    assert node["status"] == "inactive" and node["metadata"] == {"ha": True}
    assert node["tun_type"] == "warp_connector" and node["account_tag"] == cp.account
    assert node["conns_active_at"] is None and node["deleted_at"] is None
    nid = node["id"]
    assert cp.node(nid)["name"] == "life"
    err = _error(cp.request("POST", "/accounts/{a}/warp_connector", json={"name": "life"}), 409)
    assert "life" in err["message"]
    # PATCH: the name may change, HA may not.
    assert cp.ok("PATCH", f"/accounts/{{a}}/warp_connector/{nid}", json={"name": "life2"})["name"] == "life2"
    err = _error(cp.request("PATCH", f"/accounts/{{a}}/warp_connector/{nid}", json={"ha": False}), 400)
    assert err["message"].startswith("ha:") and "created" in err["message"]
    assert cp.node(nid)["metadata"] == {"ha": True}
    # the node token is stable and shaped like cloudflared's
    token = cp.ok("GET", f"/accounts/{{a}}/warp_connector/{nid}/token")
    assert token == cp.ok("GET", f"/accounts/{{a}}/warp_connector/{nid}/token")
    assert cp.ok("GET", f"/accounts/{{a}}/warp_connector/{nid}/connections") == []
    err = _error(cp.get(f"/accounts/{{a}}/warp_connector/{nid}/connectors/nope"), 404)
    assert "nope" in err["message"]
    deleted = cp.ok("DELETE", f"/accounts/{{a}}/warp_connector/{nid}")
    assert deleted["deleted_at"] is not None
    names = [n["name"] for n in cp.ok("GET", "/accounts/{a}/warp_connector")]
    assert "life2" not in names
    gone = cp.ok("GET", "/accounts/{a}/warp_connector?is_deleted=true")
    assert nid in [n["id"] for n in gone]
    _error(cp.request("PATCH", f"/accounts/{{a}}/warp_connector/{nid}", json={"name": "x"}), 404)
    # the deleted node's token no longer works
    _error(cp.request("POST", "/connector/register", token=token, json={"transport": "masque"}), 401)


def test_pagination_and_filters(shared_cp: ControlPlane) -> None:
    cp = shared_cp
    for i in range(5):
        cp.create_node(f"page-{i}")
    resp = cp.get("/accounts/{a}/warp_connector?per_page=2&page=2").json()
    info = resp["result_info"]
    assert info["page"] == 2 and info["per_page"] == 2 and info["count"] == 2 and info["total_count"] >= 5
    one = cp.ok("GET", "/accounts/{a}/warp_connector?name=page-3")
    assert [n["name"] for n in one] == ["page-3"]
    err = _error(cp.get("/accounts/{a}/warp_connector?per_page=0"), 400)
    assert "per_page" in err["message"]
    err = _error(cp.get("/accounts/{a}/warp_connector?page=abc"), 400)
    assert "page" in err["message"]


def test_bad_bodies_name_the_field(shared_cp: ControlPlane) -> None:
    cp = shared_cp
    err = _error(cp.request("POST", "/accounts/{a}/warp_connector", json={"ha": True}), 400)
    assert err["code"] == 1001 and "name" in err["message"]
    err = _error(cp.request("POST", "/accounts/{a}/warp_connector", json={"name": "x", "hha": 1}), 400)
    assert "hha" in err["message"]
    err = _error(cp.request("POST", "/accounts/{a}/warp_connector", json={"name": "x", "ha": "maybe"}), 400)
    assert "ha" in err["message"]
    err = _error(
        cp.request(
            "POST",
            "/accounts/{a}/warp_connector",
            content=b"{nope",
            headers={"content-type": "application/json"},
        ),
        400,
    )
    assert "JSON" in err["message"]
    # a field we cannot honour is refused, not dropped (the route would not be what was asked)
    body = {"network": "10.77.0.0/16", "tunnel_id": "x", "virtual_network_id": "vnet-1"}
    err = _error(cp.request("POST", "/accounts/{a}/teamnet/routes", json=body), 400)
    assert err["message"].startswith("virtual_network_id:") and "not supported" in err["message"]
    assert _error(cp.get("/no/such/path"), 404)["code"] == 7003
    assert _error(cp.request("DELETE", "/accounts"), 405)["code"] == 7001
    err = _error(cp.get("/accounts/{a}/warp_connector/00000000-0000-0000-0000-000000000000"), 404)
    assert err["code"] == 1003 and "00000000" in err["message"]


def test_routes(shared_cp: ControlPlane) -> None:
    cp = shared_cp
    n1, _ = cp.create_node("routes-1")
    n2, _ = cp.create_node("routes-2")
    route = cp.ok(
        "POST",
        "/accounts/{a}/teamnet/routes",
        json={"network": "10.20.0.0/16", "tunnel_id": n1, "comment": "site A"},
    )
    assert route["network"] == "10.20.0.0/16" and route["tunnel_id"] == n1 and route["comment"] == "site A"
    assert route["created_at"] and route["deleted_at"] is None
    rid = route["id"]
    assert cp.ok("GET", f"/accounts/{{a}}/teamnet/routes/{rid}")["id"] == rid
    err = _error(
        cp.request("POST", "/accounts/{a}/teamnet/routes", json={"network": "10.20.0.0/16", "tunnel_id": n2}),
        409,
    )
    assert "10.20.0.0/16" in err["message"]
    err = _error(
        cp.request("POST", "/accounts/{a}/teamnet/routes", json={"network": "10.20.0.1/16", "tunnel_id": n2}),
        400,
    )
    assert err["message"].startswith("network:")
    err = _error(
        cp.request(
            "POST", "/accounts/{a}/teamnet/routes", json={"network": "2001:db8:5::/48", "tunnel_id": "nope"}
        ),
        400,
    )
    assert "tunnel_id" in err["message"]
    v6 = cp.ok("POST", "/accounts/{a}/teamnet/routes", json={"network": "2001:db8:5::/48", "tunnel_id": n2})
    only_n2 = cp.ok("GET", f"/accounts/{{a}}/teamnet/routes?tunnel_id={n2}")
    assert [r["id"] for r in only_n2] == [v6["id"]]
    patched = cp.ok(
        "PATCH", f"/accounts/{{a}}/teamnet/routes/{rid}", json={"comment": "moved", "tunnel_id": n2}
    )
    assert patched["comment"] == "moved" and patched["tunnel_id"] == n2
    assert cp.ok("DELETE", f"/accounts/{{a}}/teamnet/routes/{rid}")["deleted_at"] is not None
    assert rid not in [r["id"] for r in cp.ok("GET", "/accounts/{a}/teamnet/routes")]
    _error(cp.request("DELETE", f"/accounts/{{a}}/teamnet/routes/{rid}"), 404)
    _error(cp.get("/accounts/{a}/teamnet/routes/nope"), 404)
    # the network is free again once its route is deleted
    cp.ok("POST", "/accounts/{a}/teamnet/routes", json={"network": "10.20.0.0/16", "tunnel_id": n1})


def test_auth_refusals(shared_cp: ControlPlane) -> None:
    cp = shared_cp
    nodes = "/accounts/{a}/warp_connector"
    err = _error(cp.get(nodes, token=None), 401)
    assert err["code"] == 10000
    _error(cp.get(nodes, token="not-a-token"), 401)
    _error(cp.request("POST", nodes, token=None, json={"bad": 1}), 401)  # auth before body validation
    read = cp.ok("POST", "/accounts/{a}/tokens", json={"name": "ro", "scope": "read"})
    write = cp.ok("POST", "/accounts/{a}/tokens", json={"name": "rw", "scope": "write"})
    assert read["scope"] == "read" and read["value"]
    assert cp.ok("GET", nodes, token=read["value"]) is not None
    err = _error(cp.request("POST", nodes, token=read["value"], json={"name": "ro-node"}), 403)
    assert "write" in err["message"]
    nid = cp.ok("POST", nodes, token=write["value"], json={"name": "rw-node"})["id"]
    err = _error(
        cp.request("POST", "/accounts/{a}/tokens", token=write["value"], json={"name": "x", "scope": "read"}),
        403,
    )
    assert "admin" in err["message"]
    _error(cp.get(f"{nodes}/{nid}/token", token=read["value"]), 403)
    listed = cp.ok("GET", "/accounts/{a}/tokens")
    assert {"ro", "rw"} <= {t["name"] for t in listed} and all(
        "value" not in t and "hash" not in t for t in listed
    )
    _error(cp.get("/accounts/0123456789abcdef0123456789abcdef/warp_connector", token=read["value"]), 403)
    # a node token: only its own node's agent endpoints
    _other, other_token = cp.create_node("auth-other")
    _mine, my_token = cp.create_node("auth-mine")
    err = _error(cp.get(nodes, token=my_token), 403)
    assert "replica-agent" in err["message"]
    _error(cp.get("/accounts", token=my_token), 403)
    theirs = cp.ok("POST", "/connector/register", token=other_token, json={"transport": "masque"})
    err = _error(
        cp.request("POST", f"/connector/{theirs['replica_id']}/heartbeat", token=my_token, json={}), 404
    )
    assert theirs["replica_id"] in err["message"]
    _error(cp.request("POST", "/connector/register", token=read["value"], json={}), 403)
    # a revoked token stops working at once
    cp.ok("DELETE", f"/accounts/{{a}}/tokens/{read['id']}")
    _error(cp.get(nodes, token=read["value"]), 401)
    _error(cp.request("DELETE", f"/accounts/{{a}}/tokens/{read['id']}"), 404)
    # tokens never reach the log (the control plane runs with -vv: access log and debug on)
    log = cp.current_log.read_text()
    assert "GET /client/v4/accounts/" in log
    for secret in (cp.admin, write["value"], my_token, other_token):
        assert secret not in log


def test_agent_endpoints_and_failover_errors(shared_cp: ControlPlane) -> None:
    cp = shared_cp
    nid, token = cp.create_node("agent-ep")
    reg = cp.ok(
        "POST",
        "/connector/register",
        token=token,
        json={
            "transport": "masque",
            "arch": "linux_amd64",
            "platform": "linux",
            "version": "9.9",
            "device_name": "box1",
            "lan_addresses": ["192.0.2.11", "2001:db8:1::b"],
        },
    )
    assert reg["ha_status"] == "active" and reg["tunnel_id"] == nid and reg["account_tag"] == cp.account
    assert reg["heartbeat_interval"] == 0.2 and reg["detection_timeout"] == 0.8
    assert reg["mesh_ipv4"].startswith("100.") and reg["mesh_ipv6"].startswith("2001:db8:96:")
    rid = reg["replica_id"]
    hb = cp.ok("POST", f"/connector/{rid}/heartbeat", token=token, json={"lan_addresses": ["192.0.2.12"]})
    assert hb["ha_status"] == "active" and hb["generation"] >= 3
    one = cp.ok("GET", f"/accounts/{{a}}/warp_connector/{nid}/connectors/{rid}")
    assert one["device_name"] == "box1" and one["platform"] == "linux" and one["version"] == "9.9"
    assert one["lan_addresses"] == ["192.0.2.12"] and one["transport"] == "masque"
    (conn,) = one["conns"]
    assert conn["client_id"] == rid and conn["colo_name"] == "LAB1" and conn["origin_ip"] == "127.0.0.1"
    assert conn["opened_at"] and one["last_heartbeat_at"]
    err = _error(
        cp.request("POST", "/connector/register", token=token, json={"lan_addresses": ["nope"]}), 400
    )
    assert "lan_addresses" in err["message"]
    failover = f"/accounts/{{a}}/warp_connector/{nid}/failover"
    _error(cp.request("PUT", failover, json={"client_id": "unknown"}), 404)
    _error(cp.request("PUT", failover, json={}), 400)
    _other, other_token = cp.create_node("agent-ep-other")
    theirs = cp.ok("POST", "/connector/register", token=other_token, json={})["replica_id"]
    _error(cp.request("PUT", failover, json={"client_id": theirs}), 404)
    cp.ok("POST", f"/connector/{rid}/disconnect", token=token)
    err = _error(cp.request("PUT", failover, json={"client_id": rid}), 400)
    assert "offline" in err["message"]
    err = _error(cp.request("POST", f"/connector/{rid}/heartbeat", token=token, json={}), 409)
    assert "register" in err["message"]
    assert cp.statuses(nid) == {rid: "offline"} and cp.node(nid)["status"] == "down"
    # non-HA node: manual failover is refused; one replica at a time
    solo, solo_token = cp.create_node("solo", ha=False)
    first = cp.ok("POST", "/connector/register", token=solo_token, json={"transport": "wireguard"})
    assert first["ha_status"] == "active" and cp.node(solo)["status"] == "healthy"
    err = _error(
        cp.request("POST", "/connector/register", token=solo_token, json={"transport": "wireguard"}), 409
    )
    assert "HA" in err["message"]
    err = _error(
        cp.request(
            "PUT", f"/accounts/{{a}}/warp_connector/{solo}/failover", json={"client_id": first["replica_id"]}
        ),
        400,
    )
    assert "not an HA node" in err["message"]


def test_masque_rule(shared_cp: ControlPlane) -> None:
    nid, token = shared_cp.create_node("masque-only")
    err = _error(
        shared_cp.request("POST", "/connector/register", token=token, json={"transport": "wireguard"}), 400
    )
    assert "MASQUE" in err["message"]
    assert shared_cp.replicas(nid) == []


def test_webhook_destinations(shared_cp: ControlPlane) -> None:
    cp = shared_cp
    path = "/accounts/{a}/alerting/v3/destinations/webhooks"
    hook = cp.ok("POST", path, json={"name": "h", "url": "http://127.0.0.1:9/x", "secret": "s3"})
    assert "secret" not in hook
    assert hook["id"] in [h["id"] for h in cp.ok("GET", path)]
    assert cp.ok("GET", f"{path}/{hook['id']}")["url"] == "http://127.0.0.1:9/x"
    err = _error(cp.request("POST", path, json={"name": "h", "url": "ftp://x", "secret": "s"}), 400)
    assert err["message"].startswith("url:")
    write = cp.ok("POST", "/accounts/{a}/tokens", json={"name": "hookw", "scope": "write"})
    _error(cp.get(path, token=write["value"]), 403)
    cp.ok("DELETE", f"{path}/{hook['id']}")
    _error(cp.request("DELETE", f"{path}/{hook['id']}"), 404)
