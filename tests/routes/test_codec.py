"""Hand-packed messages agree with pyroute2's encoding and the kernel's layout."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from watcher.routes._codec import RouteEncoder, RouteSpec, key_of, parse_route
from watcher.routes._netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST
from watcher.routes._nhmsg import decode_nexthop, encode_nexthop, rtmsg_nh


def _pyroute2_route(net: str, table: int, attrs: list[list[object]], flags: int, seq: int) -> bytes:
    n = ipaddress.ip_network(net)
    msg = rtmsg_nh()
    msg["family"] = socket.AF_INET if n.version == 4 else socket.AF_INET6
    msg["dst_len"] = n.prefixlen
    msg["table"] = table if table < 256 else 0
    msg["proto"] = 250
    msg["scope"] = 0
    msg["type"] = 1
    msg["attrs"] = [["RTA_TABLE", table], ["RTA_PRIORITY", 1024], *attrs, ["RTA_DST", str(n.network_address)]]
    msg["header"]["type"] = 24
    msg["header"]["flags"] = flags
    msg["header"]["sequence_number"] = seq
    msg.encode()
    return bytes(msg.data)


@pytest.mark.parametrize("net", ["100.96.0.0/12", "0.0.0.0/0", "2001:db8:96::/48"])
@pytest.mark.parametrize("table", [254, 1000])
def test_nexthop_route_matches_pyroute2(net: str, table: int) -> None:
    n = ipaddress.ip_network(net)
    enc = RouteEncoder(key_of(n)[0], RouteSpec(table, 1024, 250), nh_id=0x6D770004)
    ours = enc.new(key_of(n), 77)
    flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE
    assert ours == _pyroute2_route(net, table, [["RTA_NH_ID", 0x6D770004]], flags, 77)
    excl = enc.new(key_of(n), 78, exclusive=True)
    excl_flags = flags ^ NLM_F_REPLACE | NLM_F_EXCL
    assert excl == _pyroute2_route(net, table, [["RTA_NH_ID", 0x6D770004]], excl_flags, 78)


def test_gateway_route_matches_pyroute2_and_parses_back() -> None:
    n = ipaddress.ip_network("2001:db8:96::/48")
    gw = socket.inet_pton(socket.AF_INET6, "2001:db8:1::b")
    enc = RouteEncoder(socket.AF_INET6, RouteSpec(254, 1024, 250), gateway=gw, oif=3)
    ours = enc.new(key_of(n), 5)
    flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE
    assert ours == _pyroute2_route(str(n), 254, [["RTA_GATEWAY", "2001:db8:1::b"], ["RTA_OIF", 3]], flags, 5)
    r = parse_route(ours, 0, len(ours))
    got = (r.key, r.metric, r.proto, r.table, r.gateway, r.oif, r.nh_id)
    assert got == (key_of(n), 1024, 250, 254, gw, 3, 0)


def test_nexthop_messages_round_trip() -> None:
    raw = encode_nexthop("replace", 0x6D770006, gateway="2001:db8:1::c", oif=4, protocol=250, seq=9)
    nh = decode_nexthop(raw)
    assert (nh["type"], nh["id"], nh["gateway"], nh["oif"], nh["protocol"], nh["family"]) == (
        104, 0x6D770006, "2001:db8:1::c", 4, 250, socket.AF_INET6,
    )  # fmt: skip
    assert decode_nexthop(encode_nexthop("del", 5, seq=1))["type"] == 105
    assert decode_nexthop(encode_nexthop("get", 5, seq=1))["id"] == 5
    assert raw[4:6] == (104).to_bytes(2, "little") and raw[6] & NLM_F_ACK
