"""VIP mode of the real daemon in the mesh lab: control plane (router ns), agents and
`python -m watcher run` on each replica host, plus two observers with their own clocks:

- `AddrWatch`: `ip -ts monitor address` on each replica host -> when a VIP appeared / vanished;
- `AdvertSniffer`: an AF_PACKET socket on the router's LAN port -> every VRRP advert (time, src, prio).

The control plane stays tests/daemon/_stack.py's `Stack` (imported, not copied).
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

from daemon._stack import ADMIN, API, CP_PORT, PY, Stack, wait
from prometheus_client.parser import text_string_to_metric_families

from watcher.lab import Host, MeshLab

VIP4, VIP6_LL, VIP6 = "192.0.2.254", "fe80::254", "2001:db8:1::254"
INTERVAL = 0.2
VRID = 42
METRICS_URL = "http://127.0.0.1:9477"  # per replica namespace: no clash between the daemons


def daemon_yaml(s: Stack, replica_id: str, **vip_over: Any) -> str:
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
    doc = {
        "mode": "vip",
        "node": {"account_id": s.account, "node_id": s.node},
        "control_plane": {
            "api": API,
            "token_file": str(s.tmp / "watcher.token"),
            "poll_interval": 1.0,
            "timeout": 1.0,
            "backoff_max": 1.0,
        },
        "vip": vip,
        # No hold-down: a promotion must move the VIP at once (the default 1 s defers a second
        # switch within 1 s of the first, which the scenarios below would trip over).
        "decide": {"hold_down": 0},
        "health": {"probe": False},
        "metrics": {"listen": METRICS_URL.removeprefix("http://")},
    }
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


class _Stack(Stack):
    def start_cp(self) -> None:
        # A detection timeout well above Master_Down_Interval + the takeover settle time, as in
        # production (default 3 s): the VRRP takeover, not the control plane's own detection,
        # must be what promotes a replica after a host dies.
        log = open(self.tmp / "cp.log", "ab")  # noqa: SIM115 - the process owns it
        self.cp = self.router.popen(
            [PY, "-m", "watcher", "control-plane", "--listen", f"192.0.2.1:{CP_PORT}",
             "--state-dir", str(self.tmp / "cp"), "--admin-token-file", str(self.tmp / "admin.token"),
             "--detection-timeout", "3.0", "--heartbeat-interval", "0.3"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        base = f"http://192.0.2.1:{CP_PORT}"
        wait(lambda: self.curl("GET", "/readyz", base=base, raw=True) == "200", 30, "control plane ready")


class VipStack:
    """Control plane + 3 agents + 3 VIP-mode daemons, and what the tests ask of them."""

    def __init__(self, mesh: MeshLab, tmp: Path) -> None:
        self.mesh = mesh
        self.s: Stack = _Stack(mesh, tmp)
        self.tmp = tmp
        self.ids: dict[int, str] = {}
        self.daemons: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, **vip_over: Any) -> None:
        s = self.s
        s.start_cp()
        s.setup_node()
        for i in (1, 2, 3):
            s.start_agent(i)
        wait(lambda: sum(c["ha_status"] != "offline" for c in s.connections()) == 3, 30, "3 replicas online")
        self.ids = {i: s.replica_id(i) for i in (1, 2, 3)}
        for i in (1, 2, 3):
            self.start_daemon(i, **vip_over)

    def config_path(self, i: int) -> Path:
        return self.tmp / f"vip{i}.yaml"

    def start_daemon(self, i: int, **vip_over: Any) -> None:
        self.config_path(i).write_text(daemon_yaml(self.s, self.ids[i], **vip_over))
        log = open(self.tmp / f"vipd{i}.log", "ab")  # noqa: SIM115 - the process owns it
        argv = [PY, "-m", "watcher", "-v", "run", "--config", str(self.config_path(i))]
        # `ip netns exec` execs the daemon: the Popen pid is the daemon's.
        self.daemons[i] = self.mesh.replica(i).popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def signal(self, i: int, sig: int) -> None:
        os.kill(self.daemons[i].pid, sig)

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
        argv = [PY, "-m", "watcher", "status", "--json", "--url", METRICS_URL]
        proc = self.mesh.replica(i).run(argv, check=False, timeout=20)
        return dict(json.loads(proc.stdout)) if proc.stdout.strip() else None

    def status_text(self, i: int) -> str:
        proc = self.mesh.replica(i).run([PY, "-m", "watcher", "status", "--url", METRICS_URL], check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    def metrics(self, i: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = self.mesh.replica(i).run(["curl", "-s", "-m", "5", METRICS_URL + "/metrics"]).stdout
        out = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return out

    def events(self) -> list[dict[str, Any]]:
        """Every control-plane event of the node so far (replayed from generation 0)."""
        url = f"{API}/accounts/{self.s.account}/warp_connector/{self.s.node}/events"
        auth = f"Authorization: Bearer {ADMIN}"
        argv = ["curl", "-s", "-N", "-m", "1.5", "-H", auth, "-H", "Last-Event-ID: 0"]
        text = self.mesh.router.run([*argv, url], check=False, timeout=15).stdout
        return [json.loads(ln[5:]) for ln in text.splitlines() if ln.startswith("data:")]

    def logs(self) -> str:
        out = []
        for log in sorted(self.tmp.glob("*.log")):
            out.append(f"--- {log.name}\n" + log.read_text(errors="replace")[-5000:])
        return "\n".join(out)

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
