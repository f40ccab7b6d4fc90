"""Fixtures: a fresh sandbox server per test (real socket, in-memory state, simulated
clock), and callers for its owner and agents."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from etoro_nb.sandbox import SandboxConfig, SandboxServer, start
from tests.helpers import Api

START = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


@pytest.fixture
def make_server() -> Iterator[Callable[..., SandboxServer]]:
    """Start sandboxes with config overrides; all are stopped after the test."""
    servers: list[SandboxServer] = []

    def make(**overrides: Any) -> SandboxServer:
        overrides.setdefault("clock", START)
        server = start(SandboxConfig(**overrides))
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., SandboxServer]) -> SandboxServer:
    return make_server()


@pytest.fixture
def owner(server: SandboxServer) -> Iterator[Api]:
    api = Api(server)
    yield api
    api.close()


@pytest.fixture
def agent_for(server: SandboxServer) -> Iterator[Callable[[str], Api]]:
    """Callers acting with a delegated token's secret."""
    made: list[Api] = []

    def make(secret: str) -> Api:
        api = Api(server, user_key=secret)
        made.append(api)
        return api

    yield make
    for api in made:
        api.close()
