"""pytest fixtures for the lab: `lab` (an empty Lab) and `mesh_lab` (the standard topology)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from ._netns import Lab
from .topology import MeshLab, build_mesh_lab


@pytest.fixture
def lab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("the netns lab needs root")
    with Lab() as the_lab:
        yield the_lab


@pytest.fixture
def mesh_lab(lab: Lab) -> MeshLab:
    return build_mesh_lab(lab)
