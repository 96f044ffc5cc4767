"""What a replica reports about its host: platform, arch, LAN addresses; and its forwarding switch."""

from __future__ import annotations

import ipaddress
import json
import logging
import platform
import subprocess
from pathlib import Path

log = logging.getLogger("watcher.agent")

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}
FORWARDING_SYSCTLS = ("net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding")


def host_platform() -> str:
    return platform.system().lower() or "unknown"


def host_arch() -> str:
    machine = platform.machine()
    return f"{host_platform()}_{_ARCH.get(machine, machine or 'unknown')}"


def lan_addresses() -> list[str]:
    """Global addresses of every interface except loopback, from `ip -j addr` (empty if unavailable)."""
    try:
        out = subprocess.run(
            ["ip", "-j", "addr", "show"], capture_output=True, text=True, timeout=5, check=True
        ).stdout
        links = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        log.warning("cannot list interface addresses (%s); reporting none", exc)
        return []
    found: list[str] = []
    for link in links:
        if link.get("ifname") == "lo" or "LOOPBACK" in link.get("flags", []):
            continue
        for info in link.get("addr_info", []):
            if info.get("scope") != "global":
                continue
            try:
                found.append(str(ipaddress.ip_address(info["local"])))
            except (KeyError, ValueError):
                continue
    return found


class Forwarding:
    """The replica's data-plane switch: IP forwarding on only while its replica is active."""

    def __init__(self, enabled: bool, proc_sys: Path = Path("/proc/sys")) -> None:
        self.enabled = enabled
        self.proc_sys = proc_sys
        self.state: bool | None = None

    def set(self, on: bool, why: str) -> None:
        if not self.enabled or on == self.state:
            return
        for key in FORWARDING_SYSCTLS:
            try:
                (self.proc_sys / key).write_text("1\n" if on else "0\n")
            except OSError as exc:
                log.error("cannot set %s=%d: %s", key.replace("/", "."), int(on), exc.strerror)
        self.state = on
        log.info("forwarding %s (%s)", "on" if on else "off", why)
