"""The application a request was made by (``ClientConfig.application``; the MCP server's
``"mcp:<client name>"``) is on every request row of the ledger, in the frames and in sealed
segments; ledgers from before ``0007_request_application`` keep verifying. An agent
session's own events (refusals, booked orders, its stop) name it too, in
``frames.policy_events``' ``application``."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import polars as pl
import pytest

from etoro_nb.agent.policy import RiskPolicy
from etoro_nb.agent.session import AgentSession
from etoro_nb.client import EtoroClient
from etoro_nb.client_config import ClientConfig
from etoro_nb.errors import ConfigurationError, PolicyViolation
from etoro_nb.frames.ledger import policy_events, requests, usage
from etoro_nb.ledger import Ledger, chain_hash
from etoro_nb.ledger.schema import GENESIS, MIGRATIONS
from etoro_nb.mcp.server import application_name
from etoro_nb.migrations import migrate
from etoro_nb.sandbox import SandboxServer
from tests.agent_support import Desk
from tests.helpers import DEMO_READ, DEMO_WRITE
from tests.mcp_support import APPLICATION, connect, error_of

OLD_COLUMNS = ("seq", "ts_us", "phase", "request_id", "attempt", "principal", "portfolio_id",
               "token_id", "token_fingerprint", "environment", "method", "route",
               "operation_id", "scope_required", "status", "error_code", "latency_ms")


def test_every_request_row_names_the_clients_application(
        server: SandboxServer, make_client: Callable[..., EtoroClient], tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite")
    owner = make_client(server, ledger=ledger, application="notebook:audit")
    bot = owner.agent_portfolios.create("appname1", 500, scopes=[DEMO_READ])
    owner.as_agent(bot.token).trading("demo").portfolio()  # the agent's client inherits it
    plain = make_client(server, ledger=ledger)
    plain.me()
    ledger.flush()
    rows = usage(ledger)
    assert isinstance(rows, pl.DataFrame)
    named = rows.filter(pl.col("application") == "notebook:audit")
    assert set(named["principal"]) == {"owner", "agent"}
    assert set(named["phase"]) == {"intent", "outcome"}
    assert rows.filter(pl.col("application").is_null())["operation_id"].unique().to_list() == [
        "getAuthenticatedUserProfile"]
    assert requests(ledger).schema["application"] == pl.String
    assert ledger.verify().ok


def _old_ledger(path: Path, rows: int) -> None:
    """A ledger as 0001-0006 left it, with ``rows`` usage rows hashed without the column."""
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, {name: sql for name, sql in MIGRATIONS.items() if name < "0007"})
    prev = GENESIS
    for seq in range(1, rows + 1):
        values: list[Any] = [seq, 1_700_000_000_000_000 + seq, "outcome", f"r{seq}", 1, "owner",
                             None, None, None, "sandbox", "GET", "/api/v1/me",
                             "getAuthenticatedUserProfile", None, 200, None, 1.5]
        row_hash = chain_hash(prev, values)
        conn.execute(f"INSERT INTO usage_events ({', '.join(OLD_COLUMNS)}, prev_hash, row_hash) "
                     f"VALUES ({', '.join('?' * (len(OLD_COLUMNS) + 2))})", [*values, prev, row_hash])
        prev = row_hash
    conn.close()


def test_an_old_ledger_keeps_verifying_and_new_segments_carry_the_application(
        tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    _old_ledger(path, 3)
    with Ledger(path, seal_threshold=None) as ledger:
        assert ledger.verify().ok  # migrated to 0007: the old rows hash as they did
        ledger.append_usage(phase="outcome", request_id="r4", attempt=1, principal="agent",
                            environment="sandbox", method="GET", route="/api/v1/me",
                            operation_id="getAuthenticatedUserProfile", status=200,
                            application="mcp:test-editor")
        assert ledger.verify().ok
        segment = ledger.seal("usage_events")
        assert segment is not None
        sealed = pl.read_parquet(ledger.segments_dir / segment["file"])
        assert sealed["application"].to_list() == [None, None, None, "mcp:test-editor"]
        assert ledger.verify().ok
        shown = requests(ledger)
        assert shown["application"].to_list() == [None, None, None, "mcp:test-editor"]


def test_an_altered_application_breaks_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    with Ledger(path) as ledger:
        ledger.append_usage(phase="intent", request_id="r1", attempt=1, principal="agent",
                            environment="sandbox", method="GET", route="/api/v1/me",
                            operation_id="getAuthenticatedUserProfile", application="mcp:a")
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER usage_events_no_update")
    conn.execute("UPDATE usage_events SET application = 'mcp:b'")
    conn.commit()
    conn.close()
    with Ledger(path) as ledger:
        result = ledger.verify()
    assert not result.ok and "altered" in str(result.problem)


@pytest.mark.parametrize("bad", ["", "   ", "line\nbreak", "x" * 201, 7])
def test_a_bad_application_is_refused_naming_the_setting(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"^application is a non-empty line"):
        ClientConfig(base_url="http://127.0.0.1:1", api_key="k", user_key="u",
                     environment="sandbox", application=bad)


def test_the_mcp_clients_application_name() -> None:
    assert application_name("claude-code") == "mcp:claude-code"
    assert application_name(" Cursor\x1b[31m\n ") == "mcp:Cursor[31m"
    assert application_name(None) == application_name("\n") == "mcp:unnamed-client"
    assert len(application_name("x" * 500)) == len("mcp:") + 100


def test_a_refusal_through_mcp_names_the_client_in_policy_events(desk: Desk, tmp_path: Path) -> None:
    bot = desk.portfolio([DEMO_READ, DEMO_WRITE])
    desk.owner.agent_portfolios.set_policy(bot.portfolio.id, RiskPolicy(max_order_amount_usd=100))
    said: dict[str, Any] = {}

    async def main() -> None:
        async with connect(desk, bot.token.secret.get_secret_value(), tmp_path / "err") as c:
            said.update(error_of(await c.call("open_position", {"instrument": "AAPL",
                                                                "amount": 500})))
            activity = await c.resource("etoro-nb://activity")
            said["shown"] = [e["application"] for e in activity["policy_events"]
                             if e["request_id"] == said["request_id"]]

    anyio.run(main)
    assert said["rule"] == "max_order_amount_usd"
    assert said["shown"] == [APPLICATION]  # the activity resource names the client too
    # The same refusal by a session whose client names no application: null, as in old rows.
    plain = AgentSession(desk.agent(bot), account="demo")
    with pytest.raises(PolicyViolation):
        plain.open_order("AAPL", amount=500)
    refusals = policy_events(desk.ledger, portfolio=bot.portfolio.id).filter(kind="policy_refused")
    by_request = dict(zip(refusals["request_id"], refusals["application"], strict=True))
    assert len(by_request) == 2 and by_request.pop(said["request_id"]) == APPLICATION
    assert list(by_request.values()) == [None]


def test_a_sessions_orders_and_stop_name_its_application(desk: Desk) -> None:
    bot = desk.portfolio([DEMO_READ, DEMO_WRITE])
    agent = EtoroClient(replace(desk.agent(bot).config, application="notebook:desk"))
    desk.agents.append(agent)
    session = AgentSession(agent, RiskPolicy(max_order_amount_usd=100), account="demo")
    session.open_order("AAPL", amount=50)
    session.stop("done for the day")
    events = policy_events(desk.ledger, portfolio=bot.portfolio.id, server_refusals=False)
    by_kind = dict(zip(events["kind"], events["application"], strict=True))
    assert by_kind["order_booked"] == by_kind["session_stopped"] == "notebook:desk"
    assert events.schema["application"] == pl.String
