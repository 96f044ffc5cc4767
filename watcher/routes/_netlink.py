"""A raw rtnetlink socket: opened inside a named netns, batched requests, fast dumps.

pyroute2 encodes ~2-3k routes/s; this module moves pre-encoded bytes instead. Messages go
out many per send(); the kernel handles a send() synchronously, so once it returns every
error for that buffer is already queued on our socket. Only the last message of a buffer
asks for an ACK (a barrier): errors come back anyway (the kernel always reports a failure),
so successes cost no ack skb.
"""

from __future__ import annotations

import contextlib
import errno as errno_mod
import os
import socket
import struct
import threading
from collections.abc import Iterator, Sequence

from .._netns import join_netns, netns_path

NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x2, 0x4, 0x300
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
NLM_F_ACK_TLVS = 0x200  # on an NLMSG_ERROR reply: extended-ack TLVs follow
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP, NETLINK_CAP_ACK, NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK = 1, 10, 11, 12
NLMSGERR_ATTR_MSG = 1

HDR = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_ERR = struct.Struct("=i")
SEND_CHUNK = 128 * 1024  # bytes of requests per send(): bounded ack/error backlog per buffer


class NetlinkError(OSError):
    """A kernel error for one request, with the extended-ack text when the kernel gave one."""

    def __init__(self, code: int, text: str = "") -> None:
        self.code = code
        self.text = text
        msg = os.strerror(code) + (f" ({text})" if text else "")
        super().__init__(code, msg)


def _in_netns(netns: str | None, make: object) -> socket.socket:
    """Run `make()` in a short-lived thread that joined `netns`: the socket stays bound to it."""
    if netns is None:
        return make()  # type: ignore[operator, no-any-return]
    netns_path(netns)  # fail here, in the caller, on a missing namespace
    result: dict[str, object] = {}

    def worker() -> None:
        try:
            join_netns(netns)
            result["sock"] = make()  # type: ignore[operator]
        except BaseException as exc:
            result["err"] = exc

    thread = threading.Thread(target=worker, name="netns-socket")
    thread.start()
    thread.join()
    if "err" in result:
        raise result["err"]  # type: ignore[misc]
    return result["sock"]  # type: ignore[return-value]


def open_socket(netns: str | None, *, groups: Sequence[int] = (), rcvbuf: int = 8 << 20) -> socket.socket:
    def make() -> socket.socket:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        try:
            for opt in (NETLINK_CAP_ACK, NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK):
                with contextlib.suppress(OSError):
                    sock.setsockopt(SOL_NETLINK, opt, 1)
            try:  # needs CAP_NET_ADMIN; the plain option is capped by rmem_max
                sock.setsockopt(socket.SOL_SOCKET, 33, rcvbuf)  # SO_RCVBUFFORCE
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            sock.bind((0, 0))
            for group in groups:
                sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)
        except BaseException:
            sock.close()
            raise
        return sock

    return _in_netns(netns, make)


def iter_messages(buf: bytes) -> Iterator[tuple[int, int, int, int, int]]:
    """(offset, length, type, flags, seq) of each message in a receive buffer."""
    off, end = 0, len(buf)
    unpack = HDR.unpack_from
    while off + 16 <= end:
        length, mtype, flags, seq, _pid = unpack(buf, off)
        if length < 16:
            break
        yield off, length, mtype, flags, seq
        off += (length + 3) & ~3


def parse_error(buf: bytes, off: int, length: int, flags: int) -> tuple[int, int, str]:
    """(errno, seq of the request, ext-ack text) of an NLMSG_ERROR message (errno 0 = ack)."""
    (err,) = _ERR.unpack_from(buf, off + 16)
    _len, _t, _f, inner_seq, _p = HDR.unpack_from(buf, off + 20)
    text = ""
    if err and flags & NLM_F_ACK_TLVS:
        # With NETLINK_CAP_ACK only the request's header is echoed; TLVs follow it.
        pos, end = off + 36, off + length
        while pos + 4 <= end:
            alen, atype = struct.unpack_from("=HH", buf, pos)
            if alen < 4:
                break
            if atype == NLMSGERR_ATTR_MSG:
                text = buf[pos + 4 : pos + alen].rstrip(b"\0").decode(errors="replace")
            pos += (alen + 3) & ~3
    return -err, inner_seq, text


class Channel:
    """Request/response on one netlink socket. Blocking: run it in a worker thread."""

    def __init__(self, netns: str | None) -> None:
        self.netns = netns
        self.sock = open_socket(netns)
        self.portid: int = self.sock.getsockname()[0]
        self._seq = 1

    def close(self) -> None:
        self.sock.close()

    def next_seq(self, count: int = 1) -> int:
        first = self._seq
        self._seq = (self._seq + count) & 0x7FFFFFFF or 1
        return first

    def _recv(self) -> bytes:
        return self.sock.recv(1 << 20)

    def batch(self, messages: Sequence[bytearray | bytes], first_seq: int) -> dict[int, NetlinkError]:
        """Send requests whose seq are first_seq+i; returns {index: error} for the failures.

        The caller encoded each message with seq = first_seq + index. The last message of each
        send buffer gets NLM_F_ACK here, so we know when that buffer is fully answered.
        """
        errors: dict[int, NetlinkError] = {}
        i, n = 0, len(messages)
        while i < n:
            parts: list[bytes | bytearray] = []
            size = 0
            while i < n and (size < SEND_CHUNK or not parts):
                parts.append(messages[i])
                size += len(messages[i])
                i += 1
            last = bytearray(parts[-1])
            struct.pack_into("=H", last, 6, struct.unpack_from("=H", last, 6)[0] | NLM_F_ACK)
            parts[-1] = last
            barrier = first_seq + i - 1
            self.sock.send(b"".join(parts))
            done = False
            while not done:
                buf = self._recv()
                for off, length, mtype, flags, _seq in iter_messages(buf):
                    if mtype != NLMSG_ERROR:
                        continue
                    code, seq, text = parse_error(buf, off, length, flags)
                    if code:
                        errors[seq - first_seq] = NetlinkError(code, text)
                    if seq == barrier:
                        done = True
        return errors

    def request(self, message: bytes | bytearray) -> None:
        """One request with its own ack; raises NetlinkError."""
        seq = struct.unpack_from("=I", message, 8)[0]
        self.sock.send(message)
        while True:
            buf = self._recv()
            for off, length, mtype, flags, mseq in iter_messages(buf):
                if mtype == NLMSG_ERROR and mseq == seq:
                    code, _s, text = parse_error(buf, off, length, flags)
                    if code:
                        raise NetlinkError(code, text)
                    return

    def dump(self, message: bytes | bytearray) -> Iterator[tuple[bytes, int, int, int]]:
        """Yield (buffer, offset, length, type) of each reply to a dump request."""
        seq = struct.unpack_from("=I", message, 8)[0]
        self.sock.send(message)
        while True:
            buf = self._recv()
            for off, length, mtype, flags, mseq in iter_messages(buf):
                if mseq != seq:
                    continue
                if mtype == NLMSG_DONE:
                    return
                if mtype == NLMSG_ERROR:
                    code, _s, text = parse_error(buf, off, length, flags)
                    if code:
                        raise NetlinkError(code, text)
                    return
                yield buf, off, length, mtype


def errno_name(code: int) -> str:
    return errno_mod.errorcode.get(code, str(code))
