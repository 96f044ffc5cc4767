"""Sockets inside a lab namespace, opened from the bench process itself.

The bench measures across namespaces on one clock: a TCP socket to the control plane and a
netlink monitor, both living in the router namespace but read by this process, so `t0` (just
before the request is written) and `t1` (the kernel's notification read) come from the same
`time.monotonic()`. A thread `setns()`es into the namespace, opens the socket and returns; a
socket keeps the namespace it was created in. Python 3.11 has no os.setns, hence ctypes.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import ipaddress
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def in_netns(netns: str, fn: Callable[[], T]) -> T:
    """Run `fn` on a thread that has joined network namespace `netns` (a name under /run/netns)."""
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        # A fresh thread's own namespace is restored before it ends, though the thread dies anyway.
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
        except OSError as exc:
            os.close(own)
            error.append(OSError(exc.errno, f"network namespace {netns!r}: {exc.strerror}"))
            return
        try:
            if _libc.setns(target, _CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns({netns}): {os.strerror(err)}")
            result.append(fn())
        except BaseException as exc:  # handed to the caller's thread
            error.append(exc)
        finally:
            _libc.setns(own, _CLONE_NEWNET)
            os.close(own)
            os.close(target)

    thread = threading.Thread(target=run, name=f"netns-{netns}")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


class _NetnsConnection(http.client.HTTPConnection):
    def __init__(self, netns: str, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._netns = netns

    def connect(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = in_netns(self._netns, lambda: socket.socket(family, socket.SOCK_STREAM))
        sock.settimeout(self.timeout)
        sock.connect((self.host, self.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock


class NetnsHttp:
    """A small HTTP client whose connections live in `netns` (e.g. the lab's router namespace)."""

    def __init__(self, netns: str, host: str, port: int, *, token: str = "", timeout: float = 10.0) -> None:
        self.netns, self.host, self.port, self.token, self.timeout = netns, host, port, token, timeout

    def connection(self) -> http.client.HTTPConnection:
        """A connected connection: connect before taking a timestamp, then send on it."""
        conn = _NetnsConnection(self.netns, self.host, self.port, self.timeout)
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

    def __init__(self, netns: str) -> None:
        def make() -> socket.socket:
            return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_ROUTE)

        self._sock = in_netns(netns, make)
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
