"""check-config: errors name file:line:key; every shipped example loads through the real loader."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from watcher._yaml import ConfigError
from watcher.daemon.config import load_config

ROOT = Path(__file__).resolve().parents[2]
BASE = """\
mode: router
node:
  node_id: n1
control_plane:
  api: http://127.0.0.1:8787/client/v4
  token: secret
routes:
  prefixes: [100.96.0.0/12]
"""


def check(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watcher", "check-config", *extra, str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_examples_load(path: Path) -> None:
    proc = check(path, "--offline")
    assert proc.returncode == 0, proc.stderr
    assert "ok" in proc.stdout
    load_config(path)


BAD = [
    ("mode: router\n", "mode: bridge\n", 1, "mode"),
    ("routes:\n  prefixes: [100.96.0.0/12]\n", "", 1, "routes: Value error, required when mode is router"),
    ("", "vip: {interface: eth0, vrid: 1, addresses: [192.0.2.254/24]}\n", 9, "vip: Value error, only used"),
    ("", "decide:\n  hold_down: -1\n", 10, "decide.hold_down"),
    ("", "hooks:\n  - command: []\n", 10, "hooks[0].command"),
    ("", "health:\n  interval: 1\n  timeout: 2\n", 9, "health: Value error, timeout (2.0) must not exceed"),
    ("", "metrics: {listen: 'nowhere'}\n", 9, "metrics.listen"),
    (
        "",
        "replicas:\n  static:\n    - match: {id: a, device_name: b}\n      ipv4: 192.0.2.5\n",
        11,
        "replicas.static[0].match: Value error, give exactly one of",
    ),
    (
        "",
        "replicas:\n  static:\n    - match: {id: a}\n      ipv4: 192.0.2.5\n    - match: {id: a}\n"
        "      ipv4: 192.0.2.6\n",
        10,
        "replicas.static: Value error, entries 0 and 1 both match id='a'",
    ),
    (
        "",
        "replicas:\n  static:\n    - match: {id: a}\n      ipv4: 2001:db8::1\n",
        12,
        "replicas.static[0].ipv4",
    ),
    ("", "bogus: 1\n", 9, "bogus: Extra inputs are not permitted"),
]


@pytest.mark.parametrize(("old", "new", "line", "fragment"), BAD, ids=[b[3][:40] for b in BAD])
def test_errors_name_file_line_and_key(tmp_path: Path, old: str, new: str, line: int, fragment: str) -> None:
    path = tmp_path / "watcher.yaml"
    text = BASE.replace(old, new) if old else BASE + new
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path}:{line}: " in str(err.value), str(err.value)
    assert fragment in str(err.value)
    proc = check(path, "--offline")
    assert proc.returncode == 1
    assert f"{path}:{line}: " in proc.stderr and fragment in proc.stderr


def test_online_checks_token_file_and_connected_subnets(tmp_path: Path) -> None:
    path = tmp_path / "watcher.yaml"
    text = BASE.replace("  token: secret\n", f"  token_file: {tmp_path / 'missing.token'}\n")
    text += "replicas:\n  static:\n    - match: {id: a}\n      ipv4: 198.18.77.1\n"
    path.write_text(text)
    assert check(path, "--offline").returncode == 0
    proc = check(path)
    assert proc.returncode == 1
    assert f"{path}:6: control_plane.token_file: control_plane token_file" in proc.stderr
    assert (
        f"{path}:12: replicas.static[0].ipv4: next-hop 198.18.77.1 is not on a connected subnet"
        in proc.stderr
    )


def test_unreadable_file_and_bad_yaml(tmp_path: Path) -> None:
    proc = check(tmp_path / "nope.yaml", "--offline")
    assert proc.returncode == 1 and "nope.yaml: cannot read" in proc.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("mode: router\nnode: [unclosed\n")
    proc = check(bad, "--offline")
    assert proc.returncode == 1 and f"{bad}:" in proc.stderr and "not valid YAML" in proc.stderr
