"""The embedded control plane: a local, Cloudflare-shaped Mesh API (nodes, replicas, HA failover).

The pure HA rules import eagerly; the server parts (FastAPI, httpx) load on first use, so that
`mesh-watcher --help`, which imports this package's cli, stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._logic import Decision, Live, decide, expired, grace, ha_status, node_status, pick_active
from ._util import ApiError

if TYPE_CHECKING:
    from ._app import API_PREFIX, AppConfig, ControlPlane, create_app
    from ._engine import Engine, EngineConfig

_LAZY = {
    "API_PREFIX": "._app",
    "AppConfig": "._app",
    "ControlPlane": "._app",
    "create_app": "._app",
    "Engine": "._engine",
    "EngineConfig": "._engine",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "API_PREFIX",
    "ApiError",
    "AppConfig",
    "ControlPlane",
    "Decision",
    "Engine",
    "EngineConfig",
    "Live",
    "create_app",
    "decide",
    "expired",
    "grace",
    "ha_status",
    "node_status",
    "pick_active",
]
