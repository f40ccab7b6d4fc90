"""``StdioEditor``: the MCP SDK's client driving ``etoro-nb mcp serve`` over stdio as an AI
editor does, with a synchronous surface for notebooks and scripts.

The SDK is asynchronous and its sessions hold task groups that must be left in the task
that entered them, which separate notebook cells are not; so the session lives in an
event loop of its own, in a background thread (anyio's blocking portal), and every method
here waits there. The token is handed over in the child's environment only.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TextIO

import anyio
import mcp_types as types
from anyio.from_thread import BlockingPortal, start_blocking_portal
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from etoro_nb.client_config import Secret, reveal

WAIT = 60.0


class StdioEditor:
    """An MCP client session with ``etoro-nb mcp serve <args>`` (a child process).

    ``token_env``/``token``: the variable the server reads the token from, and the token (a
    ``MintedToken``, a ``SecretStr`` or its text; kept in the child's environment only).
    ``client_name`` is what the server records as the application (``mcp:<client_name>``).
    ``log`` receives the server's stderr."""

    def __init__(self, args: Sequence[str], *, token_env: str, token: Secret,
                 client_name: str, log: str | Path, env: dict[str, str] | None = None) -> None:
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "etoro_nb.cli", "mcp", "serve", "--token-env", token_env, *args],
            env={**(env or {}), token_env: reveal(token, "token")})
        self.client_name = client_name
        self.changes = 0
        """How many ``tools/list_changed`` notifications arrived."""
        self._stack = ExitStack()
        try:
            self._log: TextIO = self._stack.enter_context(Path(log).open("a"))  # noqa: SIM115
            self._portal: BlockingPortal = self._stack.enter_context(start_blocking_portal())
            self._changed: anyio.Event | None = None
            self._session: ClientSession = self._stack.enter_context(
                self._portal.wrap_async_context_manager(self._open(params, client_name)))
            self.instructions = self._portal.call(self._initialize)
        except BaseException:
            self._stack.close()
            raise

    def _open(self, params: StdioServerParameters, name: str) -> Any:
        from contextlib import asynccontextmanager

        @asynccontextmanager
        async def session() -> Any:
            async with stdio_client(params, errlog=self._log) as (read, write), ClientSession(
                    read, write, message_handler=self._on_message,
                    client_info=types.Implementation(name=name, version="1.0")) as s:
                yield s
        return session()

    async def _initialize(self) -> str | None:
        self._changed = anyio.Event()
        with anyio.fail_after(WAIT):
            return (await self._session.initialize()).instructions

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self.changes += 1
            if self._changed is not None:
                self._changed.set()
            self._changed = anyio.Event()  # the next waiter waits for the next one

    # -- what an editor does ---------------------------------------------------------------
    def tools(self) -> list[types.Tool]:
        return self._portal.call(self._tools)

    async def _tools(self) -> list[types.Tool]:
        return list((await self._session.list_tools()).tools)

    def call(self, name: str, arguments: dict[str, Any] | None = None) -> types.CallToolResult:
        """Call a tool; a tool error comes back as a result with ``is_error`` set."""
        result: types.CallToolResult = self._portal.call(self._call, name, arguments or {})
        return result

    async def _call(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        result = await self._session.call_tool(name, arguments)
        assert isinstance(result, types.CallToolResult)
        return result

    def resource(self, uri: str) -> Any:
        return json.loads(self._portal.call(self._resource, uri))

    async def _resource(self, uri: str) -> str:
        content = (await self._session.read_resource(uri)).contents[0]
        assert isinstance(content, types.TextResourceContents)
        return content.text

    def wait_for_list_change(self, after: int) -> None:
        """Block until more than ``after`` ``tools/list_changed`` notifications arrived in
        all (read ``changes`` before the change you wait for)."""
        self._portal.call(self._wait, after)

    async def _wait(self, after: int) -> None:
        with anyio.fail_after(WAIT):
            while self.changes <= after:
                assert self._changed is not None
                await self._changed.wait()

    def close(self) -> None:
        """End the session (the server process exits with it)."""
        self._stack.close()

    def __enter__(self) -> StdioEditor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"StdioEditor(client_name={self.client_name!r})"
