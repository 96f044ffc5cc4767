"""Config errors name the file, the line and the key, and partial input never half-loads."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from watcher._yaml import ConfigError, load_model, parse_model


class _Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    port: int
    hosts: list[str] = []


class _Top(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inner: _Inner
    name: str = "x"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("inner:\n  port: x\n", "f.yaml:2: inner.port: Input should be a valid integer"),
        ("inner:\n  port: 1\n  hostz: []\n", "f.yaml:3: inner.hostz: Extra inputs are not permitted"),
        (
            "name: a\ninner:\n  hosts:\n    - ok\n    - [1]\n  port: 1\n",
            "f.yaml:5: inner.hosts[1]: Input should be",
        ),
        ("name: a\n", "f.yaml:1: inner: Field required"),
        ("inner:\n  port: 1\n  port: 2\n", "f.yaml: line 3: key 'inner.port' repeated"),
        ("inner: [\n", "f.yaml:2: not valid YAML"),
        ("- 1\n", "f.yaml:1: the top level must be a mapping"),
    ],
)
def test_error_names_file_line_and_key(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_model(text, _Top, "f.yaml")
    assert expected in str(exc.value)


def test_load_model_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("inner: {port: 7, hosts: [a]}\n")
    assert load_model(path, _Top).inner.hosts == ["a"]
    with pytest.raises(ConfigError, match="cannot read"):
        load_model(tmp_path / "missing.yaml", _Top)
