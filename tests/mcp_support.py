"""What the MCP tests share: the real server process (``etoro-nb mcp serve`` over stdio)
driven by the SDK's own client, against a sandbox and a ledger file of the test's desk."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.agent_support import Desk

TOKEN_ENV = "ETORO_NB_TEST_AGENT_TOKEN"
CLIENT = "test-editor"
APPLICATION = f"mcp:{CLIENT}"
WAIT = 60  # seconds: a guard against a hang, never a measured time
READ_TOOLS = {"get_portfolio", "get_pnl", "get_trade_history"}
MARKET_TOOLS = {"search_instruments", "get_rates", "get_candles"}
TRADING_TOOLS = {"open_position", "close_position", "cancel_order", "order_room"}


@dataclass
class Conn:
    """An initialised SDK client session, and every notification it received."""

    session: ClientSession
    init: types.InitializeResult
    notices: list[Any] = field(default_factory=list)
    changed: anyio.Event = field(default_factory=anyio.Event)

    async def tools(self) -> dict[str, types.Tool]:
        return {t.name: t for t in (await self.session.list_tools()).tools}

    async def call(self, name: str, arguments: dict[str, Any] | None = None) -> types.CallToolResult:
        result = await self.session.call_tool(name, arguments or {})
        assert isinstance(result, types.CallToolResult)
        return result

    async def resource(self, uri: str) -> dict[str, Any]:
        read = await self.session.read_resource(uri)
        content = read.contents[0]
        assert isinstance(content, types.TextResourceContents)
        return dict(json.loads(content.text))

    async def list_changed(self) -> None:
        """Wait for the next tools/list_changed, then be ready for another."""
        with anyio.fail_after(WAIT):
            await self.changed.wait()
        self.changed = anyio.Event()


def server_args(desk: Desk, *extra: str) -> list[str]:
    return ["-m", "etoro_nb.cli", "mcp", "serve", "--token-env", TOKEN_ENV,
            "--base-url", desk.server.base_url, "--ledger", str(desk.ledger_path),
            "--account", "demo", *extra]


@asynccontextmanager
async def connect(desk: Desk, token: str, errlog: Path, *extra: str,
                  name: str = CLIENT) -> AsyncIterator[Conn]:
    """``etoro-nb mcp serve`` as a child process, with the token in its environment only."""
    params = StdioServerParameters(
        command=sys.executable, args=server_args(desk, *extra),
        env={TOKEN_ENV: token, "ETORO_API_KEY": desk.server.credentials.api_key})
    holder: dict[str, Conn] = {}

    async def on_message(message: Any) -> None:
        conn = holder.get("conn")
        if conn is not None:
            conn.notices.append(message)
            if isinstance(message, types.ToolListChangedNotification):
                conn.changed.set()

    with errlog.open("a") as err:
        async with stdio_client(params, errlog=err) as (read, write), ClientSession(
                read, write, message_handler=on_message,
                client_info=types.Implementation(name=name, version="1.0")) as session:
            with anyio.fail_after(WAIT):
                init = await session.initialize()
            holder["conn"] = Conn(session, init)
            yield holder["conn"]


def error_of(result: types.CallToolResult) -> dict[str, Any]:
    """A tool error's structured ``error`` (the test fails if the call succeeded)."""
    assert result.is_error, f"expected a tool error, got {result.structured_content}"
    assert result.structured_content is not None
    return dict(result.structured_content["error"])
