"""Hooks: real subprocesses, strict order, timeouts kill the process group, failures counted."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import sys
import time
from pathlib import Path

from watcher._types import NextHop
from watcher.daemon.config import Hook
from watcher.daemon.hooks import HookRunner, transition_env

PY = sys.executable


def hook(code: str, timeout: float = 10.0) -> Hook:
    return Hook(command=(PY, "-c", code), timeout=timeout)


def env(i: int) -> dict[str, str]:
    hop = NextHop(f"r{i}", ipaddress.IPv4Address(f"192.0.2.{i}"), ipaddress.IPv6Address(f"2001:db8:1::{i}"))
    return transition_env(
        node_id="n1", mode="router", old_replica=f"r{i - 1}", new=hop, reason=f"because {i}"
    )


async def test_hooks_run_in_order_with_env(tmp_path: Path) -> None:
    out = tmp_path / "log"
    # A slow first hook: if runs overlapped, lines of later transitions would overtake it.
    code = (
        "import os, random, time; time.sleep(random.random() * 0.05); "
        f"open({str(out)!r}, 'a').write(' '.join(os.environ[k] for k in ('MESH_NODE_ID', 'MESH_OLD_REPLICA', "
        "'MESH_NEW_REPLICA', 'MESH_NEXTHOP_IPV4', 'MESH_NEXTHOP_IPV6', 'MESH_MODE')) + '|' "
        "+ os.environ['MESH_REASON'] + '|' + os.environ.get('MESH_STATE', '-') + '\\n')"
    )
    results: list[str] = []
    runner = HookRunner([hook(code), hook(code.replace("'\\n'", "'!\\n'"))], on_result=results.append)
    runner.start()
    t0 = time.monotonic()
    for i in range(1, 7):
        runner.submit(env(i))
    submit_time = time.monotonic() - t0
    assert await runner.drain(30)
    await runner.close()
    lines = out.read_text().splitlines()
    expected = []
    for i in range(1, 7):
        base = f"n1 r{i - 1} r{i} 192.0.2.{i} 2001:db8:1::{i} router|because {i}|-"
        expected += [base, base + "!"]
    assert lines == expected
    assert results == ["ok"] * 12 and runner.counts == {"ok": 12}
    assert submit_time < 0.5  # submit never waits for a hook


async def test_timeout_kills_the_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    # The hook starts a grandchild that would outlive a plain kill of the hook itself.
    code = (
        "import subprocess, sys, time; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"open({str(pidfile)!r}, 'w').write(str(p.pid)); time.sleep(60)"
    )
    runner = HookRunner([hook(code, timeout=1.0), hook("pass")])
    runner.start()
    t0 = time.monotonic()
    runner.submit(env(1))
    assert await runner.drain(20)
    elapsed = time.monotonic() - t0
    await runner.close()
    assert runner.counts == {"timeout": 1, "ok": 1}
    assert 1.0 <= elapsed < 15
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(child):
        await asyncio.sleep(0.05)
    assert not _alive(child), "the hook's child survived the timeout"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


async def test_failures_are_counted_and_do_not_stop_the_queue(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    seen: list[str] = []
    runner = HookRunner(
        [
            hook("import sys; sys.exit(3)"),
            Hook(command=(str(tmp_path / "does-not-exist"),)),
            hook(f"open({str(marker)!r}, 'a').write('x')"),
        ],
        on_result=seen.append,
    )
    runner.start()
    runner.submit(env(1))
    runner.submit(env(2))
    assert await runner.drain(20)
    await runner.close()
    assert seen == ["failed", "error", "ok", "failed", "error", "ok"]
    assert marker.read_text() == "xx"


async def test_queue_full_drops_and_counts() -> None:
    runner = HookRunner([hook("pass")], max_queue=2)  # worker not started: nothing drains
    for i in range(1, 5):
        runner.submit(env(i))
    assert runner.counts == {"dropped": 2}


def test_env_for_no_target_and_vip_state() -> None:
    e = transition_env(node_id="n", mode="vip", old_replica=None, new=None, reason="r", state="master")
    assert e["MESH_NEW_REPLICA"] == "" and e["MESH_NEXTHOP_IPV4"] == "" and e["MESH_STATE"] == "master"
