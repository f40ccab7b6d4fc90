"""The MCP server: the SDK's low-level ``Server``, whose tool list is generated per client
from the token's scopes, with ``notifications/tools/list_changed`` sent when it changes.

Each MCP client is known by the name it gives at initialization; its requests are made by
its own ``Backend``, recorded in the ledger with the application ``"mcp:<name>"``. A
watcher looks at the ledger every ``poll_seconds`` so an owner's narrowing, widening,
revocation, pause or policy change reaches the client's tool list without waiting for its
next call; every call also looks first.
"""

from __future__ import annotations

import json
import logging
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import mcp_types as types
from mcp.server.connection import Connection
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel

from etoro_nb.agent.policy import RiskPolicy
from etoro_nb.client import EtoroClient
from etoro_nb.mcp import resources, tools
from etoro_nb.mcp.backend import Account, Backend, off_loop
from etoro_nb.mcp.failures import ToolFailure, error_result, failure_of
from etoro_nb.mcp.schemas import dumped

log = logging.getLogger("etoro_nb.mcp")
NAME = "etoro-nb"
APPLICATION_PREFIX = "mcp:"
UNNAMED = "unnamed-client"
NAME_MAX = 100
RESOURCE_NOT_FOUND = -32002


def application_name(client_name: str | None) -> str:
    """``"mcp:<client name>"``: the name the client gave at initialization, kept to
    printable characters (at most 100), or ``"mcp:unnamed-client"``."""
    name = "".join(c for c in (client_name or "") if c.isprintable()).strip()[:NAME_MAX]
    return APPLICATION_PREFIX + (name or UNNAMED)


@dataclass(frozen=True)
class Settings:
    """What every client's backend is made with. ``make_agent(application)`` gives an
    agent client recording with that application name."""

    make_agent: Callable[[str], EtoroClient]
    account: Account
    policy: RiskPolicy | None
    portfolio_id: str | None
    instructions: str
    poll_seconds: float = 1.0


