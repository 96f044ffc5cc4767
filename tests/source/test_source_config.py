"""SourceConfig validation (via the project's YAML loader) and /connections parsing."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from watcher._types import Replica
from watcher._yaml import ConfigError, parse_model
from watcher.cfapi import BadResponse
from watcher.source import NodeRef, SourceConfig, learned_routes, parse_listen, parse_replicas

BASE = "api: http://127.0.0.1:8787/client/v4\ntoken_file: /etc/mesh-watcher/token\n"


def test_defaults() -> None:
    cfg = parse_model(BASE, SourceConfig)
    assert (cfg.poll_interval, cfg.subscribe, cfg.webhook, cfg.timeout) == (2.0, "auto", None, 5.0)
    assert NodeRef(node_id="n").account_id is None


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ("poll_interval: 0.3\n", "3:.*poll_interval 0.3 s would use 1000 of the 1200 requests"),
        ("subscribe: always\n", "3: subscribe:"),
        ("pol_interval: 2\n", "3: pol_interval: Extra inputs are not permitted"),
        ("token: abc\n", "exactly one of token_file, token"),
        ("webhook: {listen: 127.0.0.1}\n", "webhook.listen:.*HOST:PORT"),
        ("webhook: {listen: '127.0.0.1:0'}\n", "exactly one of secret_file, secret"),
        ("learn_routes: true\nrouting_interval: 1\n", "routing_interval"),
        (
            "poll_interval: 0.9\nlearn_routes: true\nroutes_interval: 1\n",
            "3: poll_interval:.*would use 633 of the 1200",
        ),
    ],
)
def test_bad_config_names_line_and_key(extra: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        parse_model(BASE + extra, SourceConfig, "w.yaml")


def test_budget_rule_follows_rate_limit_setting() -> None:
    cfg = parse_model(
        BASE + "poll_interval: 0.3\nrate_limit: {requests: 100000, period: 300}\n", SourceConfig
    )
    assert cfg.poll_interval == 0.3


def test_token_and_secret_files(tmp_path: Path) -> None:
    (tmp_path / "t").write_text("tok\n")
    (tmp_path / "s").write_text("")
    cfg = SourceConfig.model_validate(
        {
            "api": "http://x/client/v4",
            "token_file": tmp_path / "t",
            "webhook": {"listen": "[::1]:9201", "secret_file": tmp_path / "s"},
        }
    )
    assert cfg.read_token() == "tok"
    assert cfg.webhook is not None and parse_listen(cfg.webhook.listen) == ("::1", 9201)
    with pytest.raises(ValueError, match="is empty"):
        cfg.webhook.read_secret()
    with pytest.raises(ValueError, match="cannot read"):
        SourceConfig.model_validate({"api": "http://x", "token_file": tmp_path / "missing"}).read_token()


CONNECTIONS = [
    {
        "id": "r1",
        "arch": "linux_amd64",
        "version": "2025.1",
        "features": [],
        "run_at": "2026-01-01T00:00:00Z",
        "ha_status": "active",
        "conns": [
            {"id": "c1", "client_id": "r1", "colo_name": "LAB1", "origin_ip": "203.0.113.11"},
            {"id": "c2", "client_id": "r1", "colo_name": "LAB1", "origin_ip": "203.0.113.11"},
        ],
        "device_name": "gw-a",
        "platform": "linux",
        "transport": "masque",
        "mesh_ipv4": "100.96.0.2",
        "mesh_ipv6": "2001:db8:96::2",
        "lan_addresses": ["192.0.2.11", "2001:db8:1::b"],
    },
    {"id": "r2", "ha_status": "passive", "conns": []},  # Cloudflare-only fields
    {"id": "r3", "ha_status": "weird", "conns": None},
]


def test_parse_replicas_including_extension_fields() -> None:
    r1, r2, r3 = parse_replicas(CONNECTIONS)
    assert r1 == Replica(
        id="r1",
        ha_status="active",
        origin_ips=("203.0.113.11",),
        device_name="gw-a",
        lan_addresses=("192.0.2.11", "2001:db8:1::b"),
        mesh_ipv4="100.96.0.2",
        mesh_ipv6="2001:db8:96::2",
        version="2025.1",
        arch="linux_amd64",
        run_at="2026-01-01T00:00:00Z",
    )
    assert r2 == Replica(id="r2", ha_status="passive")
    assert r3.ha_status == "offline"  # unknown status is never taken for active
    with pytest.raises(BadResponse, match="without an id"):
        parse_replicas([{"ha_status": "active"}])
    with pytest.raises(BadResponse, match="twice"):
        parse_replicas([{"id": "a", "ha_status": "active"}, {"id": "a", "ha_status": "passive"}])


def test_learned_routes_are_other_nodes_only() -> None:
    routes = [
        {"id": "1", "network": "10.1.0.0/16", "tunnel_id": "mine"},
        {"id": "2", "network": "10.2.0.0/16", "tunnel_id": "other"},
        {"id": "3", "network": "2001:db8:5::/48", "tunnel_id": "other"},
        {"id": "4", "network": "10.3.0.0/16", "tunnel_id": "other", "deleted_at": "2026-01-01"},
        {"id": "5", "network": "bogus", "tunnel_id": "other"},
        {"id": "6", "network": "10.2.0.0/16", "tunnel_id": "third"},
    ]
    assert learned_routes(routes, "mine") == (
        ipaddress.ip_network("10.2.0.0/16"),
        ipaddress.ip_network("2001:db8:5::/48"),
    )
