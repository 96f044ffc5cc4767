"""Entering a named network namespace from one thread (setns is per thread).

Used where a socket must live in another namespace while the process stays where it is: the
routes actuator's raw netlink sockets and the lab's `Host.call`. A socket keeps the namespace it
was made in, so a thread that joined a namespace can hand its sockets to any other thread.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = Path("/var/run/netns")


def netns_path(netns: str) -> Path:
    """A namespace name (as `ip netns` names them) or a path, checked to exist."""
    path = Path(netns) if "/" in netns else NETNS_RUN_DIR / netns
    if not path.exists():
        # Never create one: a typo must not silently yield an empty namespace.
        raise FileNotFoundError(f"network namespace {netns!r} does not exist ({path})")
    return path


def join_netns(netns: str) -> None:
    """Move the calling thread into `netns`. Only ever call this on a thread of your own."""
    path = netns_path(netns)
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)
