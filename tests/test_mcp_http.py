"""``etoro-nb mcp serve --http PORT``: the same server over streamable HTTP, on 127.0.0.1
only, each client's calls recorded under its own name; and ``--sandbox`` with no token
mints a read-only agent portfolio and says so."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import anyio
import mcp_types as types
import polars as pl
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from etoro_nb.frames.ledger import requests
from etoro_nb.ledger import Ledger
from tests.agent_support import Desk
from tests.helpers import DEMO_READ
from tests.mcp_support import MARKET_TOOLS, READ_TOOLS, TOKEN_ENV, WAIT, server_args


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _listening(port: int, process: subprocess.Popen[str]) -> None:
    with anyio.fail_after(WAIT):
        while True:
            assert process.poll() is None, "the server exited"
            try:
                stream = await anyio.connect_tcp("127.0.0.1", port)
            except OSError:
                await anyio.sleep(0.1)  # waiting for the server to bind, not timing anything
                continue
            await stream.aclose()
            return


def test_streamable_http_serves_each_client_under_its_name(desk: Desk, tmp_path: Path) -> None:
    bot = desk.portfolio([DEMO_READ])
    port = _free_port()
    with (tmp_path / "err").open("w") as err:
        process = subprocess.Popen(
            [sys.executable, *server_args(desk, "--http", str(port))], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=err, text=True,
            env={TOKEN_ENV: bot.token.secret.get_secret_value(), "PATH": "/usr/bin:/bin",
                 "ETORO_API_KEY": desk.server.credentials.api_key})
        try:
            async def main() -> None:
                await _listening(port, process)
                for name in ("editor-one", "editor-two"):
                    async with streamable_http_client(f"http://127.0.0.1:{port}/mcp") as (r, w), \
                            ClientSession(r, w, client_info=types.Implementation(
                                name=name, version="1")) as session:
                        await session.initialize()
                        listed = {t.name for t in (await session.list_tools()).tools}
                        assert listed == READ_TOOLS | MARKET_TOOLS
                        result = await session.call_tool("get_portfolio", {})
                        assert isinstance(result, types.CallToolResult) and not result.is_error

            anyio.run(main)
        finally:
            process.terminate()
            process.wait(timeout=WAIT)
    made = requests(desk.ledger).filter(pl.col("token_id") == bot.token.id,
                                        pl.col("operation_id") == "getPortfolioDemo")
    assert set(made["application"]) == {"mcp:editor-one", "mcp:editor-two"}


def test_sandbox_with_no_token_mints_a_read_only_portfolio_and_says_so(tmp_path: Path) -> None:
    ledger = tmp_path / "l.sqlite"
    params = StdioServerParameters(command=sys.executable, args=[
        "-m", "etoro_nb.cli", "mcp", "serve", "--token-env", TOKEN_ENV, "--sandbox",
        "--ledger", str(ledger)], env={TOKEN_ENV: ""})

    async def main() -> None:
        with (tmp_path / "err").open("w") as err:
            async with stdio_client(params, errlog=err) as (r, w), ClientSession(r, w) as s:
                init = await s.initialize()
                assert init.instructions is not None
                assert "embedded etoro-nb SANDBOX" in init.instructions
                assert "read-only agent portfolio" in init.instructions
                assert {t.name for t in (await s.list_tools()).tools} == READ_TOOLS | MARKET_TOOLS

    anyio.run(main)
    with Ledger(ledger) as book:
        minted = book.scan("lifecycle_events").collect().filter(kind="token_minted",
                                                                 phase="outcome")
        assert minted["scopes"].to_list() == ['["etoro-public:trade.demo:read"]']


def test_sandbox_refuses_a_token_it_cannot_know(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "etoro_nb.cli", "mcp", "serve", "--token-env",
                          TOKEN_ENV, "--sandbox", "--ledger", str(tmp_path / "l.sqlite")],
                         env={TOKEN_ENV: "etnb_canary_not_in_a_fresh_sandbox", "PATH": "/usr/bin"},
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert run.returncode == 2
    assert f"unset {TOKEN_ENV} to have a read-only agent portfolio minted" in run.stderr
    assert "etnb_canary" not in run.stderr


def test_a_token_the_ledger_never_saw_needs_its_portfolio(desk: Desk, tmp_path: Path) -> None:
    bot = desk.portfolio([DEMO_READ])
    args = server_args(desk)
    args[args.index("--ledger") + 1] = str(tmp_path / "another-ledger.sqlite")
    env = {TOKEN_ENV: bot.token.secret.get_secret_value(), "PATH": "/usr/bin:/bin",
           "ETORO_API_KEY": desk.server.credentials.api_key}
    run = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                         timeout=120, stdin=subprocess.DEVNULL)
    assert run.returncode == 2
    assert "did not see the token in" in run.stderr and "--portfolio ID" in run.stderr
    assert bot.token.secret.get_secret_value() not in run.stderr
