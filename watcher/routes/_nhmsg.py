"""Nexthop-object netlink messages, which pyroute2 0.9.7 does not define.

Layouts from linux/nexthop.h and linux/rtnetlink.h: `struct nhmsg` is 8 bytes
(family, scope, protocol, resvd, flags:u32), attributes NHA_*. `rtmsg_nh` is pyroute2's rtmsg
with the attributes 24..30 spelled out, so a route's RTA_NH_ID (30) encodes and decodes.
"""

from __future__ import annotations

import socket
from typing import Any

from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE, NLM_F_REQUEST, nlmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

RTM_NEWNEXTHOP = 104
RTM_DELNEXTHOP = 105
RTM_GETNEXTHOP = 106
RTA_NH_ID = 30
RTNLGRP_NEXTHOP = 32

NHA_ID, NHA_GROUP, NHA_GROUP_TYPE, NHA_BLACKHOLE, NHA_OIF, NHA_GATEWAY = 1, 2, 3, 4, 5, 6


class nhmsg(nlmsg):  # type: ignore[misc]  # pyroute2 naming: message classes are lowercase
    """`struct nhmsg` + NHA_* attributes."""

    prefix = "NHA_"
    fields = (
        ("family", "B"),
        ("scope", "B"),
        ("protocol", "B"),
        ("resvd", "B"),
        ("flags", "I"),
    )
    nla_map = (
        ("NHA_UNSPEC", "none"),
        ("NHA_ID", "uint32"),
        ("NHA_GROUP", "cdata"),
        ("NHA_GROUP_TYPE", "uint16"),
        ("NHA_BLACKHOLE", "flag"),
        ("NHA_OIF", "uint32"),
        ("NHA_GATEWAY", "ipaddr"),
        ("NHA_ENCAP_TYPE", "uint16"),
        ("NHA_ENCAP", "cdata"),
        ("NHA_GROUPS", "flag"),
        ("NHA_MASTER", "uint32"),
        ("NHA_FDB", "flag"),
        ("NHA_RES_GROUP", "cdata"),
        ("NHA_RES_BUCKET", "cdata"),
        ("NHA_OP_FLAGS", "uint32"),
    )


class rtmsg_nh(rtmsg):  # type: ignore[misc]
    """rtmsg whose attribute map reaches RTA_NH_ID (30)."""

    # pyroute2 caches the compiled attribute map on the class (name-mangled); without these a
    # subclass created after rtmsg was used inherits rtmsg's map and drops RTA_NH_ID silently.
    _nlmsg_base__compiled_nla = False
    _nlmsg_base__t_nla_map = None
    _nlmsg_base__r_nla_map = None

    nla_map = (
        *rtmsg.nla_map,
        ("RTA_UNSPEC24", "none"),  # 24 is unused by the kernel
        ("RTA_UID", "uint32"),
        ("RTA_TTL_PROPAGATE", "uint8"),
        ("RTA_IP_PROTO", "uint8"),
        ("RTA_SPORT", "be16"),
        ("RTA_DPORT", "be16"),
        ("RTA_NH_ID", "uint32"),
    )


def _finish(msg: nlmsg, msg_type: int, flags: int, seq: int) -> bytes:
    msg["header"]["type"] = msg_type
    msg["header"]["flags"] = flags
    msg["header"]["sequence_number"] = seq
    msg["header"]["pid"] = 0
    msg.encode()
    return bytes(msg.data)


def encode_nexthop(
    op: str, nh_id: int, *, gateway: str | None = None, oif: int = 0, protocol: int = 0, seq: int = 0
) -> bytes:
    """One RTM_*NEXTHOP request: op is "replace" (create or replace), "del", "get" or "dump"."""
    msg = nhmsg()
    msg["family"] = socket.AF_UNSPEC
    attrs: list[list[Any]] = []
    if op == "dump":
        msg["attrs"] = []
        return _finish(msg, RTM_GETNEXTHOP, NLM_F_REQUEST | NLM_F_DUMP, seq)
    attrs.append(["NHA_ID", nh_id])
    if op == "replace":
        if gateway is None:
            raise ValueError("a nexthop replace needs a gateway")
        msg["family"] = socket.AF_INET6 if ":" in gateway else socket.AF_INET
        msg["protocol"] = protocol
        attrs += [["NHA_OIF", oif], ["NHA_GATEWAY", gateway]]
        msg["attrs"] = attrs
        return _finish(msg, RTM_NEWNEXTHOP, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, seq)
    msg["attrs"] = attrs
    if op == "del":
        return _finish(msg, RTM_DELNEXTHOP, NLM_F_REQUEST | NLM_F_ACK, seq)
    if op == "get":
        return _finish(msg, RTM_GETNEXTHOP, NLM_F_REQUEST | NLM_F_ACK, seq)
    raise ValueError(f"unknown nexthop op {op!r}")


def decode_nexthop(data: bytes) -> dict[str, Any]:
    """A received RTM_NEWNEXTHOP/DELNEXTHOP (with its nlmsghdr) as a plain dict."""
    msg = nhmsg(data)
    msg.decode()
    return {
        "type": msg["header"]["type"],
        "pid": msg["header"]["pid"],
        "family": msg["family"],
        "protocol": msg["protocol"],
        "id": msg.get_attr("NHA_ID"),
        "gateway": msg.get_attr("NHA_GATEWAY"),
        "oif": msg.get_attr("NHA_OIF") or 0,
        "blackhole": msg.get_attr("NHA_BLACKHOLE") is not None,
        "group": msg.get_attr("NHA_GROUP") is not None,
    }
