"""Blocking kernel operations on our raw channel (callers run them in a worker thread)."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable, Sequence
from typing import Any

from ._codec import (
    RTM_NEWROUTE,
    Route,
    RouteEncoder,
    RouteKey,
    encode_route_dump,
    parse_route,
)
from ._netlink import Channel, NetlinkError
from ._nhmsg import RTM_NEWNEXTHOP, decode_nexthop, encode_nexthop

NO_NEXTHOP_SUPPORT = (errno.EOPNOTSUPP, errno.EINVAL, errno.EPROTONOSUPPORT, errno.ENOENT)


class Kernel:
    def __init__(self, netns: str | None) -> None:
        self.chan = Channel(netns)

    @property
    def portid(self) -> int:
        return self.chan.portid

    def close(self) -> None:
        self.chan.close()

    # nexthop objects ---------------------------------------------------------------
    def supports_nexthops(self) -> bool:
        try:
            self.nexthops()
        except NetlinkError as exc:
            if exc.code in NO_NEXTHOP_SUPPORT:
                return False
            raise
        return True

    def nexthops(self) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        for buf, off, length, mtype in self.chan.dump(encode_nexthop("dump", 0, seq=self.chan.next_seq())):
            if mtype == RTM_NEWNEXTHOP:
                nh = decode_nexthop(bytes(buf[off : off + length]))
                out[nh["id"]] = nh
        return out

    def nexthop_replace(self, nh_id: int, gateway: str, oif: int, proto: int) -> None:
        seq = self.chan.next_seq()
        self.chan.request(encode_nexthop("replace", nh_id, gateway=gateway, oif=oif, protocol=proto, seq=seq))

    def nexthop_delete(self, nh_id: int) -> None:
        try:
            self.chan.request(encode_nexthop("del", nh_id, seq=self.chan.next_seq()))
        except NetlinkError as exc:
            if exc.code != errno.ENOENT:
                raise

    # routes ------------------------------------------------------------------------
    def routes(self, family: int, table: int) -> list[Route]:
        out: list[Route] = []
        append = out.append
        for buf, off, length, mtype in self.chan.dump(encode_route_dump(family, table, self.chan.next_seq())):
            if mtype == RTM_NEWROUTE:
                append(parse_route(buf, off, length))
        # Without strict checking (old kernels) the dump holds every table: filter here too.
        return [r for r in out if r.table == table]

    def install(
        self, enc: RouteEncoder, replace: Sequence[RouteKey], create: Sequence[RouteKey] = ()
    ) -> dict[RouteKey, NetlinkError]:
        """Replace-or-create `replace`; create `create` only where the slot is free (EEXIST otherwise)."""
        keys = [*replace, *create]
        if not keys:
            return {}
        first = self.chan.next_seq(len(keys) + 1)
        n_rep = len(replace)
        msgs = [enc.new(k, first + i, exclusive=i >= n_rep) for i, k in enumerate(keys)]
        errors = self.chan.batch(msgs, first)
        return {keys[i]: err for i, err in errors.items()}

    def delete(self, enc: RouteEncoder, keys: Iterable[RouteKey]) -> dict[RouteKey, NetlinkError]:
        keys = list(keys)
        if not keys:
            return {}
        first = self.chan.next_seq(len(keys) + 1)
        errors = self.chan.batch([enc.delete(k, first + i) for i, k in enumerate(keys)], first)
        # Already gone (a link flap took it) is what we wanted.
        return {keys[i]: e for i, e in errors.items() if e.code not in (errno.ESRCH, errno.ENOENT)}


def family_name(family: int) -> str:
    return "ipv4" if family == socket.AF_INET else "ipv6"
