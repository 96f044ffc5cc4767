"""The operator CLI end to end: real `mesh-watcher` processes against a live control plane."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cfapi_live import ControlPlaneProcess, start_agent, wait_until


def cli(
    cp: ControlPlaneProcess, token_file: Path, *args: str, stdin: str = "", env_api: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
    if env_api:
        env["MESH_API_URL"] = cp.base
    cmd = [sys.executable, "-m", "watcher", *args, "--token-file", str(token_file)]
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60, env=env, check=False)


@pytest.fixture
def admin(control_plane: ControlPlaneProcess, tmp_path: Path) -> Iterator[Path]:
    token_file = tmp_path / "admin.token"
    token_file.write_text(control_plane.admin)
    token_file.chmod(0o600)
    yield token_file


def test_operator_cli_end_to_end(control_plane: ControlPlaneProcess, admin: Path, tmp_path: Path) -> None:
    cp = control_plane
    made = cli(cp, admin, "node", "create", "office")
    assert made.returncode == 0, made.stderr
    assert "Created node office (HA)" in made.stdout

    listed = cli(cp, admin, "node", "list", "--json")
    nodes = json.loads(listed.stdout)
    assert [n["name"] for n in nodes] == ["office"] and nodes[0]["metadata"]["ha"] is True
    node_id = nodes[0]["id"]

    add = cli(cp, admin, "node", "add-replica", "office")
    assert add.returncode == 0, add.stderr
    token = json.loads(cli(cp, admin, "node", "add-replica", node_id, "--json").stdout)["token"]
    assert f"warp-cli connector new {token}" in add.stdout and "warp-cli connect" in add.stdout
    assert f"mesh-watcher replica --api {cp.base} --token {token} --state-dir" in add.stdout

    agents = [
        start_agent(cp.base, token, tmp_path / n, n, lan)
        for n, lan in (("gw-a", "192.0.2.11"), ("gw-b", "192.0.2.12"))
    ]
    try:

        def replicas() -> list[dict[str, object]]:
            out = cli(cp, admin, "node", "replicas", "office", "--json")
            assert out.returncode == 0, out.stderr
            return json.loads(out.stdout)  # type: ignore[no-any-return]

        wait_until(
            lambda: sorted(str(r["ha_status"]) for r in replicas()) == ["active", "passive"],
            30,
            "two replicas",
            interval=0.3,
        )
        table = cli(cp, admin, "node", "replicas", "office")
        header, *rows = table.stdout.splitlines()
        assert header.split()[:4] == ["ID", "STATUS", "MESH", "IPV4"] and "LAN ADDRESSES" in header
        assert len(rows) == 2 and any("192.0.2.11" in r and "gw-a" in r and "LAB1" in r for r in rows)
        passive = next(r for r in replicas() if r["ha_status"] == "passive")

        refused = cli(cp, admin, "node", "promote", "office", str(passive["id"]), stdin="n\n")
        assert refused.returncode == 1 and f"Promote replica {passive['id']}" in refused.stdout
        assert next(r for r in replicas() if r["id"] == passive["id"])["ha_status"] == "passive"

        promoted = cli(cp, admin, "node", "promote", "office", str(passive["device_name"]), "--yes")
        assert promoted.returncode == 0, promoted.stderr
        assert next(r for r in replicas() if r["id"] == passive["id"])["ha_status"] == "active"
        # The options may also come before the action.
        shown = cli(cp, admin, "node", "--api", cp.base, "show", "office", env_api=False)
        assert shown.returncode == 0, shown.stderr
        assert f"active replica:     {passive['id']}" in shown.stdout
    finally:
        for agent in agents:
            agent.stop()

    added = cli(cp, admin, "routes", "add", "office", "198.51.100.0/24", "--comment", "office lan")
    assert added.returncode == 0 and "198.51.100.0/24" in added.stdout, added.stderr
    routes = cli(cp, admin, "routes", "list", "--node", "office")
    assert (
        "198.51.100.0/24" in routes.stdout and "office lan" in routes.stdout and " office " in routes.stdout
    )
    route_id = json.loads(cli(cp, admin, "routes", "list", "--json").stdout)[0]["id"]

    bad = cli(cp, admin, "routes", "add", "office", "198.51.100.7/24")
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.startswith("error: ") and "198.51.100.7/24" in bad.stderr

    dup = cli(cp, admin, "routes", "add", "office", "198.51.100.0/24")
    assert dup.returncode == 1 and "error: " in dup.stderr

    assert cli(cp, admin, "routes", "delete", route_id).returncode == 0
    assert json.loads(cli(cp, admin, "routes", "list", "--json").stdout) == []

    gone = cli(cp, admin, "node", "show", "nosuchnode")
    assert gone.returncode == 1 and "nosuchnode" in gone.stderr
    assert cli(cp, admin, "node", "delete", "office").returncode == 0
    assert json.loads(cli(cp, admin, "node", "list", "--json").stdout) == []


def test_cli_usage_errors(control_plane: ControlPlaneProcess, admin: Path) -> None:
    no_api = cli(control_plane, admin, "node", "list", env_api=False)
    assert no_api.returncode == 2 and "MESH_API_URL" in no_api.stderr
    wrong = admin.parent / "wrong.token"
    wrong.write_text("not-a-token")
    denied = cli(control_plane, wrong, "node", "list")
    assert denied.returncode == 1 and denied.stderr.startswith("error: ")
