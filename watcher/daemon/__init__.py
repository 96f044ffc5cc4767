"""The watcher daemon: control-plane observations -> decide (pure) -> actuators (routes or VIP).

    config = load_config("/etc/mesh-watcher/watcher.yaml")
    exit_code = asyncio.run(Watcher(config, config_path=...).run())

Public pieces: `WatcherConfig`/`load_config` (the YAML), `decide` (the policy), `HookRunner`
(notify commands), `Metrics` (Prometheus, injectable registry), `Notifier` (systemd notify),
`HealthTracker` (ARP/NDP probes), `Watcher` (the loop).
"""

from .config import WatcherConfig, load_config, parse_config
from .decide import Alert, DecideState, Decision, decide
from .health import HealthTracker, arp_probe, ndp_probe
from .hooks import HookRunner, run_hook, transition_env
from .metrics import Metrics
from .nexthop import Resolution, resolve
from .sdnotify import Notifier
from .service import Watcher

__all__ = [
    "Alert",
    "DecideState",
    "Decision",
    "HealthTracker",
    "HookRunner",
    "Metrics",
    "Notifier",
    "Resolution",
    "Watcher",
    "WatcherConfig",
    "arp_probe",
    "decide",
    "load_config",
    "ndp_probe",
    "parse_config",
    "resolve",
    "run_hook",
    "transition_env",
]
