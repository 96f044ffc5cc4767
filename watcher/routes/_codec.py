"""Hand-packed route messages (the hot path) and a fast route parser for dumps and events.

A route request is a constant template around a varying (dst_len, seq, dst): the constant
attributes are packed once per (family, operation); each prefix costs one struct.pack and a
join. `tests/routes/test_codec.py` checks the bytes against pyroute2's own encoding.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import NamedTuple

from .._types import IPNetwork
from ._netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST

RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_MULTIPATH, RTA_TABLE = 1, 4, 5, 6, 9, 15
RTA_NH_ID = 30
RTN_UNICAST = 1
RT_SCOPE_UNIVERSE, RT_SCOPE_NOWHERE = 0, 255

_HDR_RT = struct.Struct("=IHHIIBBBBBBBBI")  # nlmsghdr + rtmsg
_RTMSG = struct.Struct("=BBBBBBBBI")
_ATTR_U32 = struct.Struct("=HHI")
_ATTR_HDR = struct.Struct("=HH")
ADDR_LEN: dict[int, int] = {int(socket.AF_INET): 4, int(socket.AF_INET6): 16}

RouteKey = tuple[int, bytes, int]  # (family, packed network address, prefix length)


AF4, AF6 = int(socket.AF_INET), int(socket.AF_INET6)


def key_of(net: IPNetwork) -> RouteKey:
    return (AF4 if net.version == 4 else AF6, net.network_address.packed, net.prefixlen)


def key_str(key: RouteKey) -> str:
    family, dst, plen = key
    return f"{socket.inet_ntop(family, dst)}/{plen}"


class Route(NamedTuple):
    family: int
    dst: bytes
    dst_len: int
    src_len: int
    tos: int
    table: int
    proto: int
    rtype: int
    metric: int
    nh_id: int
    gateway: bytes | None
    oif: int
    multipath: bool

    @property
    def key(self) -> RouteKey:
        return (self.family, self.dst, self.dst_len)


def parse_route(buf: bytes, off: int, length: int) -> Route:
    family, dst_len, src_len, tos, table, proto, _scope, rtype, _flags = _RTMSG.unpack_from(buf, off + 16)
    alen = ADDR_LEN.get(family, 0)
    dst = b""
    metric = nh_id = oif = 0
    gateway: bytes | None = None
    multipath = False
    pos, end = off + 28, off + length
    unpack_hdr = _ATTR_HDR.unpack_from
    while pos + 4 <= end:
        la, ta = unpack_hdr(buf, pos)
        if la < 4:
            break
        if ta == RTA_DST:
            dst = buf[pos + 4 : pos + la]
        elif ta == RTA_PRIORITY:
            metric = struct.unpack_from("=I", buf, pos + 4)[0]
        elif ta == RTA_TABLE:
            table = struct.unpack_from("=I", buf, pos + 4)[0]
        elif ta == RTA_NH_ID:
            nh_id = struct.unpack_from("=I", buf, pos + 4)[0]
        elif ta == RTA_GATEWAY:
            gateway = buf[pos + 4 : pos + la]
        elif ta == RTA_OIF:
            oif = struct.unpack_from("=I", buf, pos + 4)[0]
        elif ta == RTA_MULTIPATH:
            multipath = True
        pos += (la + 3) & ~3
    if not dst:
        dst = bytes(alen)
    return Route(
        family, dst, dst_len, src_len, tos, table, proto, rtype, metric, nh_id, gateway, oif, multipath
    )


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """What our routes look like: where (table, metric), whose (proto) and where to (nh)."""

    table: int
    metric: int
    proto: int


class RouteEncoder:
    """Pre-encoded route requests for one family and one next hop (an id, or gateway+oif)."""

    def __init__(
        self, family: int, spec: RouteSpec, *, nh_id: int = 0, gateway: bytes | None = None, oif: int = 0
    ) -> None:
        self.family = family
        self.spec = spec
        alen = ADDR_LEN[family]
        common = _ATTR_U32.pack(8, RTA_TABLE, spec.table) + _ATTR_U32.pack(8, RTA_PRIORITY, spec.metric)
        if nh_id:
            target = _ATTR_U32.pack(8, RTA_NH_ID, nh_id)
        elif gateway is not None:
            target = _ATTR_HDR.pack(4 + alen, RTA_GATEWAY) + gateway + _ATTR_U32.pack(8, RTA_OIF, oif)
        else:
            target = b""
        self._new_tail = common + target
        self._del_tail = common
        self._dst_hdr = _ATTR_HDR.pack(4 + alen, RTA_DST)
        self._tbl8 = spec.table if spec.table < 256 else 0  # RTA_TABLE carries the real id
        self._new_len = 16 + 12 + len(self._new_tail) + 4 + alen
        self._del_len = 16 + 12 + len(self._del_tail) + 4 + alen

    def new(self, key: RouteKey, seq: int, *, exclusive: bool = False) -> bytes:
        flags = NLM_F_REQUEST | NLM_F_CREATE | (NLM_F_EXCL if exclusive else NLM_F_REPLACE)
        head = _HDR_RT.pack(
            self._new_len, RTM_NEWROUTE, flags, seq, 0,
            self.family, key[2], 0, 0, self._tbl8, self.spec.proto, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0,
        )  # fmt: skip
        return b"".join((head, self._new_tail, self._dst_hdr, key[1]))

    def delete(self, key: RouteKey, seq: int) -> bytes:
        # proto set: the kernel then deletes only a route with our protocol, never a foreign one.
        head = _HDR_RT.pack(
            self._del_len, RTM_DELROUTE, NLM_F_REQUEST, seq, 0,
            self.family, key[2], 0, 0, self._tbl8, self.spec.proto, RT_SCOPE_NOWHERE, RTN_UNICAST, 0,
        )  # fmt: skip
        return b"".join((head, self._del_tail, self._dst_hdr, key[1]))


def encode_route_dump(family: int, table: int, seq: int) -> bytes:
    # NETLINK_GET_STRICT_CHK makes the kernel filter the dump by table.
    attr = _ATTR_U32.pack(8, RTA_TABLE, table)
    return _HDR_RT.pack(
        16 + 12 + 8, RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq, 0,
        family, 0, 0, 0, table if table < 256 else 0, 0, 0, 0, 0,
    ) + attr  # fmt: skip


def encode_route_get(family: int, dst: bytes, seq: int) -> bytes:
    attr = _ATTR_HDR.pack(4 + len(dst), RTA_DST) + dst
    return _HDR_RT.pack(
        16 + 12 + len(attr), RTM_GETROUTE, NLM_F_REQUEST | NLM_F_ACK, seq, 0,
        family, len(dst) * 8, 0, 0, 0, 0, 0, 0, 0,
    ) + attr  # fmt: skip


def set_seq(msg: bytes, seq: int) -> bytes:
    return msg[:8] + struct.pack("=I", seq) + msg[12:]
