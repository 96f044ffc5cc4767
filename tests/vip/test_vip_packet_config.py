"""Advert encoding/validation (both IPv4 checksum forms) and VipConfig validation."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from vip_lab import VIP4

from watcher._yaml import ConfigError, parse_model
from watcher.vip import VipConfig, build_advert, build_packet, parse_advert
from watcher.vip._packet import GROUP4, GROUP6, inet_checksum

SRC4, PEER4 = ipaddress.ip_address("192.0.2.11"), ipaddress.ip_address("192.0.2.12")
SRC6 = ipaddress.ip_address("fe80::1")
V4 = [ipaddress.ip_address(VIP4)]
V6 = [ipaddress.ip_address("fe80::254"), ipaddress.ip_address("2001:db8:1::254")]


def adv(**kw: object) -> bytes:
    args: dict[str, object] = {"src": SRC4, "dst": GROUP4, "vrid": 51, "priority": 200, "interval": 0.1}
    args["addresses"] = V4
    args.update(kw)
    return build_advert(**args)  # type: ignore[arg-type]


def parse(msg: bytes, **kw: object) -> object:
    args: dict[str, object] = {"src": SRC4, "dst": GROUP4, "ttl": 255, "vrid": 51, "mode": "pseudo-header"}
    args.update(kw)
    return parse_advert(msg, **args)  # type: ignore[arg-type]


def test_scapy_and_our_pseudo_header_checksum_agree() -> None:
    from scapy.layers.inet import IP
    from scapy.layers.vrrp import VRRPv3

    ours = adv()
    theirs = bytes((IP(src=str(SRC4), dst=str(GROUP4), ttl=255) / VRRPv3(vrid=51, priority=200, adv=10,
                    addrlist=[VIP4]))[VRRPv3])  # fmt: skip
    assert ours == theirs
    assert ours[0] == 0x31 and ours[1] == 51 and ours[2] == 200 and ours[3] == 1
    assert struct.unpack("!H", ours[4:6])[0] == 10  # centiseconds


def test_rfc9568_checksum_covers_message_only() -> None:
    msg = adv(mode="rfc9568")
    assert inet_checksum(msg) == 0  # self-verifying without any pseudo-header
    assert msg != adv()
    got = parse(msg, mode="rfc9568")
    assert not isinstance(got, str) and got.priority == 200 and got.max_adver_int == 0.1
    assert parse(msg, mode="pseudo-header") == "bad_checksum"
    assert parse(adv(), mode="rfc9568") == "bad_checksum"


def test_ipv6_always_pseudo_header_even_in_rfc9568_mode() -> None:
    msg = build_advert(
        src=SRC6, dst=GROUP6, vrid=51, priority=100, interval=1.0, addresses=V6, mode="rfc9568"
    )
    assert msg == build_advert(src=SRC6, dst=GROUP6, vrid=51, priority=100, interval=1.0, addresses=V6)
    got = parse_advert(msg, src=SRC6, dst=GROUP6, ttl=255, vrid=51, mode="rfc9568")
    assert not isinstance(got, str) and got.addresses == tuple(V6)


def test_unicast_accepts_both_keepalived_checksum_forms() -> None:
    new = adv(dst=PEER4)
    old = adv(dst=PEER4, checksum_dst=GROUP4)
    assert new != old
    for msg in (new, old):
        assert not isinstance(parse(msg, dst=PEER4), str)


@pytest.mark.parametrize(
    ("mutate", "kw", "reason"),
    [
        (lambda m: m, {"ttl": 64}, "bad_ttl"),
        (lambda m: m, {"vrid": 52}, "bad_vrid"),
        (lambda m: m[:6] + b"\0\0" + m[8:], {}, "bad_checksum"),
        (lambda m: m[:5], {}, "malformed"),
        (lambda m: m[:10], {}, "malformed"),  # count says 1 address, 2 bytes present
        (lambda m: bytes([0x21]) + m[1:], {}, "bad_version"),
        (lambda m: bytes([0x32]) + m[1:], {}, "bad_type"),
        (lambda m: m, {"allowed": {PEER4}}, "not_allowed"),
        (lambda m: m, {"own": {SRC4}}, "own_packet"),
    ],
)
def test_drop_reasons(mutate: object, kw: dict[str, object], reason: str) -> None:
    assert parse(mutate(adv()), **kw) == reason  # type: ignore[operator]


def test_zero_interval_is_dropped() -> None:
    assert parse(adv(interval=0.0)) == "bad_interval"


def test_build_packet_carries_ttl_and_valid_checksum() -> None:
    pkt = build_packet(src=SRC4, dst=GROUP4, vrid=51, priority=1, interval=1.0, addresses=V4, ttl=64)
    assert pkt[8] == 64 and pkt[9] == 112
    assert not isinstance(parse(pkt[20:]), str)
    bad = build_packet(
        src=SRC4, dst=GROUP4, vrid=51, priority=1, interval=1.0, addresses=V4, corrupt_checksum=True
    )
    assert parse(bad[20:]) == "bad_checksum"


def test_config_defaults_and_families() -> None:
    cfg = VipConfig(interface="eth0", vrid=7, addresses=["192.0.2.254", "fe80::254", "2001:db8:1::254/64"])
    assert cfg.families() == [4, 6]
    assert cfg.advert_interval == 1.0 and cfg.priority_active == 250 and cfg.priority_passive == 100
    assert cfg.checksum_mode == "pseudo-header" and cfg.preempt
    assert cfg.allowlist_for(4) is None
    uni = VipConfig(interface="eth0", vrid=7, addresses=["192.0.2.254"], unicast_peers=["192.0.2.12"])
    assert uni.allowlist_for(4) == {PEER4}


@pytest.mark.parametrize(
    ("yaml_text", "fragment"),
    [
        ("interface: eth0\nvrid: 0\naddresses: [192.0.2.254]\n", "vrid"),
        ("interface: eth0\nvrid: 1\naddresses: [2001:db8:1::254]\n", "link-local"),
        ("interface: eth0\nvrid: 1\naddresses: [192.0.2.254]\nadvert_interval: 0.015\n", "centiseconds"),
        ("interface: eth0\nvrid: 1\naddresses: [192.0.2.254]\nadvert_interval: 41\n", "advert_interval"),
        ("interface: eth0\nvrid: 1\naddresses: [192.0.2.254]\npriority_active: 255\n", "priority_active"),
        ("interface: eth0\nvrid: 1\naddresses: [192.0.2.254]\nchecksum_mode: v2\n", "checksum_mode"),
        ("interface: eth0\nvrid: 1\naddresses: [192.0.2.254]\nuse_virtual_mac: true\n", "not supported"),
        ("interface: eth0\nvrid: 1\naddresses: [192.0.2.254]\nbogus: 1\n", "bogus"),
        ("interface: eth0\nvrid: 1\naddresses: [224.0.0.5]\n", "cannot be a virtual"),
        ("interface: eth0\nvrid: 1\naddresses: []\n", "addresses"),
        ("interface: eth0\nvrid: 1\naddresses: [192.0.2.254]\ngarp: {count: 0}\n", "garp.count"),
    ],
)
def test_config_errors_name_the_key(yaml_text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_model(yaml_text, VipConfig, "vip.yaml")
    assert fragment in str(err.value) and "vip.yaml:" in str(err.value)
