"""Blocking facade over AsyncMeshApi, for the operator CLI and scripts (pyroute2's model).

It owns a private event loop and runs each coroutine method of the async client to completion,
so every endpoint, retry and budget rule exists once. Not for use inside a running event loop.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable
from typing import Any, TypeVar

from ._client import AsyncMeshApi

T = TypeVar("T")


class MeshApi:
    """`MeshApi(...)` takes AsyncMeshApi's arguments; `api.get_node(x)` runs `await aio.get_node(x)`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self.aio = AsyncMeshApi(*args, **kwargs)

    def __repr__(self) -> str:
        return f"MeshApi({self.aio!r})"

    def run(self, awaitable: Awaitable[T]) -> T:
        """Run one awaitable of `self.aio` on the private loop."""

        async def wrap() -> T:
            return await awaitable

        return self._loop.run_until_complete(wrap())

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.aio, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        @functools.wraps(attr)
        def blocking(*args: Any, **kwargs: Any) -> Any:
            return self.run(attr(*args, **kwargs))

        return blocking

    def close(self) -> None:
        if not self._loop.is_closed():
            self._loop.run_until_complete(self.aio.aclose())
            self._loop.close()

    def __enter__(self) -> MeshApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["MeshApi"]
