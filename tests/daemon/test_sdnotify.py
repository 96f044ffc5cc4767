"""systemd notify protocol against a real unix datagram socket (path and abstract)."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from watcher._aio import wait_for
from watcher.daemon.sdnotify import Notifier


@pytest.fixture
def sock_path(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield sock, path
    sock.close()


def recv(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_ready_status_stopping_reloading(sock_path: tuple[socket.socket, str]) -> None:
    sock, path = sock_path
    n = Notifier({"NOTIFY_SOCKET": path})
    assert n.enabled
    assert n.ready("target r1 via 192.0.2.11")
    assert recv(sock) == ["READY=1", "STATUS=target r1 via 192.0.2.11"]
    assert n.status("hello")
    assert recv(sock) == ["STATUS=hello"]
    assert n.reloading()
    msg = recv(sock)
    assert msg[0] == "RELOADING=1" and msg[1].startswith("MONOTONIC_USEC=") and int(msg[1].split("=")[1]) > 0
    assert n.stopping()
    assert recv(sock) == ["STOPPING=1"]
    n.close()


def test_abstract_socket() -> None:
    name = f"mw-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    try:
        n = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert n.ready()
        assert recv(sock) == ["READY=1"]
    finally:
        sock.close()


def test_disabled_without_socket_and_survives_missing_listener(tmp_path: Path) -> None:
    assert not Notifier({}).ready()
    gone = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody")})
    assert gone.enabled and not gone.ready()  # logged, not raised


async def test_watchdog_pings_at_half_the_interval(sock_path: tuple[socket.socket, str]) -> None:
    sock, path = sock_path
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())})
    assert n.watchdog_interval() == pytest.approx(0.1)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(n.watchdog_loop())
    try:
        got = [await wait_for(loop.sock_recv(sock, 100), 5) for _ in range(3)]
    finally:
        task.cancel()
    assert got == [b"WATCHDOG=1"] * 3


def test_watchdog_for_another_pid_is_ignored(sock_path: tuple[socket.socket, str]) -> None:
    _, path = sock_path
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid() + 1)})
    assert n.watchdog_interval() is None
