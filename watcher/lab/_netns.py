"""Network-namespace lab: hosts joined by veth links and bridges, torn down whatever happens.

Everything lives in namespaces this module creates, named `<prefix><name>`. Bridges live in a
per-lab "switch" namespace, so nothing is ever added to the root namespace. Links are created
from inside the host namespace (`ip -n HOST link add ... peer ... netns SWITCH`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ipaddress
import os
import secrets
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from .._netns import join_netns

T = TypeVar("T")

NETNS_PREFIX = "mwl"
# One file per live lab, holding the owner pid: `sweep_stale` removes labs whose owner is dead.
RUN_DIR = Path(os.environ.get("MESH_WATCHER_LAB_RUN_DIR", "/run/mesh-watcher-lab"))


class LabError(RuntimeError):
    pass


def _ip(*args: str, check: bool = True, input_: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, input=input_, check=False)
    if check and proc.returncode != 0:
        raise LabError(f"ip {' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def list_netns() -> list[str]:
    out = _ip("-o", "netns", "list").stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _delete_netns(name: str) -> None:
    # Kill whatever still runs inside before removing it, or the processes outlive the lab.
    pids = _ip("netns", "pids", name, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    _ip("netns", "del", name, check=False)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(prefix: str = NETNS_PREFIX) -> list[str]:
    """Remove namespaces of labs whose owning process is gone (a killed test run). Returns them."""
    removed: list[str] = []
    live_prefixes: set[str] = set()
    if RUN_DIR.is_dir():
        for marker in RUN_DIR.glob(f"{prefix}*"):
            try:
                pid = int(marker.read_text().strip())
            except (OSError, ValueError):
                pid = -1
            if pid > 0 and _pid_alive(pid):
                live_prefixes.add(marker.name)
            else:
                marker.unlink(missing_ok=True)
    for ns in list_netns():
        if ns.startswith(prefix) and not any(ns.startswith(p) for p in live_prefixes):
            _delete_netns(ns)
            removed.append(ns)
    return removed


@dataclass
class Iface:
    host: Host
    name: str
    addresses: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]

    @property
    def ipv4(self) -> ipaddress.IPv4Address | None:
        return next((a.ip for a in self.addresses if isinstance(a, ipaddress.IPv4Interface)), None)

    @property
    def ipv6(self) -> ipaddress.IPv6Address | None:
        return next((a.ip for a in self.addresses if isinstance(a, ipaddress.IPv6Interface)), None)

    def mac(self) -> str:
        return self.host.run(["cat", f"/sys/class/net/{self.name}/address"]).stdout.strip()


@dataclass
class Host:
    """A network namespace with helpers to run things inside it."""

    lab: Lab
    name: str
    netns: str
    ifaces: dict[str, Iface] = field(default_factory=dict)
    _executor: concurrent.futures.ThreadPoolExecutor | None = field(default=None, repr=False)

    def cmd(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv]

    def run(
        self, argv: Sequence[str] | str, *, check: bool = True, timeout: float = 30, input_: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        args = shlex.split(argv) if isinstance(argv, str) else list(argv)
        proc = subprocess.run(
            self.cmd(args), capture_output=True, text=True, timeout=timeout, input=input_, check=False
        )
        if check and proc.returncode != 0:
            raise LabError(f"[{self.name}] {shlex.join(args)} -> {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _ip("-n", self.netns, *args, check=check)

    def popen(self, argv: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
        """Start a process inside the host; the lab kills it on teardown."""
        kwargs.setdefault("start_new_session", True)
        proc = subprocess.Popen(self.cmd(argv), **kwargs)  # type: ignore[call-overload]
        self.lab._procs.append(proc)
        return proc  # type: ignore[no-any-return]

    def sysctl(self, key: str, value: str | int) -> None:
        path = "/proc/sys/" + key.replace(".", "/")
        self.run(["sh", "-c", f"echo {int(value) if isinstance(value, bool) else value} > {path}"])

    def ping(self, dst: str, *, count: int = 1, timeout: float = 1.0) -> bool:
        argv = ["ping", "-n", "-q", "-c", str(count), "-W", str(max(1, int(timeout))), dst]
        if ":" in dst:
            argv.insert(1, "-6")
        return self.run(argv, check=False, timeout=timeout * count + 5).returncode == 0

    def iface(self, name: str = "eth0") -> Iface:
        return self.ifaces[name]

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run `fn` in this process, on a thread that joined the host's namespace.

        setns() is per thread, and a socket stays in the namespace it was made in: an HTTP client
        used only through `call` reaches servers inside the lab without a subprocess.
        """
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1,
                thread_name_prefix=f"netns-{self.name}",
                initializer=join_netns,
                initargs=(self.netns,),
            )
        return self._executor.submit(fn, *args, **kwargs).result()


