"""VIP mode of the real daemon in the mesh lab: control plane (router ns), agents and
`python -m watcher run` on each replica host, plus two observers with their own clocks:

- `AddrWatch`: `ip -ts monitor address` on each replica host -> when a VIP appeared / vanished;
- `AdvertSniffer`: an AF_PACKET socket on the router's LAN port -> every VRRP advert (time, src, prio).

The processes are `watcher.lab.stack`'s launchers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from watcher.lab import Host, MeshLab
from watcher.lab.stack import MeshStack, WatcherProcess

VIP4, VIP6_LL, VIP6 = "192.0.2.254", "fe80::254", "2001:db8:1::254"
INTERVAL = 0.2
VRID = 42
METRICS = "127.0.0.1:9477"  # per replica namespace: no clash between the daemons


def daemon_yaml(s: MeshStack, replica_id: str, **vip_over: Any) -> str:
    vip: dict[str, Any] = {
        "interface": "eth0",
        "vrid": VRID,
        "local_replica_id": replica_id,
        "addresses": [f"{VIP4}/24", f"{VIP6_LL}/64", f"{VIP6}/64"],
        "advert_interval": INTERVAL,
        "promote_on_takeover": True,
        "garp": {"count": 3, "second_burst_delay": 1.0},
    }
    vip.update(vip_over)
    cp = {"poll_interval": 1.0, "timeout": 1.0, "backoff_max": 1.0}
    # No hold-down (the default): a promotion must move the VIP at once (1 s would defer a second
    # switch within 1 s of the first, which the scenarios below would trip over).
    doc = s.vip_config(vip, control_plane=cp, metrics={"listen": METRICS})
    return json.dumps(doc, indent=1)  # JSON is YAML


@dataclass
class AddrEvent:
    t: float  # unix time (ip -ts)
    host: int
    deleted: bool
    addr: str


class AddrWatch:
    """`ip -ts monitor address dev eth0` on each host: when VIPs come and go."""

    def __init__(self, mesh: MeshLab, hosts: list[int]) -> None:
        self.events: list[AddrEvent] = []
        self._lock = threading.Lock()
        self._procs: list[subprocess.Popen[bytes]] = []
        for i in hosts:
            proc = mesh.replica(i).popen(
                ["ip", "-ts", "monitor", "address", "dev", "eth0"], stdout=subprocess.PIPE
            )
            self._procs.append(proc)
            threading.Thread(target=self._read, args=(i, proc), daemon=True).start()
        time.sleep(0.3)  # let the monitors subscribe before anything happens

    def _read(self, host: int, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace").strip()
            # [2024-05-01T10:00:00.123456] Deleted 3: eth0    inet 192.0.2.254/24 scope global ...
            if not line.startswith("[") or "]" not in line:
                continue
            stamp, rest = line[1:].split("]", 1)
            words = rest.split()
            fam = next((k for k, w in enumerate(words) if w in ("inet", "inet6")), None)
            if fam is None or fam + 1 >= len(words):
                continue
            event = AddrEvent(
                datetime.fromisoformat(stamp).timestamp(),
                host,
                words[0] == "Deleted",
                words[fam + 1].split("/")[0],
            )
            with self._lock:
                self.events.append(event)

    def first(
        self, addr: str, *, added: bool = True, after: float = 0.0, host: int | None = None
    ) -> AddrEvent:
        with self._lock:
            for e in self.events:
                if e.addr == addr and e.deleted != added and e.t >= after and host in (None, e.host):
                    return e
        raise AssertionError(f"no {'add' if added else 'delete'} of {addr} after {after}: {self.events}")

    def since(self, after: float) -> list[AddrEvent]:
        with self._lock:
            return [e for e in self.events if e.t >= after]

    def close(self) -> None:
        for proc in self._procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(5)


@dataclass
class Advert:
    t: float
    family: int
    src: str
    vrid: int
    priority: int


class AdvertSniffer:
    """Every VRRP packet on the replica LAN, seen from the router's port (AF_PACKET, own thread)."""

    def __init__(self, host: Host, ifname: str = "eth1") -> None:
        # The socket belongs to the namespace of the thread that creates it.
        self._sock = host.call(socket.socket, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        self._sock.bind((ifname, 0))
        self._sock.settimeout(0.2)
        self.adverts: list[Advert] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame = self._sock.recv(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            now = time.time()
            got = _parse_vrrp(frame)
            if got is not None:
                with self._lock:
                    self.adverts.append(Advert(now, *got))

    def since(self, after: float, *, family: int = 4) -> list[Advert]:
        with self._lock:
            return [a for a in self.adverts if a.t >= after and a.family == family and a.vrid == VRID]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


def _parse_vrrp(frame: bytes) -> tuple[int, str, int, int] | None:
    ethertype = int.from_bytes(frame[12:14], "big")
    ip = frame[14:]
    if ethertype == 0x0800 and len(ip) >= 20 and ip[9] == 112:
        vrrp = ip[(ip[0] & 0x0F) * 4 :]
        if len(vrrp) >= 3:
            return 4, socket.inet_ntop(socket.AF_INET, ip[12:16]), vrrp[1], vrrp[2]
    if ethertype == 0x86DD and len(ip) >= 43 and ip[6] == 112:
        return 6, socket.inet_ntop(socket.AF_INET6, ip[8:24]), ip[41], ip[42]
    return None


class VipStack:
    """Control plane + 3 agents + 3 VIP-mode daemons, and what the tests ask of them."""

    def __init__(self, mesh: MeshLab, tmp: Path) -> None:
        self.mesh = mesh
        # A detection timeout well above Master_Down_Interval + the takeover settle time, as in
        # production (default 3 s): the VRRP takeover, not the control plane's own detection,
        # must be what promotes a replica after a host dies.
        self.s = MeshStack(mesh, tmp, detection_timeout=3.0)
        self.tmp = tmp
        self.ids: dict[int, str] = {}
        self.daemons: dict[int, WatcherProcess] = {
            i: WatcherProcess(
                tmp / f"vip{i}.yaml", host=mesh.replica(i), metrics=METRICS, log=tmp / f"vipd{i}.log"
            )
            for i in (1, 2, 3)
        }

    def start(self, **vip_over: Any) -> None:
        s = self.s
        s.start_cp()
        s.setup_node()
        self.ids = s.start_agents(1, 2, 3)
        for i in (1, 2, 3):
            self.start_daemon(i, **vip_over)

    def config_path(self, i: int) -> Path:
        return self.daemons[i].config

    def start_daemon(self, i: int, **vip_over: Any) -> None:
        self.daemons[i].write_config(daemon_yaml(self.s, self.ids[i], **vip_over))
        self.daemons[i].start()

    def signal(self, i: int, sig: int) -> None:
        self.daemons[i].send(sig)

    # observations -------------------------------------------------------------------------
    def holders(self, vip: str = VIP4) -> list[int]:
        out = []
        for i in (1, 2, 3):
            text = self.mesh.replica(i).ip("-o", "addr", "show", "dev", "eth0", check=False).stdout
            if f" {vip}/" in text:
                out.append(i)
        return out

    def active(self) -> int | None:
        got = self.s.active()
        return None if got is None else got[0]

    def settled(self, dead: int | None = None) -> int | None:
        """The host that is the active replica's and the only VIP holder (both families).

        A `dead` host (link down after kill -9) still has its VIPs configured: it is ignored."""
        a = self.active()
        live = [[j for j in self.holders(vip) if j != dead] for vip in (VIP4, VIP6, VIP6_LL)]
        if a is not None and all(h == [a] for h in live):
            return a
        return None

    def status(self, i: int) -> dict[str, Any] | None:
        """`mesh-watcher status --json` on host i (the command, not just the endpoint)."""
        out = self.daemons[i].status_command(as_json=True).stdout
        return dict(json.loads(out)) if out.strip() else None

    def status_text(self, i: int) -> str:
        proc = self.daemons[i].status_command()
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    def metrics(self, i: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return self.daemons[i].samples()

    def events(self) -> list[dict[str, Any]]:
        """Every control-plane event of the node so far (replayed from generation 0)."""
        return [data for _, data in self.s.events()]

    def logs(self) -> str:
        return self.s.dump_logs(5000)

    def close(self) -> None:
        self.s.close()


def iso_ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def inject4(host: Host, ifname: str, packets: list[bytes]) -> None:
    """Send raw IPv4 packets from `host` to the VRRP group MAC (spoofed adverts)."""
    sock = host.call(socket.socket, socket.AF_PACKET, socket.SOCK_RAW)
    try:
        sock.bind((ifname, 0))
        src_mac = sock.getsockname()[4]
        for pkt in packets:
            sock.send(bytes.fromhex("01005e000012") + src_mac + b"\x08\x00" + pkt)
    finally:
        sock.close()
