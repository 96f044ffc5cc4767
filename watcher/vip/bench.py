"""P5 benchmark: VIP takeover when the master host dies, ours vs keepalived, at 0.1 s adverts.

    sudo .venv/bin/python -m watcher.vip.bench [--iterations 5] [--interval 0.1]

Host death = SIGKILL of the VRRP process(es) and the host's LAN link going down at the same moment
(`t0`). A prober in the client namespace pings the VIP every 5 ms; the figure is `t0` -> the first
echo reply (sent after `t0`) from the backup's MAC: the backup holds the VIP, announced it, and
answers. Also: priority change (the active replica moves) -> first reply from the new master.
All inside lab namespaces; every wait is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..lab import Host, Lab

VIP = "192.0.2.254"
PROBER = r"""
import os, socket, struct, sys, time
dst = sys.argv[1]
tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
rx.bind(("eth0", 0)); rx.settimeout(0.005)
ident = os.getpid() & 0xFFFF
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s & 0xFFFF) + (s >> 16)
    return ~(s + (s >> 16)) & 0xFFFF
print("ready", flush=True)
seq = 0
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    seq = (seq + 1) & 0xFFFF
    payload = struct.pack("!d", time.monotonic())
    hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    tx.sendto(struct.pack("!BBHHH", 8, 0, csum(hdr + payload), ident, seq) + payload, (dst, 0))
    stop = time.monotonic() + 0.005
    while time.monotonic() < stop:
        try:
            frame = rx.recv(2048)
        except socket.timeout:
            break
        ip = frame[14:]
        if len(ip) < 36 or ip[9] != 1:
            continue
        icmp = ip[(ip[0] & 15) * 4:]
        if icmp[0] == 0 and struct.unpack("!H", icmp[4:6])[0] == ident:
            sent = struct.unpack("!d", icmp[8:16])[0]
            print(f"{sent:.6f} {time.monotonic():.6f} {frame[6:12].hex(':')}", flush=True)
"""


class Prober:
    def __init__(self, client: Host, duration: float) -> None:
        self.proc = client.popen(
            [sys.executable, "-c", PROBER, VIP, str(duration)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != b"ready":
            raise RuntimeError("prober did not start")

    def first_reply(self, after: float, mac: str, timeout: float) -> float | None:
        """Seconds from `after` to the first reply sent after it from `mac` (None: none in time)."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline().decode().split()
            if not line:
                return None
            sent, recv, src = float(line[0]), float(line[1]), line[2]
            if sent > after and src == mac:
                return recv - after
        return None

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=5)


