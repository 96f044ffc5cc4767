"""The replica agent: registers a host as a replica of a Mesh node on the embedded control plane.

Loaded lazily (httpx) so that `mesh-watcher --help`, which imports this package's cli, stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._agent import Agent, AgentConfig, Backoff, Refused

__all__ = ["Agent", "AgentConfig", "Backoff", "Refused"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("._agent", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
