"""Fixtures: a fresh sandbox server per test (real socket, in-memory state, simulated
clock), and callers for its owner and agents."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from etoro_nb.client import EtoroClient
from etoro_nb.sandbox import SandboxConfig, SandboxServer, start
from tests.agent_support import Desk, open_desk
from tests.helpers import Api
from tests.pg_support import postgres  # noqa: F401  (a session's PostgreSQL server, for any test)

START = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _ledger_in_tmp(tmp_path_factory: pytest.TempPathFactory,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    """connect() records into a ledger; in tests it never touches the user's default one."""
    monkeypatch.setenv("ETORO_NB_LEDGER", str(tmp_path_factory.mktemp("ledger") / "l.sqlite"))


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


@pytest.fixture
def make_client() -> Iterator[Callable[..., EtoroClient]]:
    """Owner clients of a given sandbox server; closed after the test."""
    made: list[EtoroClient] = []

    def make(server: SandboxServer, **settings: Any) -> EtoroClient:
        creds = server.credentials
        settings.setdefault("environment", "sandbox")
        settings.setdefault("allow_real", True)
        client = EtoroClient(base_url=creds.base_url, api_key=creds.api_key,
                        user_key=creds.user_key, **settings)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(server: SandboxServer, make_client: Callable[..., EtoroClient]) -> EtoroClient:
    return make_client(server)


@pytest.fixture
def desk(make_server: Callable[..., SandboxServer], make_client: Callable[..., EtoroClient],
         tmp_path: Path) -> Iterator[Desk]:
    """An owner, a sandbox and agent portfolios to trade under policies (``agent_support``);
    the agents' clients are closed after the test."""
    desk = open_desk(make_server, make_client, tmp_path)
    yield desk
    for agent in desk.agents:
        agent.close()


@pytest.fixture
def browser_sandbox() -> Iterator[SandboxServer]:
    """A sandbox for the browser to drive, its quota out of the way."""
    server = start(SandboxConfig(read_limit=10**6, write_limit=10**6))
    try:
        yield server
    finally:
        server.stop()
