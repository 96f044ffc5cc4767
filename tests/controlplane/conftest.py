"""Fixtures for the control-plane tests (helpers live in cp_helpers.py)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from cp_helpers import Agents, ControlPlane, make_cp


@pytest.fixture
def cp(tmp_path: Path) -> Iterator[ControlPlane]:
    plane = make_cp(tmp_path).start()
    yield plane
    with contextlib.suppress(Exception):
        plane.stop(signal.SIGKILL)


@pytest.fixture(scope="module")
def shared_cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    plane = make_cp(tmp_path_factory.mktemp("shared")).start()
    yield plane
    with contextlib.suppress(Exception):
        plane.stop(signal.SIGKILL)


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Agents]:
    group = Agents(tmp_path)
    yield group
    group.close()
