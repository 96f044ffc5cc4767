"""VRRP lab helpers: replica hosts and a client on one switch; run our runner and keepalived."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watcher.lab import Host, Lab

VIP4, VIP6_LL, VIP6 = "192.0.2.254", "fe80::254", "2001:db8:1::254"
CLIENT4, CLIENT6 = "192.0.2.100", "2001:db8:1::100"
ROOT = Path(__file__).resolve().parents[2]


def host_ip4(i: int) -> str:
    return f"192.0.2.{10 + i}"


def wait_until(pred: Callable[[], Any], timeout: float, interval: float = 0.02, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout}s: {what or pred}")
        time.sleep(interval)


@dataclass
class VrrpLab:
    lab: Lab
    hosts: list[Host]
    client: Host
    tmp: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def host(self, i: int) -> Host:
        return self.hosts[i - 1]

    def has_vip(self, i: int, vip: str = VIP4) -> bool:
        out = self.host(i).ip("-o", "addr", "show", "dev", "eth0").stdout
        return f" {vip}/" in out

    def holders(self, vip: str = VIP4) -> list[int]:
        return [i for i in range(1, len(self.hosts) + 1) if self.has_vip(i, vip)]

    def mac(self, i: int) -> str:
        return self.host(i).iface("eth0").mac()

    # our runner ---------------------------------------------------------------------------
    def start(self, i: int, yaml_text: str, *extra: str) -> subprocess.Popen[bytes]:
        name = f"r{i}"
        conf = self.tmp / f"{name}.yaml"
        conf.write_text(yaml_text)
        status = self.tmp / f"{name}.json"
        status.unlink(missing_ok=True)
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115
        argv = [
            sys.executable,
            "-m",
            "watcher.vip",
            "--config",
            str(conf),
            "--status-file",
            str(status),
            *extra,
        ]
        proc = self.host(i).popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT))
        self.procs[name] = proc
        wait_until(lambda: self.status(i) is not None, 15, what=f"{name} status file")
        return proc

    def status(self, i: int) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads((self.tmp / f"r{i}.json").read_text())
        except (OSError, ValueError):
            return None
        return data

    def state(self, i: int, family: str = "ipv4") -> str | None:
        st = self.status(i)
        return None if st is None else str(st["instances"][family]["state"])

    def kill(self, i: int, sig: int) -> None:
        proc = self.procs[f"r{i}"]
        # `ip netns exec` execs the runner, so the Popen pid is the runner's pid.
        os.kill(proc.pid, sig)

    def stop(self, i: int, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
        self.kill(i, sig)
        self.procs[f"r{i}"].wait(timeout=timeout)

    def log(self, i: int) -> str:
        return (self.tmp / f"r{i}.log").read_text(errors="replace")


def vip_yaml(**over: Any) -> str:
    cfg: dict[str, Any] = {
        "interface": "eth0",
        "vrid": 51,
        "addresses": [VIP4, VIP6_LL, f"{VIP6}/64"],
        "advert_interval": 0.2,
        "garp": {"count": 3, "second_burst_delay": 1.0},
    }
    cfg.update(over)
    return json.dumps(cfg)  # JSON is YAML


def keepalived_conf(
    *,
    priority: int,
    interval: float,
    vips: list[str],
    name: str = "KA",
    unicast: tuple[str, list[str]] | None = None,
    old_unicast_checksum: bool = False,
) -> str:
    uni = ""
    if unicast:
        src, peers = unicast
        uni = f"  unicast_src_ip {src}\n  unicast_peer {{\n" + "".join(f"    {p}\n" for p in peers) + "  }\n"
        if old_unicast_checksum:
            uni += "  old_unicast_checksum\n"
    vip_lines = "".join(f"    {v}\n" for v in vips)
    return f"""global_defs {{
  router_id {name}
  vrrp_garp_master_delay 1
  vrrp_garp_master_repeat 3
}}
vrrp_instance {name} {{
  version 3
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority {priority}
  advert_int {interval}
{uni}  virtual_ipaddress {{
{vip_lines}  }}
}}
"""


def start_keepalived(v: VrrpLab, i: int, conf: str) -> subprocess.Popen[bytes]:
    name = f"ka{i}"
    path = v.tmp / f"{name}.conf"
    path.write_text(conf)
    log = open(v.tmp / f"{name}.log", "ab")  # noqa: SIM115
    argv = ["/usr/sbin/keepalived", "-n", "-l", "-D", "-G", "-P", "-R", "-f", str(path)]
    argv += ["-p", str(v.tmp / f"{name}.pid"), "-r", str(v.tmp / f"{name}-vrrp.pid")]
    proc = v.host(i).popen(argv, stdout=log, stderr=subprocess.STDOUT)
    v.procs[name] = proc
    return proc


def keepalived_vrrp_pid(v: VrrpLab, i: int) -> int:
    return int(wait_until(lambda: _read_int(v.tmp / f"ka{i}-vrrp.pid"), 10, what="keepalived vrrp pid"))


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


INJECT = """
import sys
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether
from scapy.sendrecv import sendp
for hexpkt in sys.argv[1:]:
    sendp(Ether(dst="01:00:5e:00:00:12") / IP(bytes.fromhex(hexpkt)), iface="eth0", verbose=False)
"""


def inject(host: Host, packets: list[bytes]) -> None:
    """Send raw IPv4 packets (built with scapy) from `host` onto the LAN, to the VRRP group MAC."""
    host.run([sys.executable, "-c", INJECT, *(p.hex() for p in packets)], timeout=60)
