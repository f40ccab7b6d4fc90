"""The delegated token appears nowhere the MCP server can put it: not in its stdout (the
protocol: every result, resource and notification) or stderr (its log), not in any file
the run left (the ledger, its WAL, spools and segments), not in a tool error. And a start
the server refuses names the variable, never the value."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from etoro_nb.agent.policy import RiskPolicy
from etoro_nb.errors import ConfigurationError
from etoro_nb.sandbox.server import SandboxServer
from tests.agent_support import Desk
from tests.helpers import DEMO_READ, DEMO_WRITE
from tests.mcp_support import TOKEN_ENV, connect, server_args


def _holds(text: str, secret: str) -> bool:
    """The secret, in any case (an echo that upper-cases it still gives most of it away)."""
    return secret.casefold() in text.casefold()


def _files_holding(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*")
            if p.is_file() and _holds(p.read_bytes().decode("latin-1"), secret)]


def test_the_token_appears_nowhere(desk: Desk, tmp_path: Path) -> None:
    bot = desk.portfolio([DEMO_READ, DEMO_WRITE])
    secret = bot.token.secret.get_secret_value()
    desk.owner.agent_portfolios.set_policy(bot.portfolio.id, RiskPolicy(max_order_amount_usd=50))
    said: list[str] = []

    async def main() -> None:
        async with connect(desk, secret, tmp_path / "server.stderr") as c:
            said.append(json.dumps(c.init.model_dump(mode="json")))
            said.append(json.dumps([t.model_dump(mode="json") for t in (await c.tools()).values()]))
            calls = [("get_portfolio", {}), ("open_position", {"instrument": "AAPL", "amount": 40}),
                     ("open_position", {"instrument": "AAPL", "amount": 60}),
                     ("open_position", {"instrument": secret, "amount": 1}),
                     ("get_trade_history", {}), ("order_room", {"instrument": "AAPL"})]
            for name, arguments in calls:
                said.append((await c.call(name, arguments)).model_dump_json())
            for uri in ("etoro-nb://policy", "etoro-nb://token", "etoro-nb://activity"):
                said.append(json.dumps(await c.resource(uri)))
            await anyio.to_thread.run_sync(lambda: desk.owner.agent_portfolios.revoke_token(
                bot.portfolio.id, bot.token.id))
            await c.list_changed()
            said.append((await c.call("get_pnl")).model_dump_json())
            said.extend(m.model_dump_json() for m in c.notices if hasattr(m, "model_dump_json"))

    anyio.run(main)
    assert len(said) >= 12 and any("TokenRevoked" in s for s in said)
    # The one argument that carried the secret was the agent's own input, echoed nowhere.
    assert not [s for s in said if _holds(s, secret)]
    desk.owner.close()  # the ledger's last rows and its WAL are on disk now
    stderr = (tmp_path / "server.stderr").read_text()
    assert "serving the MCP client mcp:test-editor" in stderr and not _holds(stderr, secret)
    assert _files_holding(tmp_path, secret) == []


def test_a_refused_token_at_start_names_the_variable_not_the_value(desk: Desk) -> None:
    canary = "canary-7f3c9a1e5b2d4c6e8a0f1b3d5c7e9a1b"
    run = subprocess.run([sys.executable, *server_args(desk)], capture_output=True, text=True,
                         env={TOKEN_ENV: canary, "ETORO_API_KEY": desk.server.credentials.api_key,
                              "PATH": "/usr/bin:/bin"}, stdin=subprocess.DEVNULL, timeout=120)
    assert run.returncode == 2
    assert f"the server refused the token in {TOKEN_ENV} (401" in run.stderr
    assert canary not in run.stderr + run.stdout
    assert run.stdout == ""  # stdout is the protocol's: nothing else is ever written there


@pytest.mark.parametrize("given", ["etnb_Ab-Cd" + "x" * 60, "etnb_" + "A" * 64])
def test_a_token_given_as_the_variables_name_is_not_echoed(given: str) -> None:
    from etoro_nb.mcp.launch import read_token

    with pytest.raises(ConfigurationError, match="not the token") as caught:
        read_token(given, {})
    assert given not in str(caught.value)


def test_a_postgres_ledger_url_is_refused_not_made_a_file(tmp_path: Path, server: SandboxServer,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from etoro_nb.mcp.launch import launch

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(TOKEN_ENV, "etnb_unused")
    url = "postgresql://writer:pw-never-shown@127.0.0.1:1/ledger"
    with pytest.raises(ConfigurationError, match="PostgreSQL") as caught:
        launch(token_env=TOKEN_ENV, account="demo", policy_file=None, ledger=url,
               base_url=server.base_url, sandbox=False, sandbox_db=None, portfolio=None)
    assert "pw-never-shown" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []  # no file named after the URL
