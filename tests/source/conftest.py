from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The scripted HTTP server lives with the client tests; share it rather than copy it.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "cfapi"))

from cfapi_scripted import Handler, ScriptedServer


@pytest.fixture
def serve() -> Iterator[object]:
    servers: list[ScriptedServer] = []

    def start(handler: Handler) -> ScriptedServer:
        server = ScriptedServer(handler).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


@pytest.fixture
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from cfapi_live import ControlPlane

    cp = ControlPlane(tmp_path_factory.mktemp("cp")).start()
    yield cp
    cp.stop()
