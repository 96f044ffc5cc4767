from __future__ import annotations

from collections.abc import Iterator

import pytest
from cfapi_scripted import Handler, ScriptedServer


@pytest.fixture
def serve() -> Iterator[object]:
    """serve(handler) -> a started ScriptedServer, stopped at teardown."""
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
