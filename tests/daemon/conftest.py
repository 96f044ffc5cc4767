"""Fixtures of the daemon tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from watcher.lab import Lab, build_mesh_lab

from ._stack import Stack


@pytest.fixture
def stack(lab: Lab, tmp_path: Path) -> Iterator[Stack]:
    """A Stack over a 2-replica mesh lab; its logs are printed (shown when the test failed)."""
    s = Stack(build_mesh_lab(lab, replicas=2), tmp_path)
    try:
        yield s
    finally:
        print(s.dump_logs())  # pytest shows it only when the test failed
        s.close()
