"""Sockets inside a lab namespace (made through `Host.call`), used by the bench process itself.

The bench measures across namespaces on one clock: a TCP socket to the control plane and a
netlink monitor, both living in the router namespace but read by this process, so `t0` (just
before the request is written) and `t1` (the kernel's notification read) come from the same
`time.monotonic()`. A socket keeps the namespace it was created in.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..lab import Host


class _NetnsConnection(http.client.HTTPConnection):
    def __init__(self, lab_host: Host, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._lab_host = lab_host

    def connect(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = self._lab_host.call(socket.socket, family, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect((self.host, self.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock


class NetnsHttp:
    """A small HTTP client whose connections live in a lab host's namespace (e.g. the router's).
    Raw http.client, so a timed request can go on a connection made beforehand."""

    def __init__(
        self, lab_host: Host, host: str, port: int, *, token: str = "", timeout: float = 10.0
    ) -> None:
        self.lab_host, self.host, self.port, self.token, self.timeout = lab_host, host, port, token, timeout

    def connection(self) -> http.client.HTTPConnection:
        """A connected connection: connect before taking a timestamp, then send on it."""
        conn = _NetnsConnection(self.lab_host, self.host, self.port, self.timeout)
        conn.connect()
        return conn

    def headers(self, body: bytes | None) -> dict[str, str]:
        out = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if body is not None:
            out["Content-Type"] = "application/json"
        return out

    def raw(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        conn = self.connection()
        try:
            conn.request(method, path, body=data, headers=self.headers(data))
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """A control-plane API call; returns `result` or raises naming the call and the errors."""
        status, data = self.raw(method, path, body)
        try:
            doc = json.loads(data)
        except ValueError:
            raise RuntimeError(f"{method} {path}: HTTP {status}, not JSON: {data[:200]!r}") from None
        if not doc.get("success"):
            raise RuntimeError(f"{method} {path}: HTTP {status}: {doc.get('errors')}")
        return doc["result"]

    def get_text(self, path: str) -> str | None:
        """GET a page; None when nothing answers (yet)."""
        try:
            status, data = self.raw("GET", path)
        except OSError:
            return None
        return data.decode(errors="replace") if status == 200 else None


# -- netlink nexthop monitor ------------------------------------------------------------------
_NETLINK_ROUTE = 0
_SOL_NETLINK = 270
_NETLINK_ADD_MEMBERSHIP = 1
_RTNLGRP_NEXTHOP = 32  # above 31: joined by setsockopt, not the bind() group mask
_RTM_NEWNEXTHOP = 104
_NHA_ID, _NHA_GATEWAY = 1, 6
_NLMSG_HDR = struct.Struct("=LHHLL")


@dataclass(frozen=True, slots=True)
class NexthopEvent:
    at: float  # time.monotonic() when this process read it
    nh_id: int
    gateway: str | None


def parse_nexthops(data: bytes, at: float) -> list[NexthopEvent]:
    """RTM_NEWNEXTHOP messages in one netlink datagram -> events (other messages ignored)."""
    out: list[NexthopEvent] = []
    off = 0
    while off + _NLMSG_HDR.size <= len(data):
        length, mtype, _flags, _seq, _pid = _NLMSG_HDR.unpack_from(data, off)
        if length < _NLMSG_HDR.size:
            break
        if mtype == _RTM_NEWNEXTHOP:
            nh_id, gateway = 0, None
            pos, end = off + 16 + 8, off + length  # struct nhmsg is 8 bytes
            while pos + 4 <= end:
                alen, atype = struct.unpack_from("=HH", data, pos)
                if alen < 4:
                    break
                value = data[pos + 4 : pos + alen]
                if atype & 0x3FFF == _NHA_ID and len(value) == 4:
                    nh_id = struct.unpack("=L", value)[0]
                elif atype & 0x3FFF == _NHA_GATEWAY:
                    with contextlib.suppress(ValueError):
                        gateway = str(ipaddress.ip_address(value))
                pos += (alen + 3) & ~3
            out.append(NexthopEvent(at, nh_id, gateway))
        off += (length + 3) & ~3
    return out


class NexthopMonitor:
    """Collects the kernel's nexthop-object notifications in `netns` on a reader thread.

    The thread blocks in recv() (no GIL held), so a notification is timestamped as soon as the
    kernel queues it, not when the main thread gets round to it.
    """

    def __init__(self, host: Host) -> None:
        self._sock = host.call(socket.socket, socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_ROUTE)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self._sock.bind((0, 0))
        self._sock.setsockopt(_SOL_NETLINK, _NETLINK_ADD_MEMBERSHIP, _RTNLGRP_NEXTHOP)
        self._sock.settimeout(0.2)
        self._events: list[NexthopEvent] = []
        self._cond = threading.Condition()
        self._stop = False
        self.overruns = 0
        self._thread = threading.Thread(target=self._read, name="nexthop-monitor", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                data = self._sock.recv(1 << 16)
            except TimeoutError:
                continue
            except OSError:  # ENOBUFS: the kernel dropped some; counted, the run goes on
                if self._stop:
                    return
                self.overruns += 1
                continue
            at = time.monotonic()
            events = parse_nexthops(data, at)
            if events:
                with self._cond:
                    self._events.extend(events)
                    self._cond.notify_all()

    def mark(self) -> int:
        """A position: wait_for() looks only at events after it."""
        with self._cond:
            return len(self._events)

    def wait_for(self, since: int, wanted: dict[int, str], timeout: float) -> float | None:
        """Monotonic time at which every nexthop id in `wanted` was announced with its gateway
        (the latest of them), looking at events after `since`; None if not all within `timeout`."""
        deadline = time.monotonic() + timeout
        seen: dict[int, float] = {}
        pos = since
        with self._cond:
            while True:
                for ev in self._events[pos:]:
                    if wanted.get(ev.nh_id) == ev.gateway and ev.nh_id not in seen:
                        seen[ev.nh_id] = ev.at
                pos = len(self._events)
                if len(seen) == len(wanted):
                    return max(seen.values())
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=2)
        self._sock.close()
