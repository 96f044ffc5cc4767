"""asyncio helpers shared by the daemon, the source and the control plane."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def wait_for(aw: Awaitable[T], timeout: float | None) -> T:
    """`asyncio.wait_for` as Python 3.12 implements it, on top of `asyncio.timeout`.

    Python 3.11's `asyncio.wait_for` can swallow a cancellation that lands in the same loop
    iteration as the awaited thing completing (cpython#86296): the caller then keeps running
    after `task.cancel()` and a shutdown hangs. Seen here as a Source that never stopped.
    """
    async with asyncio.timeout(timeout):
        return await aw
