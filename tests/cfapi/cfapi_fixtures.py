"""Fixtures shared by the client tests and the source tests (imported by both conftests)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from cfapi_live import ControlPlaneProcess
from cfapi_live import control_plane as make_control_plane
from cfapi_scripted import Handler, ScriptedServer


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], ScriptedServer]]:
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
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlaneProcess]:
    cp = make_control_plane(tmp_path_factory.mktemp("cp")).start()
    yield cp
    cp.stop()