def _wait(pred: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False


def _has_vip(host: Host) -> bool:
    return f" {VIP}/" in host.ip("-o", "addr", "show", "dev", "eth0").stdout


def _ours(host: Host, tmp: Path, name: str, interval: float, prio: int) -> subprocess.Popen[bytes]:
    conf = tmp / f"{name}.yaml"
    conf.write_text(
        json.dumps(
            {
                "interface": "eth0",
                "vrid": 51,
                "addresses": [f"{VIP}/24"],
                "advert_interval": interval,
                "garp": {"count": 3, "second_burst_delay": 1.0},
            }
        )
    )
    log = open(tmp / f"{name}.log", "ab")  # noqa: SIM115
    argv = [sys.executable, "-m", "watcher.vip", "--config", str(conf), "--priority", str(prio)]
    return host.popen(
        argv, stdout=log, stderr=subprocess.STDOUT, cwd=str(Path(__file__).resolve().parents[2])
    )


def _keepalived(host: Host, tmp: Path, name: str, interval: float, prio: int) -> subprocess.Popen[bytes]:
    conf = tmp / f"{name}.conf"
    track = tmp / f"{name}.prio"
    track.write_text("0\n")
    conf.write_text(
        f"global_defs {{\n  router_id {name}\n  vrrp_garp_master_delay 1\n  vrrp_garp_master_repeat 3\n}}\n"
        f"vrrp_track_file {name}_tf {{\n  file {track}\n  weight 1\n}}\n"
        f"vrrp_instance V {{\n  version 3\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n"
        f"  priority {prio}\n  advert_int {interval}\n  track_file {{\n    {name}_tf weight 1\n  }}\n"
        f"  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
    )
    log = open(tmp / f"{name}.log", "ab")  # noqa: SIM115
    argv = ["/usr/sbin/keepalived", "-n", "-l", "-G", "-P", "-R", "-f", str(conf)]
    argv += ["-p", str(tmp / f"{name}.pid"), "-r", str(tmp / f"{name}-vrrp.pid")]
    return host.popen(argv, stdout=log, stderr=subprocess.STDOUT)


def _run_impl(impl: str, iterations: int, interval: float, tmp: Path) -> dict[str, Any]:
    start = _ours if impl == "ours" else _keepalived
    takeover: list[float] = []
    prio_move: list[float] = []
    failures = 0
    with Lab() as lab:
        lab.add_switch("lan")
        h1, h2, client = lab.add_host("h1"), lab.add_host("h2"), lab.add_host("client")
        lab.connect(h1, "lan", ["192.0.2.11/24"])
        lab.connect(h2, "lan", ["192.0.2.12/24"])
        lab.connect(client, "lan", ["192.0.2.100/24"])
        mac1, mac2 = h1.iface().mac(), h2.iface().mac()
        for it in range(iterations):
            h1.ip("link", "set", "eth0", "up")
            p2 = start(h2, tmp, f"{impl}-h2-{it}", interval, 100)
            p1 = start(h1, tmp, f"{impl}-h1-{it}", interval, 200)
            ok = _wait(lambda: _has_vip(h1) and not _has_vip(h2), 15)
            prober = Prober(client, 60)
            try:
                if not ok or prober.first_reply(time.monotonic(), mac1, 10) is None:
                    failures += 1
                    continue
                time.sleep(10 * interval)  # let the backup hear the master for a while
                t0 = time.monotonic()
                for pid in _pids(impl, tmp, f"{impl}-h1-{it}", p1):
                    os.kill(pid, signal.SIGKILL)
                h1.ip("link", "set", "eth0", "down")
                got = prober.first_reply(t0, mac2, 10)
                if got is None:
                    failures += 1
                else:
                    takeover.append(got)
                # Priority change: h1 comes back (priority 200, preempts), then h2 is raised above it.
                h1.ip("addr", "del", f"{VIP}/24", "dev", "eth0", check=False)  # left by the kill
                h1.ip("link", "set", "eth0", "up")
                p1 = start(h1, tmp, f"{impl}-h1b-{it}", interval, 200)
                if not _wait(lambda: _has_vip(h1) and not _has_vip(h2), 15):
                    failures += 1
                    continue
                if prober.first_reply(time.monotonic(), mac1, 10) is None:
                    failures += 1
                    continue
                time.sleep(10 * interval)
                t0 = time.monotonic()
                if impl == "ours":
                    os.kill(p2.pid, signal.SIGUSR1)  # priority_active = 250
                else:
                    (tmp / f"{impl}-h2-{it}.prio").write_text("150\n")  # 100 + 150 = 250
                got = prober.first_reply(t0, mac2, 10)
                if got is None:
                    failures += 1
                else:
                    prio_move.append(got)
            finally:
                prober.close()
                for proc in (p1, p2):
                    if proc.poll() is None:
                        proc.send_signal(signal.SIGKILL)
                        proc.wait(timeout=5)
                for h in (h1, h2):
                    h.ip("addr", "del", f"{VIP}/24", "dev", "eth0", check=False)
    return {"takeover_s": takeover, "priority_move_s": prio_move, "failures": failures}


def _pids(impl: str, tmp: Path, name: str, proc: subprocess.Popen[bytes]) -> list[int]:
    if impl == "ours":
        return [proc.pid]
    pids = [proc.pid]
    with contextlib.suppress(OSError, ValueError):
        pids.insert(0, int((tmp / f"{name}-vrrp.pid").read_text().strip()))
    return pids


def _summary(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "median_ms": None}
    return {
        "n": len(values),
        "median_ms": round(statistics.median(values) * 1000, 1),
        "min_ms": round(min(values) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1),
    }


def bench_vip(iterations: int = 5, interval: float = 0.1, tmp: Path | None = None) -> dict[str, Any]:
    """Run P5 for ours and keepalived; returns medians and the ours/keepalived ratio."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="vipbench") as d:
        base = tmp or Path(d)
        raw = {impl: _run_impl(impl, iterations, interval, base) for impl in ("ours", "keepalived")}
    out: dict[str, Any] = {"advert_interval_s": interval, "iterations": iterations}
    for impl, res in raw.items():
        out[impl] = {
            "takeover": _summary(res["takeover_s"]),
            "priority_move": _summary(res["priority_move_s"]),
            "failures": res["failures"],
        }
    for key in ("takeover", "priority_move"):
        a, b = out["ours"][key]["median_ms"], out["keepalived"][key]["median_ms"]
        out[f"{key}_ratio_ours_over_keepalived"] = round(a / b, 2) if a and b else None
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m watcher.vip.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--iterations", type=int, default=5)
    p.add_argument("--interval", type=float, default=0.1)
    args = p.parse_args(argv)
    if not 1 <= args.iterations <= 50:
        p.error("--iterations must be 1..50")
    print(json.dumps(bench_vip(args.iterations, args.interval), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
