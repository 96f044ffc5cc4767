"""The `routes:` config section: defaults, strict prefixes, protocol numbers, file:line errors."""

from __future__ import annotations

import ipaddress

import pytest

from watcher._yaml import ConfigError, parse_model
from watcher.routes import RoutesConfig
from watcher.routes.config import TAKEN_PROTOCOLS


def test_defaults() -> None:
    cfg = RoutesConfig()
    assert (cfg.table, cfg.metric, cfg.protocol) == (254, 1024, 250)
    assert (cfg.nexthop_ids.ipv4, cfg.nexthop_ids.ipv6) == (0x6D770004, 0x6D770006)
    assert cfg.use_nexthop_objects == "auto" and cfg.withdraw_on_stop is False
    assert cfg.reconcile_interval == 30.0 and not cfg.learn.teamnet_routes


def test_parse_yaml() -> None:
    text = (
        "prefixes: [100.96.0.0/12, '2001:db8:96::/48']\ntable: 100\nprotocol: 251\n"
        "learn: {teamnet_routes: true}\n"
    )
    cfg = parse_model(text, RoutesConfig)
    assert cfg.prefixes == [ipaddress.ip_network("100.96.0.0/12"), ipaddress.ip_network("2001:db8:96::/48")]
    assert cfg.table == 100 and cfg.protocol == 251 and cfg.learn.teamnet_routes


@pytest.mark.parametrize("proto", sorted(TAKEN_PROTOCOLS))
def test_taken_protocols_rejected(proto: int) -> None:
    with pytest.raises(ConfigError, match=f"route protocol {proto} is already used"):
        parse_model(f"protocol: {proto}\n", RoutesConfig, "w.yaml")


@pytest.mark.parametrize("proto", [17, 43, 200, 250, 255])
def test_free_protocols_accepted(proto: int) -> None:
    assert parse_model(f"protocol: {proto}\n", RoutesConfig).protocol == proto


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("prefixes: [100.96.0.1/12]\n", "has host bits set"),
        ("prefixes: [nonsense]\n", "prefixes[0] 'nonsense'"),
        ("prefixes: [100.96.0.0/12, 100.96.0.0/12]\n", "listed twice"),
        ("protocol: 256\n", "less than or equal to 255"),
        ("table: 255\n", "local table"),
        ("nexthop_ids: {ipv4: 7, ipv6: 7}\n", "must differ"),
        ("use_nexthop_objects: maybe\n", "auto"),
        ("metrc: 5\n", "Extra inputs are not permitted"),
        ("learn: {teamnet: true}\n", "Extra inputs"),
    ],
)
def test_bad_input_names_line_and_key(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_model("# routes\n" + text, RoutesConfig, "w.yaml")
    assert "w.yaml:2:" in str(info.value)
    assert needle in str(info.value)
