"""The replica agent loop: register, heartbeat, reconnect with backoff, drive the data plane.

Synchronous and single-threaded on purpose: the only concurrency is a signal setting `stop` and the
push listener (./_push.py) asking for an early heartbeat through `wake`; only this loop changes state.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .. import __version__
from ._push import PushListener
from ._sysinfo import Forwarding, host_arch, host_platform, lan_addresses

log = logging.getLogger("watcher.agent")

DEFAULT_DETECTION = 3.0
LAN_REFRESH = 10.0  # seconds between re-reading the interface addresses (when not given)


class Refused(Exception):
    """The control plane refused this replica for good (bad token, wrong transport, node full)."""


@dataclass
class AgentConfig:
    api: str
    token: str
    state_dir: Path
    transport: str = "masque"
    device_name: str | None = None
    lan_addresses: list[str] | None = None  # None: detect from the interfaces
    dataplane: bool = False
    push: bool = True  # hold the node's event stream open to learn role changes at once


@dataclass
class Backoff:
    """Jittered exponential backoff. The cap stays below the detection timeout so that a replica
    reaches a restarted control plane within its grace period (a restart must not fail over)."""

    base: float = 0.1
    cap: float = 2.0
    attempt: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next(self) -> float:
        delay = min(self.cap, self.base * 2**self.attempt)
        self.attempt = min(self.attempt + 1, 30)
        return float(delay * self.rng.uniform(0.5, 1.0))

    def reset(self) -> None:
        self.attempt = 0


def _message(resp: httpx.Response) -> str:
    try:
        errors = resp.json().get("errors") or []
        return "; ".join(f"{e.get('message')} (code {e.get('code')})" for e in errors) or resp.text
    except ValueError:
        return resp.text[:200]


class Agent:
    def __init__(self, config: AgentConfig, stop: threading.Event) -> None:
        self.config = config
        self.stop = stop
        self.state_file = config.state_dir / "replica.json"
        self.replica_id: str | None = self._load_id()
        self.ha_status = "offline"
        self.interval = 1.0
        self.detection = DEFAULT_DETECTION
        self.backoff = Backoff(cap=min(2.0, DEFAULT_DETECTION / 3))
        self.forwarding = Forwarding(config.dataplane)
        self.last_ok = time.monotonic()
        self._warned_at = -60.0
        self._lan: list[str] = []
        self._lan_at = -LAN_REFRESH
        headers = {
            "Authorization": f"Bearer {config.token}",
            "User-Agent": f"mesh-watcher-agent/{__version__}",
        }
        self.client = httpx.Client(
            base_url=config.api.rstrip("/"), headers=headers, timeout=httpx.Timeout(5.0, connect=1.0)
        )
        # Set by a signal (with `stop`) or by the push listener: ends the current wait early.
        self.wake = threading.Event()
        self.push: PushListener | None = None
        if config.push:
            self.push = PushListener(config.api, headers, self._nudge, threading.Event())

    def request_stop(self) -> None:
        """Signal-safe: stop the loop now, even mid-wait."""
        self.stop.set()
        self.wake.set()

    def _nudge(self, why: str) -> None:
        log.debug("early heartbeat: %s", why)
        self.wake.set()

    def _sleep(self, seconds: float) -> None:
        # Clear only a wake that ended this wait: the heartbeat that follows comes after it. A nudge
        # arriving after a timed-out wait stays set and ends the next wait at once.
        if self.wake.wait(seconds):
            self.wake.clear()

    # state ---------------------------------------------------------------------------------
    def _load_id(self) -> str | None:
        try:
            data = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("%s is unreadable (%s): registering as a new replica", self.state_file, exc)
            return None
        rid = data.get("replica_id") if isinstance(data, dict) else None
        return rid if isinstance(rid, str) and rid else None

    def _save(self, result: dict[str, Any]) -> None:
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        keep = {
            k: result.get(k) for k in ("replica_id", "tunnel_id", "account_tag", "mesh_ipv4", "mesh_ipv6")
        }
        tmp.write_text(json.dumps(keep, indent=2) + "\n")
        os.replace(tmp, self.state_file)

    def lan(self) -> list[str]:
        if self.config.lan_addresses is not None:
            return self.config.lan_addresses
        if time.monotonic() - self._lan_at >= LAN_REFRESH:
            self._lan, self._lan_at = lan_addresses(), time.monotonic()
        return self._lan

    # protocol ------------------------------------------------------------------------------
    def register(self) -> bool:
        body = {
            "replica_id": self.replica_id,
            "transport": self.config.transport,
            "arch": host_arch(),
            "platform": host_platform(),
            "version": __version__,
            "device_name": self.config.device_name,
            "lan_addresses": self.lan(),
        }
        resp = self.client.post("/connector/register", json=body)
        if resp.status_code in (400, 401, 403, 404, 409):
            raise Refused(f"registration refused (HTTP {resp.status_code}): {_message(resp)}")
        if resp.status_code != 200:
            self._unreachable(f"registration failed: HTTP {resp.status_code} {_message(resp)}")
            return False
        result = resp.json()["result"]
        if result["replica_id"] != self.replica_id:
            log.info("registered as new replica %s", result["replica_id"])
        self.replica_id = result["replica_id"]
        self._save(result)
        self.interval = float(result["heartbeat_interval"])
        self.detection = float(result["detection_timeout"])
        self.backoff.cap = max(0.05, min(2.0, self.detection / 3))
        log.info(
            "replica %s connected: %s, mesh %s %s, heartbeat every %.2fs",
            self.replica_id,
            result["ha_status"],
            result["mesh_ipv4"],
            result["mesh_ipv6"],
            self.interval,
        )
        self._status(result["ha_status"])
        return True

    def heartbeat(self) -> str:
        """'ok', 'reregister' (the control plane lost us), or 'retry'."""
        body = {"lan_addresses": self.lan()}
        resp = self.client.post(f"/connector/{self.replica_id}/heartbeat", json=body)
        if resp.status_code == 200:
            self._status(resp.json()["result"]["ha_status"])
            return "ok"
        if resp.status_code in (404, 409):
            log.warning("heartbeat refused (%s): registering again", _message(resp))
            # The control plane counts this replica as gone, so another one may already be active:
            # stop forwarding now, not after the registration (which may fail for a while).
            self.ha_status = "offline"
            self.forwarding.set(False, "the control plane lost this replica")
            return "reregister"
        if resp.status_code in (401, 403):
            raise Refused(f"heartbeat refused (HTTP {resp.status_code}): {_message(resp)}")
        self._unreachable(f"heartbeat failed: HTTP {resp.status_code} {_message(resp)}")
        return "retry"

    def _status(self, status: str) -> None:
        self.last_ok = time.monotonic()
        if status != self.ha_status:
            log.info("replica %s is now %s", self.replica_id, status)
        self.ha_status = status
        self.forwarding.set(status == "active", f"replica {status}")

    def _unreachable(self, problem: str) -> None:
        now = time.monotonic()
        silent = now - self.last_ok
        if now - self._warned_at >= 5.0:  # retries are frequent: warn every few seconds, not each time
            log.warning("control plane unreachable for %.1fs: %s", silent, problem)
            self._warned_at = now
        if silent > self.detection:
            # By now the control plane has promoted someone else: stop forwarding (no split brain).
            self.forwarding.set(False, f"control plane unreachable for {silent:.1f}s")

    # loop ----------------------------------------------------------------------------------
    def run(self) -> int:
        registered = False
        next_beat = time.monotonic()
        self.forwarding.set(False, "starting")
        if self.push is not None:
            self.push.start()
        try:
            while not self.stop.is_set():
                try:
                    if not registered:
                        registered = self.register()
                        if registered:
                            self.backoff.reset()
                            next_beat = time.monotonic() + self.interval
                            continue
                    else:
                        # A nudge from the push listener ends the wait: heartbeat now.
                        self._sleep(max(0.0, next_beat - time.monotonic()))
                        if self.stop.is_set():
                            break
                        on_time = time.monotonic() >= next_beat
                        outcome = self.heartbeat()
                        if outcome == "ok":
                            self.backoff.reset()
                            now = time.monotonic()
                            # On schedule: keep the cadence (no drift by the round trip). Early (a
                            # nudge): a full interval from now, never a gap longer than one interval.
                            next_beat = (
                                max(next_beat + self.interval, now + self.interval / 4)
                                if on_time
                                else now + self.interval
                            )
                            continue
                        if outcome == "reregister":
                            registered = False
                            continue
                except httpx.HTTPError as exc:
                    self._unreachable(f"{type(exc).__name__}: {exc}")
                delay = self.backoff.next()
                next_beat = time.monotonic() + delay
                self._sleep(delay)
        except Refused as exc:
            self.forwarding.set(False, "refused")
            print(f"mesh-watcher replica: {exc}", file=sys.stderr, flush=True)
            log.error("%s", exc)
            return 3
        finally:
            # Disconnect first: the graceful failover must not wait for the push thread.
            if registered and self.replica_id:
                self._disconnect()
            if self.push is not None:
                self.push.close()
            self.forwarding.set(False, "stopping")
            self.client.close()
        return 0

    def _disconnect(self) -> None:
        try:
            resp = self.client.post(f"/connector/{self.replica_id}/disconnect", timeout=2.0)
            log.info("disconnected gracefully (HTTP %d)", resp.status_code)
        except httpx.HTTPError as exc:
            log.warning("graceful disconnect failed: %s", exc)
