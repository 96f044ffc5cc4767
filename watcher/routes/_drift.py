"""The netlink event socket: what changed in the kernel that we did not do ourselves.

Notifications carry the port id of the socket whose request caused them (0 for the kernel's
own changes), so our own echoes are dropped by one header comparison, and everything else
about our table, our nexthop ids, links or addresses is handed to the actuator.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from ._codec import RTM_DELROUTE, RTM_NEWROUTE, Route, parse_route
from ._netlink import HDR, iter_messages, open_socket
from ._nhmsg import RTM_DELNEXTHOP, RTM_NEWNEXTHOP, RTNLGRP_NEXTHOP, decode_nexthop

log = logging.getLogger(__name__)

RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_ROUTE = 1, 5, 7
RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV6_ROUTE = 9, 11
GROUPS = (
    RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV6_ROUTE,
    RTNLGRP_NEXTHOP,
)  # fmt: skip
RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_DELADDR = 16, 17, 20, 21
_MAX_PER_WAKEUP = 512  # keep the event loop responsive during a storm of notifications


class Handlers:
    """What the watcher calls; `t` is the monotonic time the message was read."""

    def route(self, mtype: int, route: Route, t: float) -> None: ...
    def nexthop(self, mtype: int, nh: dict[str, Any], t: float) -> None: ...
    def link(self, family: int | None, t: float) -> None: ...
    def overflow(self, t: float) -> None: ...


class EventWatcher:
    def __init__(self, netns: str | None, handlers: Handlers, own_portid: Callable[[], int]) -> None:
        self._netns = netns
        self._h = handlers
        self._own = own_portid
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.table: int = 254
        self.messages = 0

    def start(self, table: int) -> None:
        self.table = table
        # 32 MiB: a cold install of 100k routes still overflows it; that ends in one resync.
        self._sock = open_socket(self._netns, groups=GROUPS, rcvbuf=32 << 20)
        self._sock.setblocking(False)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.fileno(), self._readable)

    def close(self) -> None:
        if self._sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def _readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        for _ in range(_MAX_PER_WAKEUP):
            try:
                buf = sock.recv(1 << 16)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    self._h.overflow(time.monotonic())
                    continue
                log.warning("netlink event socket: %s", exc)
                return
            self._dispatch(buf, time.monotonic())

    def _dispatch(self, buf: bytes, t: float) -> None:
        own = self._own()
        for off, length, mtype, _flags, _seq in iter_messages(buf):
            self.messages += 1
            if HDR.unpack_from(buf, off)[4] == own:
                continue
            if mtype in (RTM_NEWROUTE, RTM_DELROUTE):
                route = parse_route(buf, off, length)
                if route.table == self.table:
                    self._h.route(mtype, route, t)
            elif mtype in (RTM_NEWNEXTHOP, RTM_DELNEXTHOP):
                self._h.nexthop(mtype, decode_nexthop(bytes(buf[off : off + length])), t)
            elif mtype in (RTM_NEWLINK, RTM_DELLINK):
                self._h.link(None, t)
            elif mtype in (RTM_NEWADDR, RTM_DELADDR):
                self._h.link(buf[off + 16], t)  # ifaddrmsg.ifa_family