class Lab:
    """A set of namespaces created together and always removed together.

    >>> with Lab() as lab:
    ...     a, b = lab.add_host("a"), lab.add_host("b")
    ...     sw = lab.add_switch("lan")
    ...     lab.connect(a, sw, ["192.0.2.1/24"])
    """

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix or f"{NETNS_PREFIX}{secrets.token_hex(3)}-"
        self.hosts: dict[str, Host] = {}
        self._switch: Host | None = None
        self._bridges: set[str] = set()
        self._procs: list[subprocess.Popen[bytes]] = []
        self._created: list[str] = []
        self._marker = RUN_DIR / self.prefix
        self._port_seq = 0

    # lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> Lab:
        if os.geteuid() != 0:
            raise LabError("the netns lab needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN)")
        sweep_stale()
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        self._marker.write_text(str(os.getpid()))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        for host in self.hosts.values():
            if host._executor is not None:
                host._executor.shutdown(wait=True, cancel_futures=True)
        for proc in reversed(self._procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
        for proc in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self._procs.clear()
        for ns in reversed(self._created):
            _delete_netns(ns)
        self._created.clear()
        self._marker.unlink(missing_ok=True)

    # building --------------------------------------------------------------------------
    def _new_netns(self, name: str) -> str:
        ns = f"{self.prefix}{name}"
        _ip("netns", "add", ns)
        self._created.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")
        return ns

    def add_host(self, name: str, *, forwarding: bool = False) -> Host:
        if name in self.hosts:
            raise LabError(f"host {name!r} exists")
        host = Host(self, name, self._new_netns(name))
        self.hosts[name] = host
        # No DAD and no router solicitations: addresses are usable at once, tests stay fast.
        for key, val in (
            ("net.ipv6.conf.all.accept_dad", 0),
            ("net.ipv6.conf.default.accept_dad", 0),
            ("net.ipv6.conf.all.forwarding", int(forwarding)),
            ("net.ipv4.ip_forward", int(forwarding)),
        ):
            host.sysctl(key, val)
        return host

    def _switch_host(self) -> Host:
        if self._switch is None:
            self._switch = Host(self, "switch", self._new_netns("sw"))
        return self._switch

    def add_switch(self, name: str) -> str:
        """A Linux bridge in the lab's switch namespace. Returns the bridge name."""
        sw = self._switch_host()
        if name in self._bridges:
            raise LabError(f"switch {name!r} exists")
        # Snooping off: VRRP and NDP multicast must reach every port, as on a dumb switch.
        sw.ip("link", "add", name, "type", "bridge", "mcast_snooping", "0", "forward_delay", "0")
        sw.ip("link", "set", name, "up")
        self._bridges.add(name)
        return name

    def connect(
        self,
        host: Host,
        switch: str,
        addresses: Sequence[str] = (),
        *,
        ifname: str = "eth0",
        mac: str | None = None,
    ) -> Iface:
        """Plug `host` into `switch` with a veth named `ifname` carrying `addresses` (CIDR form)."""
        if switch not in self._bridges:
            raise LabError(f"no switch {switch!r}")
        sw = self._switch_host()
        self._port_seq += 1
        port = f"p{self._port_seq}"
        host.ip("link", "add", ifname, "type", "veth", "peer", "name", port, "netns", sw.netns)
        sw.ip("link", "set", port, "master", switch)
        sw.ip("link", "set", port, "up")
        if mac:
            host.ip("link", "set", ifname, "address", mac)
        parsed = [ipaddress.ip_interface(a) for a in addresses]
        for addr in parsed:
            extra = ["nodad"] if addr.version == 6 else []
            host.ip("addr", "add", str(addr), "dev", ifname, *extra)
        host.ip("link", "set", ifname, "up")
        iface = Iface(host, ifname, parsed)
        host.ifaces[ifname] = iface
        return iface

    def wait_for(
        self, predicate: Callable[[], object], *, timeout: float = 10.0, interval: float = 0.05
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(interval)
        raise LabError(f"condition not met within {timeout}s")


@contextlib.contextmanager
def lab(prefix: str | None = None) -> Iterator[Lab]:
    with Lab(prefix) as the_lab:
        yield the_lab
