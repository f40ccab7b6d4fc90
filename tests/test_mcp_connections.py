"""The MCP server's ``Service`` forgets a client's connection once it is gone: over HTTP
every client session is a connection of its own, and a server that kept each one (and the
tool-list notices owed to it) would grow for as long as it runs."""

from __future__ import annotations

import gc

import anyio
import mcp_types as types
import pytest
from mcp.client.session import ClientSession
from mcp.shared.memory import create_client_server_memory_streams

from etoro_nb.mcp.launch import launch
from etoro_nb.mcp.server import Service, build
from tests.agent_support import Desk
from tests.helpers import DEMO_READ
from tests.mcp_support import TOKEN_ENV, WAIT


def test_a_closed_connection_is_forgotten(desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    bot = desk.portfolio([DEMO_READ])
    monkeypatch.setenv(TOKEN_ENV, bot.token.secret.get_secret_value())
    monkeypatch.setenv("ETORO_API_KEY", desk.server.credentials.api_key)
    started = launch(token_env=TOKEN_ENV, account="demo", policy_file=None,
                     ledger=str(desk.ledger_path), base_url=desk.server.base_url, sandbox=False,
                     sandbox_db=None, portfolio=None)
    service = Service(started.settings)
    server, options = build(service)

    async def one_client() -> None:
        async with create_client_server_memory_streams() as (client, served), \
                anyio.create_task_group() as tasks:
            tasks.start_soon(server.run, *served, options)
            async with ClientSession(*client, client_info=types.Implementation(
                    name="editor", version="1")) as session:
                with anyio.fail_after(WAIT):
                    await session.initialize()
                    assert not (await session.call_tool("get_portfolio", {})).is_error
            tasks.cancel_scope.cancel()

    try:
        for _ in range(3):
            anyio.run(one_client)
        gc.collect()
        assert list(service.backends) == ["mcp:editor"]  # the client's backend stays
        assert service.connections() == {}
    finally:
        service.close()
        started.close()