class Service:
    """The clients' backends and live connections, and what each was last told of its tools."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.backends: dict[str, Backend] = {}
        self.told: dict[str, str] = {}
        self._connections: weakref.WeakKeyDictionary[Connection, tuple[str, bool]] = (
            weakref.WeakKeyDictionary())
        """Each live connection's application, and whether that is its name for good (once
        it has initialised: then it is read once, not per call). Held weakly, so a client gone
        away is forgotten: nothing else here may hold its connection (a ServerSession does)."""
        self._making = anyio.Lock()

    def connections(self) -> dict[str, int]:
        """How many live connections each application has."""
        return dict(Counter(app for app, _ in self._connections.values()))

    async def backend(self, ctx: Any) -> tuple[str, Backend]:
        # A ServerSession is a per-request proxy for its connection, which is what lasts.
        connection: Connection = ctx.session._connection
        known = self._connections.get(connection)
        if known is not None and known[1]:  # every call after the first
            return known[0], self.backends[known[0]]
        params = ctx.session.client_params
        app = application_name(params.client_info.name if params is not None else None)
        async with self._making:
            if app not in self.backends:
                backend = await off_loop(self._make, app)
                self.backends[app] = backend
                self.told[app] = await off_loop(backend.view, tools.signature,
                                                thread=backend.thread)
                log.info("serving the MCP client %s", app)
        # Its name is known for good once it has initialised.
        self._connections[connection] = (app, params is not None)
        return app, self.backends[app]

    def _make(self, app: str) -> Backend:
        s = self.settings
        agent = s.make_agent(app)
        try:
            return Backend(agent, account=s.account, policy=s.policy, portfolio_id=s.portfolio_id)
        except BaseException:
            agent.close()
            raise

    async def tell(self, app: str, backend: Backend, signature: str | None = None) -> None:
        """Send ``tools/list_changed`` to the client's connections if its list changed
        (``signature``: the list as just seen, else it is looked at now)."""
        now = signature if signature is not None else await off_loop(
            backend.view, tools.signature, thread=backend.thread)
        if now == self.told.get(app):
            return
        self.told[app] = now
        log.info("the tools of %s changed (the token's scopes, the policy or a pause)", app)
        notice = types.ToolListChangedNotification()
        for connection, (its_app, _) in list(self._connections.items()):
            if its_app != app:
                continue
            try:  # what ServerSession.send_tool_list_changed sends, on the connection's channel
                await connection.outbound.notify(notice.method, None)
            except Exception as exc:  # a connection going away: forget it
                log.info("dropped a connection of %s (%s)", app, type(exc).__name__)
                self._connections.pop(connection, None)

    async def watch(self) -> None:
        """Keep every client's tool list in step with the owner's changes."""
        while True:
            await anyio.sleep(self.settings.poll_seconds)
            for app, backend in list(self.backends.items()):
                try:
                    await self.tell(app, backend)
                except Exception as exc:
                    log.warning("could not look for the owner's changes for %s: %s", app,
                                failure_of(exc).message)

    def close(self) -> None:
        for backend in self.backends.values():
            try:
                backend.close()
            except Exception as exc:
                log.warning("closing a backend failed: %s", type(exc).__name__)

    # -- handlers --------------------------------------------------------------------------
    async def list_tools(self, ctx: Any, params: Any) -> types.ListToolsResult:
        app, backend = await self.backend(ctx)
        listed, signature = await off_loop(
            backend.view, lambda b: (tools.available(b), tools.signature(b)), thread=backend.thread)
        self.told[app] = signature
        return types.ListToolsResult(tools=listed)

    async def call_tool(self, ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        try:
            app, backend = await self.backend(ctx)
        except Exception as exc:
            return error_result(failure_of(exc))
        signature: str | None = None
        try:
            spec = tools.BY_NAME.get(params.name)
            if spec is None:
                raise ToolFailure(tools.unknown_tool(params.name))
            arguments = tools.parse(spec, params.arguments)
            # One trip to the worker thread, refused or not: the call, then the list as it
            # now stands (a refusal may have changed it: a revoked token lists nothing).
            result, signature = await off_loop(_attempt, backend, spec, arguments,
                                               thread=backend.thread)
            if isinstance(result, Exception):
                raise result
            content = dumped(result)
            answer = types.CallToolResult(
                content=[types.TextContent(type="text", text=json.dumps(content))],
                structured_content=content)
        except Exception as exc:
            failure = failure_of(exc, request_id=getattr(exc, "mcp_request_id", None))
            log.info("%s: %s refused: [%s] %s", app, params.name, failure.code, failure.message)
            answer = error_result(failure)
        try:
            await self.tell(app, backend, signature)
        except Exception as exc:
            log.warning("could not check the tool list of %s: %s", app, type(exc).__name__)
        return answer

    async def list_resources(self, ctx: Any, params: Any) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=resources.listed())

    async def read_resource(self, ctx: Any,
                            params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        uri = str(params.uri)
        if uri not in resources.RESOURCES:
            raise MCPError(RESOURCE_NOT_FOUND, f"no resource {uri!r}; the resources are "
                           f"{', '.join(resources.RESOURCES)}")
        _, backend = await self.backend(ctx)
        text = await off_loop(backend.view, lambda b: resources.read(b, uri),
                              thread=backend.thread)
        return types.ReadResourceResult(contents=[types.TextResourceContents(
            uri=uri, mime_type=resources.MIME, text=text)])


def _attempt(backend: Backend, spec: tools.ToolSpec,
             arguments: Any) -> tuple[BaseModel | Exception, str | None]:
    """In the backend's thread: the tool's result or what refused it, and the tool list's
    signature after it (None if it could not be made: then it is looked at again)."""
    outcome: BaseModel | Exception
    try:
        outcome = backend.call(lambda b: tools.run(spec, b, arguments))
    except Exception as exc:
        outcome = exc
    try:
        return outcome, backend.now(tools.signature)
    except Exception:
        return outcome, None


def build(service: Service) -> tuple[Server[Any], InitializationOptions]:
    server: Server[Any] = Server(
        NAME, version=_version(), title="etoro-nb: one agent portfolio's delegated token",
        instructions=service.settings.instructions,
        on_list_tools=service.list_tools, on_call_tool=service.call_tool,
        on_list_resources=service.list_resources, on_read_resource=service.read_resource)
    server.middleware = []  # no OpenTelemetry spans: nothing here exports them
    return server, server.create_initialization_options(NotificationOptions(tools_changed=True))


async def serve_stdio(service: Service) -> None:
    from mcp.server.stdio import stdio_server

    from etoro_nb.mcp.wire import open_wire

    server, options = build(service)
    wire = await open_wire()  # no thread per message where stdio is a pipe (as editors run it)
    streams: dict[str, Any] = {} if wire is None else {"stdin": wire[0], "stdout": wire[1]}
    try:
        async with stdio_server(**streams) as (read, write), anyio.create_task_group() as tasks:
            tasks.start_soon(service.watch)
            await server.run(read, write, options)
            tasks.cancel_scope.cancel()
    finally:
        if wire is not None:
            wire[2]()
        await off_loop(service.close)


async def serve_http(service: Service, port: int) -> None:
    """Streamable HTTP on 127.0.0.1 only (the token's authority must not leave the machine)."""
    import uvicorn

    server, _ = build(service)
    app = server.streamable_http_app(host="127.0.0.1")
    web = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(service.watch)
            await web.serve()
            tasks.cancel_scope.cancel()
    finally:
        await off_loop(service.close)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("etoro-nb")
    except PackageNotFoundError:
        return "0"
