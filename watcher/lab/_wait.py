"""Bounded polling: the one wait loop of the lab, the tests, the demo and the bench."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(TimeoutError, AssertionError):
    """A condition not met in time. An AssertionError too, so a test fails (not errors) on it."""


def wait_until(
    pred: Callable[[], T | None],
    timeout: float,
    what: str,
    interval: float = 0.05,
    *,
    retry_on: tuple[type[BaseException], ...] = (),
) -> T:
    """Poll `pred()` every `interval` s until it is truthy and return that value; WaitTimeout
    (naming `what` and the last value) after `timeout` s. Exceptions of `retry_on` count as
    "not yet" (e.g. a server still starting); any other exception propagates at once."""
    deadline = time.monotonic() + timeout
    last: T | BaseException | None = None
    while True:
        try:
            got = pred()
        except retry_on as exc:
            last = exc
        else:
            if got:
                return got
            last = got
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")
        time.sleep(interval)
