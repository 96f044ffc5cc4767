"""Bearer tokens: admin, API tokens (read/write), node tokens (one node's replica-agent endpoints).

Only SHA-256 hashes of admin and API tokens are stored. Node tokens are not stored at all: they
are `base64url({"a": account, "t": node, "s": secret})` with `secret = HMAC(state key, account:node)`,
so `GET .../token` can hand out the same token again and a stolen database holds no usable token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ._store import Store
from ._util import AUTH, ApiError, new_hex, now_iso

Scope = Literal["read", "write", "admin"]
_RANK: dict[str, int] = {"read": 1, "write": 2, "admin": 3}


@dataclass(frozen=True, slots=True)
class Principal:
    kind: Literal["read", "write", "admin", "node"]
    account_id: str
    tunnel_id: str | None = None
    token_id: str | None = None


def hash_token(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_token_value() -> str:
    return secrets.token_urlsafe(30)


def write_secret_file(path: Path, value: str) -> None:
    """Write `value` to `path` readable by the owner only (0600, never world-readable), atomically:
    a kill at any moment leaves the old file or the new one, never an empty or partial one."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (value + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)


def load_state_key(state_dir: Path) -> bytes:
    """The key node tokens are derived from. Losing it would invalidate every node token, so a
    damaged file stops the start instead of being replaced."""
    path = state_dir / "node-token.key"
    if not path.exists():
        write_secret_file(path, secrets.token_hex(32))
    text = path.read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise RuntimeError(
            f"{path}: not a 64-hex-digit key; restore it from a backup (node tokens depend on it)"
            " or delete it to issue new node tokens to every replica"
        )
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def make_node_token(key: bytes, account_id: str, tunnel_id: str) -> str:
    secret = _b64(hmac.new(key, f"{account_id}:{tunnel_id}".encode(), hashlib.sha256).digest())
    return _b64(json.dumps({"a": account_id, "t": tunnel_id, "s": secret}, separators=(",", ":")).encode())


def parse_node_token(value: str) -> tuple[str, str, str] | None:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("a", "t", "s")):
        return None
    return data["a"], data["t"], data["s"]


def ensure_account_and_admin(store: Store, state_dir: Path, supplied: str | None) -> str:
    """Create the single account on first start and make sure an admin token exists. Returns the account."""
    accounts = store.accounts()
    if accounts:
        account_id = str(accounts[0]["id"])
    else:
        account_id = new_hex(16)
        store.add_account({"id": account_id, "name": "mesh-watcher", "created_at": now_iso()})
    has_admin = store.db.execute(
        "SELECT 1 FROM tokens WHERE account_id = ? AND scope = 'admin'", (account_id,)
    ).fetchone()
    if supplied:
        existing = store.token_by_hash(hash_token(supplied))
        if existing is None or existing["scope"] != "admin":
            with store.tx():  # the supplied value becomes the admin token, whatever it was before
                if existing is not None:
                    store.delete_token(existing["id"])
                store.replace_admin_hash(account_id, hash_token(supplied), new_hex(16), now_iso())
    elif not has_admin:
        value = new_token_value()
        write_secret_file(state_dir / "admin.token", value)
        store.replace_admin_hash(account_id, hash_token(value), new_hex(16), now_iso())
    return account_id


class Authenticator:
    def __init__(self, store: Store, key: bytes) -> None:
        self.store = store
        self.key = key

    def authenticate(self, header: str | None) -> Principal:
        if not header:
            raise ApiError(401, AUTH, "missing Authorization header: send 'Authorization: Bearer <token>'")
        scheme, _, value = header.partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            raise ApiError(401, AUTH, "malformed Authorization header: expected 'Bearer <token>'")
        row = self.store.token_by_hash(hash_token(value))
        if row is not None:
            return Principal(row["scope"], row["account_id"], token_id=row["id"])
        parsed = parse_node_token(value)
        if parsed is not None:
            account_id, tunnel_id, _ = parsed
            if hmac.compare_digest(make_node_token(self.key, account_id, tunnel_id), value):
                node = self.store.node(tunnel_id)
                if node is not None and node["deleted_at"] is None:
                    return Principal("node", account_id, tunnel_id=tunnel_id)
                raise ApiError(401, AUTH, f"the node token is for node {tunnel_id!r}, which no longer exists")
        raise ApiError(401, AUTH, "invalid or revoked token")

    @staticmethod
    def require(principal: Principal, account_id: str, scope: Scope) -> None:
        if principal.kind == "node":
            raise ApiError(
                403, AUTH, "a node token may only call the replica-agent endpoints (/connector/...)"
            )
        if principal.account_id != account_id:
            raise ApiError(403, AUTH, f"the token has no access to account {account_id!r}")
        if _RANK[principal.kind] < _RANK[scope]:
            raise ApiError(
                403,
                AUTH,
                f"this call needs a token with the '{scope}' scope; the token has '{principal.kind}'",
            )

    @staticmethod
    def require_node(principal: Principal) -> str:
        if principal.kind != "node" or principal.tunnel_id is None:
            raise ApiError(
                403, AUTH, "the replica-agent endpoints need a node token (GET .../warp_connector/{id}/token)"
            )
        return principal.tunnel_id
