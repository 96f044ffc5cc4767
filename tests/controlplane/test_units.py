"""Small in-process units: the store's migrations and durability settings, backoff, forwarding switch."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from watcher.agent import Backoff
from watcher.agent._sysinfo import Forwarding
from watcher.controlplane._auth import make_node_token, parse_node_token
from watcher.controlplane._store import MIGRATIONS, Store


def test_store_migrates_once_and_uses_wal_full(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.set_meta("k", "v")
    store.close()
    again = Store(tmp_path / "s.db")  # no migration re-run, data kept
    assert again.meta("k") == "v"
    again.close()


def test_store_refuses_a_newer_schema(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "s.db")
    db.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(RuntimeError, match="newer"):
        Store(tmp_path / "s.db")


def test_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    with pytest.raises(ZeroDivisionError), store.tx():
        store.set_meta("a", "1")
        _ = 1 / 0
    assert store.meta("a") is None


def test_backoff_grows_jittered_and_bounded() -> None:
    b = Backoff(base=0.1, cap=1.0, rng=random.Random(1))
    delays = [b.next() for _ in range(40)]
    assert all(0.05 <= d <= 1.0 for d in delays)
    assert delays[0] <= 0.1 and max(delays) > 0.5
    assert len({round(d, 6) for d in delays[10:]}) > 1  # jitter
    b.reset()
    assert b.next() <= 0.1


def test_forwarding_switch_writes_both_sysctls(tmp_path: Path) -> None:
    for key in ("net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"):
        (tmp_path / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / key).write_text("0\n")
    fwd = Forwarding(True, proc_sys=tmp_path)
    fwd.set(True, "active")
    assert (tmp_path / "net/ipv4/ip_forward").read_text() == "1\n"
    assert (tmp_path / "net/ipv6/conf/all/forwarding").read_text() == "1\n"
    fwd.set(False, "passive")
    assert (tmp_path / "net/ipv4/ip_forward").read_text() == "0\n"
    off = Forwarding(False, proc_sys=tmp_path)
    off.set(True, "active")  # without --dataplane nothing is touched
    assert (tmp_path / "net/ipv4/ip_forward").read_text() == "0\n"


def test_node_token_shape() -> None:
    token = make_node_token(b"k" * 32, "a" * 32, "node-1")
    account, tunnel, secret = parse_node_token(token) or ("", "", "")
    assert (account, tunnel) == ("a" * 32, "node-1") and secret
    assert make_node_token(b"x" * 32, "a" * 32, "node-1") != token
    assert parse_node_token("not base64 json!") is None


def test_rate_limiter_sliding_window() -> None:
    from watcher.controlplane._ratelimit import RateLimit, RateLimiter
    from watcher.controlplane._util import ApiError

    assert RateLimit.parse("1200/300") == RateLimit(1200, 300.0) and not RateLimit.parse("0").enabled
    for bad in ("1200", "-1/5", "5/0", "x/y", "5/inf"):
        with pytest.raises(ValueError, match="--rate-limit"):
            RateLimit.parse(bad)
    now = [100.0]
    limiter = RateLimiter(RateLimit(3, 10.0), clock=lambda: now[0])
    for t in (100.0, 101.0, 105.0):
        now[0] = t
        limiter.check("a")
    now[0] = 106.0
    with pytest.raises(ApiError) as refused:
        limiter.check("a")
    assert refused.value.status == 429 and refused.value.headers is not None
    assert refused.value.headers["retry-after"] == "4"  # the 100.0 request leaves the window at 110
    limiter.check("b")  # its own budget
    now[0] = 110.0
    limiter.check("a")  # one slot freed; the refused request did not count
    with pytest.raises(ApiError):
        limiter.check("a")


def test_secret_files_are_atomic_and_a_damaged_key_stops_the_start(tmp_path: Path) -> None:
    import stat

    from watcher.controlplane._auth import load_state_key, write_secret_file

    write_secret_file(tmp_path / "s", "one")
    write_secret_file(tmp_path / "s", "two")
    assert (tmp_path / "s").read_text() == "two\n" and sorted(p.name for p in tmp_path.iterdir()) == ["s"]
    assert stat.S_IMODE((tmp_path / "s").stat().st_mode) == 0o600
    key = load_state_key(tmp_path)
    assert len(key) == 32 and load_state_key(tmp_path) == key
    (tmp_path / "node-token.key").write_text("")  # what a kill mid-write used to leave
    with pytest.raises(RuntimeError, match=r"node-token\.key"):
        load_state_key(tmp_path)
