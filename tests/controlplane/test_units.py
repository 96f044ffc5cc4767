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
