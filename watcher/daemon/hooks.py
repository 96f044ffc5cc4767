"""Notify commands run on every transition, strictly in order, never blocking the data path.

`HookRunner.submit(env)` only enqueues (the decide/apply loop never waits on a hook); one worker
task runs the configured commands one after the other, each in its own process group with a
timeout, after which the whole group is killed (a hook's children die with it). keepalived's
notify scripts race with each other; a single FIFO worker is its recommended cure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

from .._aio import wait_for
from .._types import NextHop
from .config import Hook

log = logging.getLogger(__name__)
HookResult = Literal["ok", "failed", "timeout", "error", "dropped"]
_OUTPUT_LIMIT = 4096


def transition_env(
    *,
    node_id: str,
    mode: str,
    old_replica: str | None,
    new: NextHop | None,
    reason: str,
    state: str | None = None,
) -> dict[str, str]:
    """The MESH_* variables a hook sees. Unknown values are empty strings, never missing."""
    env = {
        "MESH_NODE_ID": node_id,
        "MESH_MODE": mode,
        "MESH_OLD_REPLICA": old_replica or "",
        "MESH_NEW_REPLICA": new.replica_id if new else "",
        "MESH_NEXTHOP_IPV4": str(new.ipv4) if new and new.ipv4 else "",
        "MESH_NEXTHOP_IPV6": str(new.ipv6) if new and new.ipv6 else "",
        "MESH_REASON": reason,
    }
    if state is not None:
        env["MESH_STATE"] = state
    return env


class HookRunner:
    def __init__(
        self,
        hooks: Sequence[Hook],
        *,
        on_result: Callable[[HookResult], None] | None = None,
        max_queue: int = 256,
    ) -> None:
        self.hooks = tuple(hooks)
        self._on_result = on_result
        self._queue: asyncio.Queue[Mapping[str, str]] = asyncio.Queue(max_queue)
        self._task: asyncio.Task[None] | None = None
        self.counts: dict[HookResult, int] = {}

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._worker(), name="hooks")

    def update(self, hooks: Sequence[Hook]) -> None:
        """New hook list (config reload); takes effect from the next transition."""
        self.hooks = tuple(hooks)

    def submit(self, env: Mapping[str, str]) -> None:
        if not self.hooks:
            return
        try:
            self._queue.put_nowait(dict(env))
        except asyncio.QueueFull:
            # A backlog this deep means hooks are hung; dropping beats unbounded memory.
            log.error(
                "hook queue full (%d transitions pending); dropping this transition", self._queue.qsize()
            )
            self._count("dropped")

    async def drain(self, timeout: float) -> bool:
        """Wait until every queued transition has run; False on timeout."""
        try:
            await wait_for(self._queue.join(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self, drain_timeout: float = 5.0) -> None:
        if self._task is None:
            return
        await self.drain(drain_timeout)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    def _count(self, result: HookResult) -> None:
        self.counts[result] = self.counts.get(result, 0) + 1
        if self._on_result is not None:
            self._on_result(result)

    async def _worker(self) -> None:
        while True:
            env = await self._queue.get()
            try:
                for hook in self.hooks:
                    self._count(await run_hook(hook, env))
            finally:
                self._queue.task_done()


async def run_hook(hook: Hook, env: Mapping[str, str]) -> HookResult:
    argv = list(hook.command)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            env={**os.environ, **env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a timeout kills its children too
        )
    except OSError as exc:
        log.error("hook %s: cannot start: %s", argv[0], exc)
        return "error"
    try:
        out, _ = await wait_for(proc.communicate(), hook.timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            await proc.wait()
        log.error("hook %s: killed after %.1fs timeout", argv[0], hook.timeout)
        return "timeout"
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        raise
    text = out[:_OUTPUT_LIMIT].decode(errors="replace").strip() if out else ""
    if proc.returncode != 0:
        log.warning("hook %s: exit status %s%s", argv[0], proc.returncode, f": {text}" if text else "")
        return "failed"
    if text:
        log.debug("hook %s: %s", argv[0], text)
    return "ok"
