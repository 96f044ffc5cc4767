"""Durable state of the control plane: SQLite in WAL mode with synchronous=FULL.

Every write happens inside `Store.tx()` (BEGIN IMMEDIATE ... COMMIT), so an answered request whose
write committed survives `kill -9`. Heartbeats never come here: they live in the engine's memory.
The schema evolves by numbered migrations recorded in `PRAGMA user_version`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

Row = dict[str, Any]

MIGRATIONS: tuple[str, ...] = (
    # 1: initial schema
    """
    CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE accounts(id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at TEXT NOT NULL);
    CREATE TABLE tokens(
        id TEXT PRIMARY KEY, account_id TEXT NOT NULL, name TEXT NOT NULL, scope TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL);
    CREATE TABLE nodes(
        id TEXT PRIMARY KEY, account_id TEXT NOT NULL, name TEXT NOT NULL, ha INTEGER NOT NULL,
        created_at TEXT NOT NULL, deleted_at TEXT, status TEXT NOT NULL DEFAULT 'inactive',
        conns_active_at TEXT, conns_inactive_at TEXT, active_replica_id TEXT,
        generation INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE replicas(
        id TEXT PRIMARY KEY, tunnel_id TEXT NOT NULL REFERENCES nodes(id),
        mesh_ipv4 TEXT UNIQUE, mesh_ipv6 TEXT UNIQUE, arch TEXT, platform TEXT, version TEXT,
        device_name TEXT, transport TEXT, lan_addresses TEXT NOT NULL DEFAULT '[]',
        created_at TEXT NOT NULL, run_at TEXT, connected INTEGER NOT NULL DEFAULT 0,
        conn_id TEXT, opened_at TEXT, origin_ip TEXT);
    CREATE INDEX replicas_node ON replicas(tunnel_id);
    CREATE TABLE routes(
        id TEXT PRIMARY KEY, account_id TEXT NOT NULL, network TEXT NOT NULL, tunnel_id TEXT NOT NULL,
        comment TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL, deleted_at TEXT);
    CREATE UNIQUE INDEX routes_live_network ON routes(account_id, network) WHERE deleted_at IS NULL;
    CREATE TABLE webhooks(
        id TEXT PRIMARY KEY, account_id TEXT NOT NULL, name TEXT NOT NULL, url TEXT NOT NULL,
        secret TEXT NOT NULL, created_at TEXT NOT NULL);
    CREATE TABLE events(
        tunnel_id TEXT NOT NULL, generation INTEGER NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL,
        PRIMARY KEY(tunnel_id, generation));
    """,
)

_COLUMNS = {
    "nodes": {"name", "deleted_at", "status", "conns_active_at", "conns_inactive_at", "active_replica_id"},
    "replicas": {
        "arch",
        "platform",
        "version",
        "device_name",
        "transport",
        "lan_addresses",
        "run_at",
        "connected",
        "conn_id",
        "opened_at",
        "origin_ip",
    },
    "routes": {"network", "tunnel_id", "comment", "deleted_at"},
}


class Store:
    def __init__(self, path: str | Path, *, event_retention: int = 10_000) -> None:
        if event_retention < 1:
            raise ValueError(f"event retention must be at least 1 event per node, not {event_retention}")
        self.path = Path(path)
        self.event_retention = event_retention
        # Autocommit mode: transactions are explicit (tx()), never implicit.
        self.db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute("PRAGMA busy_timeout=5000")
        self._depth = 0
        self._migrate()
        self._prune_all()

    def close(self) -> None:
        self.db.close()

    def _migrate(self) -> None:
        version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
        if version > len(MIGRATIONS):
            raise RuntimeError(f"{self.path}: schema version {version} is newer than this program knows")
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.tx():
                for statement in script.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version={number}")

    @contextmanager
    def tx(self) -> Iterator[None]:
        """A write transaction; nested calls join the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")
        finally:
            self._depth = 0

    # generic ------------------------------------------------------------------------------
    def _one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        row = self.db.execute(sql, args).fetchone()
        return dict(row) if row is not None else None

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return [dict(r) for r in self.db.execute(sql, args).fetchall()]

    def _insert(self, table: str, row: Row) -> Row:
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self.tx():
            self.db.execute(f"INSERT INTO {table}({cols}) VALUES ({marks})", list(row.values()))
        return row

    def update(self, table: str, ident: str, **fields: Any) -> None:
        bad = set(fields) - _COLUMNS[table]
        if bad:
            raise ValueError(f"cannot update {table}.{sorted(bad)}")
        if not fields:
            return
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.tx():
            self.db.execute(f"UPDATE {table} SET {sets} WHERE id = ?", [*fields.values(), ident])

    def _page(self, sql: str, args: list[Any], offset: int, limit: int) -> tuple[list[Row], int]:
        total = int(self.db.execute(f"SELECT COUNT(*) FROM ({sql})", args).fetchone()[0])
        return self._all(f"{sql} LIMIT ? OFFSET ?", [*args, limit, offset]), total

    # meta ---------------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row["value"])

    def set_meta(self, key: str, value: str) -> None:
        with self.tx():
            self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def next_counter(self, key: str) -> int:
        with self.tx():
            value = int(self.meta(key) or "0") + 1
            self.set_meta(key, str(value))
        return value

    # accounts and tokens ----------------------------------------------------------------
    def accounts(self) -> list[Row]:
        return self._all("SELECT * FROM accounts ORDER BY created_at")

    def add_account(self, row: Row) -> Row:
        return self._insert("accounts", row)

    def add_token(self, row: Row) -> Row:
        return self._insert("tokens", row)

    def token_by_hash(self, digest: str) -> Row | None:
        return self._one("SELECT * FROM tokens WHERE hash = ?", (digest,))

    def token(self, account_id: str, token_id: str) -> Row | None:
        return self._one("SELECT * FROM tokens WHERE account_id = ? AND id = ?", (account_id, token_id))

    def tokens(self, account_id: str, offset: int, limit: int) -> tuple[list[Row], int]:
        return self._page(
            "SELECT id, name, scope, created_at FROM tokens WHERE account_id = ? AND scope != 'admin'"
            " ORDER BY created_at, id",
            [account_id],
            offset,
            limit,
        )

    def delete_token(self, token_id: str) -> None:
        with self.tx():
            self.db.execute("DELETE FROM tokens WHERE id = ?", (token_id,))

    def replace_admin_hash(self, account_id: str, digest: str, token_id: str, now: str) -> None:
        with self.tx():
            self.db.execute("DELETE FROM tokens WHERE account_id = ? AND scope = 'admin'", (account_id,))
            self.add_token(
                {
                    "id": token_id,
                    "account_id": account_id,
                    "name": "admin",
                    "scope": "admin",
                    "hash": digest,
                    "created_at": now,
                }
            )

    # nodes ---------------------------------------------------------------------------------
    def add_node(self, row: Row) -> Row:
        return self._insert("nodes", row)

    def node(self, node_id: str) -> Row | None:
        return self._one("SELECT * FROM nodes WHERE id = ?", (node_id,))

    def live_node_named(self, account_id: str, name: str) -> Row | None:
        return self._one(
            "SELECT * FROM nodes WHERE account_id = ? AND name = ? AND deleted_at IS NULL", (account_id, name)
        )

    def all_nodes(self) -> list[Row]:
        return self._all("SELECT * FROM nodes WHERE deleted_at IS NULL")

    def nodes(
        self, account_id: str, name: str | None, is_deleted: bool | None, offset: int, limit: int
    ) -> tuple[list[Row], int]:
        sql, args = "SELECT * FROM nodes WHERE account_id = ?", [account_id]
        if name is not None:
            sql += " AND name = ?"
            args.append(name)
        if is_deleted is not None:
            sql += " AND deleted_at IS NOT NULL" if is_deleted else " AND deleted_at IS NULL"
        return self._page(sql + " ORDER BY created_at, id", args, offset, limit)

    # replicas ------------------------------------------------------------------------------
    def add_replica(self, row: Row) -> Row:
        return self._insert("replicas", row)

    def replica(self, replica_id: str) -> Row | None:
        return self._one("SELECT * FROM replicas WHERE id = ?", (replica_id,))

    def replicas(self, node_id: str) -> list[Row]:
        return self._all("SELECT * FROM replicas WHERE tunnel_id = ? ORDER BY created_at, id", (node_id,))

    # routes --------------------------------------------------------------------------------
    def add_route(self, row: Row) -> Row:
        return self._insert("routes", row)

    def route(self, account_id: str, route_id: str) -> Row | None:
        return self._one("SELECT * FROM routes WHERE account_id = ? AND id = ?", (account_id, route_id))

    def live_route_for(self, account_id: str, network: str) -> Row | None:
        return self._one(
            "SELECT * FROM routes WHERE account_id = ? AND network = ? AND deleted_at IS NULL",
            (account_id, network),
        )

    def routes(
        self, account_id: str, tunnel_id: str | None, is_deleted: bool | None, offset: int, limit: int
    ) -> tuple[list[Row], int]:
        sql, args = "SELECT * FROM routes WHERE account_id = ?", [account_id]
        if tunnel_id is not None:
            sql += " AND tunnel_id = ?"
            args.append(tunnel_id)
        if is_deleted is not None:
            sql += " AND deleted_at IS NOT NULL" if is_deleted else " AND deleted_at IS NULL"
        return self._page(sql + " ORDER BY created_at, id", args, offset, limit)

    # webhooks -----------------------------------------------------------------------------
    def add_webhook(self, row: Row) -> Row:
        return self._insert("webhooks", row)

    def webhook(self, account_id: str, hook_id: str) -> Row | None:
        return self._one("SELECT * FROM webhooks WHERE account_id = ? AND id = ?", (account_id, hook_id))

    def webhooks(self, account_id: str, offset: int = 0, limit: int = 1_000_000) -> tuple[list[Row], int]:
        return self._page(
            "SELECT * FROM webhooks WHERE account_id = ? ORDER BY created_at, id", [account_id], offset, limit
        )

    def delete_webhook(self, hook_id: str) -> None:
        with self.tx():
            self.db.execute("DELETE FROM webhooks WHERE id = ?", (hook_id,))

    # events --------------------------------------------------------------------------------
    def add_event(self, node_id: str, build: Any) -> Row:
        """Append an event with the node's next generation; `build(generation)` makes its data.

        The node keeps its last `event_retention` events: the one that falls out of the window is
        deleted in the same transaction (one primary-key lookup), so the table never grows."""
        with self.tx():
            row = self.db.execute("SELECT generation FROM nodes WHERE id = ?", (node_id,)).fetchone()
            generation = int(row[0]) + 1
            self.db.execute("UPDATE nodes SET generation = ? WHERE id = ?", (generation, node_id))
            data: Row = build(generation)
            self.db.execute(
                "INSERT INTO events(tunnel_id, generation, type, data) VALUES (?, ?, ?, ?)",
                (node_id, generation, data["type"], json.dumps(data)),
            )
            self.db.execute(
                "DELETE FROM events WHERE tunnel_id = ? AND generation <= ?",
                (node_id, generation - self.event_retention),
            )
        return data

    def _prune_all(self) -> None:
        """At start: apply a retention lowered since the last run (cheap when nothing is over)."""
        with self.tx():
            self.db.execute(
                "DELETE FROM events WHERE generation <= "
                "(SELECT n.generation FROM nodes n WHERE n.id = events.tunnel_id) - ?",
                (self.event_retention,),
            )

    def event_window(self, node_id: str) -> tuple[int, int]:
        """(oldest retained generation, current generation) of a node; oldest is current + 1 when
        no event is kept. Read in one statement, so both come from the same snapshot."""
        row = self.db.execute(
            "SELECT (SELECT MIN(generation) FROM events WHERE tunnel_id = ?),"
            " (SELECT generation FROM nodes WHERE id = ?)",
            (node_id, node_id),
        ).fetchone()
        current = int(row[1] or 0)
        return (int(row[0]) if row[0] is not None else current + 1), current

    def events_after(self, node_id: str, generation: int, limit: int = 10_000) -> list[Row]:
        rows = self._all(
            "SELECT data FROM events WHERE tunnel_id = ? AND generation > ? ORDER BY generation LIMIT ?",
            (node_id, generation, limit),
        )
        return [json.loads(r["data"]) for r in rows]
