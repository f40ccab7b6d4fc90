"""``etoro-nb mcp serve`` over stdio, driven by the MCP SDK's client, against a sandbox on a
socket and a real ledger file: the tools follow the token's scopes, results are the
account's real figures (checked on the sandbox's side), the policy refuses before anything
is sent, and the owner's narrowing, pause and revocation reach the client."""

from __future__ import annotations

from pathlib import Path

import anyio
import polars as pl

from etoro_nb.agent.policy import RiskPolicy
from etoro_nb.frames.ledger import policy_events, requests
from etoro_nb.sandbox import Faults
from tests.agent_support import Desk
from tests.helpers import DEMO_READ, DEMO_WRITE
from tests.mcp_support import (
    APPLICATION,
    MARKET_TOOLS,
    READ_TOOLS,
    TRADING_TOOLS,
    connect,
    error_of,
)


def test_a_read_only_token_lists_no_trading_tool(desk: Desk, tmp_path: Path) -> None:
    bot = desk.portfolio([DEMO_READ])

    async def main() -> None:
        async with connect(desk, bot.token.secret.get_secret_value(), tmp_path / "err") as c:
            tools = await c.tools()
            assert set(tools) == READ_TOOLS | MARKET_TOOLS
            assert DEMO_READ in (tools["get_portfolio"].description or "")
            assert c.init.capabilities.tools is not None and c.init.capabilities.tools.list_changed
            refused = error_of(await c.call("open_position", {"instrument": "AAPL", "amount": 10}))
            assert refused["code"] == "ScopeMissing" and refused["scope"] == DEMO_WRITE
            resources = {str(r.uri) for r in (await c.session.list_resources()).resources}
            assert resources == {"etoro-nb://policy", "etoro-nb://token", "etoro-nb://activity"}
            token = await c.resource("etoro-nb://token")
            assert token["token_id"] == bot.token.id and token["scopes"] == [DEMO_READ]
            assert token["application"] == APPLICATION and token["status"] == "active"

    anyio.run(main)
    assert desk.orders_received(desk.cid(bot, "demo")) == 0


def test_a_read_write_token_trades_and_its_results_are_the_accounts(desk: Desk,
                                                                    tmp_path: Path) -> None:
    bot = desk.portfolio([DEMO_READ, DEMO_WRITE])
    cid = desk.cid(bot, "demo")

    async def main() -> None:
        async with connect(desk, bot.token.secret.get_secret_value(), tmp_path / "err") as c:
            tools = await c.tools()
            assert set(tools) == READ_TOOLS | MARKET_TOOLS | TRADING_TOOLS
            assert DEMO_WRITE in (tools["open_position"].description or "")
            assert tools["open_position"].output_schema is not None
            # The SDK client validates every structured result against its output schema.
            opened = await c.call("open_position", {"instrument": "AAPL", "amount": 150,
                                                    "leverage": 2})
            assert not opened.is_error, opened.content
            placed = opened.structured_content
            assert placed is not None
            assert (placed["instrument_id"], placed["amount_usd"], placed["leverage"]) == (1001, 150, 2)
            assert placed["book"]["gross_exposure_usd"] == 300
            portfolio = (await c.call("get_portfolio")).structured_content
            assert portfolio is not None
            held = [(p["position_id"], p["amount"], p["units"], p["leverage"])
                    for p in portfolio["positions"]]
            assert held == [(pid, a, u, lev) for pid, a, u, lev in desk.positions(cid)]
            assert [p["instrument_id"] for p in portfolio["positions"]] == [1001]
            closed = await c.call("close_position", {"position_id": held[0][0]})
            assert not closed.is_error, closed.content
            assert desk.positions(cid) == []
            rates = (await c.call("get_rates", {"instruments": ["goog", 1003]})).structured_content
            assert rates is not None
            assert sorted(r["instrument_id"] for r in rates["rates"]) == [1002, 1003]

    anyio.run(main)
    assert desk.orders_received(cid) == 2  # the open and the close, nothing else
    made = requests(desk.ledger).filter(pl.col("token_id") == bot.token.id)
    assert set(made["application"].unique()) == {"mcp", APPLICATION}  # the start's check, then the client


def test_a_policy_violation_is_a_tool_error_and_places_nothing(desk: Desk, tmp_path: Path) -> None:
    bot = desk.portfolio([DEMO_READ, DEMO_WRITE])
    desk.owner.agent_portfolios.set_policy(bot.portfolio.id, RiskPolicy(max_order_amount_usd=100))
    cid = desk.cid(bot, "demo")

    async def main() -> None:
        async with connect(desk, bot.token.secret.get_secret_value(), tmp_path / "err") as c:
            tools = await c.tools()
            assert "max_order_amount_usd=100" in (tools["open_position"].description or "")
            refused = error_of(await c.call("open_position", {"instrument": "AAPL",
                                                              "amount": 100.01}))
            assert refused["code"] == "PolicyViolation"
            assert refused["rule"] == "max_order_amount_usd" and refused["limit"] == 100
            assert refused["sent"] is False and refused["request_id"]
            recorded = policy_events(desk.ledger, portfolio=bot.portfolio.id).filter(
                kind="policy_refused")
            assert recorded["request_id"].to_list() == [refused["request_id"]]
            # The server keeps serving: an order at the limit passes.
            assert not (await c.call("open_position", {"instrument": "AAPL", "amount": 100})).is_error
            desk.owner.agent_portfolios.pause(bot.portfolio.id, reason="reviewing")
            paused = error_of(await c.call("open_position", {"instrument": "AAPL", "amount": 10}))
            assert paused["rule"] == "paused"
            portfolio = (await c.call("get_portfolio")).structured_content
            assert portfolio is not None and "reviewing" in portfolio["notice"]
            policy = await c.resource("etoro-nb://policy")
            assert policy["owner"]["paused"] is True and policy["owner"]["limits"] == {
                "max_order_amount_usd": 100.0}

    anyio.run(main)
    assert desk.orders_received(cid) == 1  # only the order at the limit reached the sandbox


def test_narrowing_changes_the_tool_list_and_revoking_fails_the_next_call(desk: Desk,
                                                                         tmp_path: Path) -> None:
    bot = desk.portfolio([DEMO_READ, DEMO_WRITE])
    owner = desk.owner.agent_portfolios
    failed: dict[str, object] = {}

    async def main() -> None:
        async with connect(desk, bot.token.secret.get_secret_value(), tmp_path / "err") as c:
            assert set(await c.tools()) >= TRADING_TOOLS
            await anyio.to_thread.run_sync(lambda: owner.update_token(
                bot.portfolio.id, bot.token.id, scopes=[DEMO_READ]))
            await c.list_changed()  # sent by the server on its own: the client called nothing
            assert set(await c.tools()) == READ_TOOLS | MARKET_TOOLS
            refused = error_of(await c.call("open_position", {"instrument": "AAPL", "amount": 10}))
            assert refused["code"] == "ScopeMissing"
            await anyio.to_thread.run_sync(lambda: owner.revoke_token(bot.portfolio.id,
                                                                       bot.token.id))
            await c.list_changed()
            assert await c.tools() == {}
            failed.update(error_of(await c.call("get_portfolio")))
            again = error_of(await c.call("search_instruments", {"text": "apple"}))
            assert again["code"] == "TokenRevoked"

    anyio.run(main)
    assert failed["code"] == "TokenRevoked" and failed["status"] == 401
    assert "revoked" in str(failed["message"])
    made = requests(desk.ledger).filter(pl.col("token_id") == bot.token.id)
    refused = made.filter(pl.col("request_id") == failed["request_id"])
    assert refused.select("status", "application").rows() == [(401, APPLICATION)]
    # The server learnt the narrowed scopes by asking, as this client, after the change.
    changes = desk.ledger.scan("lifecycle_events", token_id=bot.token.id).collect()
    narrowed_at = changes.filter(kind="token_updated", phase="outcome")["ts_us"].max()
    asked = made.filter(pl.col("operation_id") == "getAuthenticatedUserProfile",
                        pl.col("application") == APPLICATION, pl.col("status") == 200)
    assert asked.height >= 2 and narrowed_at is not None
    assert set(changes["kind"]) >= {"token_updated", "token_revoked"}


def test_a_slow_call_never_holds_up_the_server(desk: Desk, tmp_path: Path) -> None:
    """The session's blocking work runs off the event loop: while a tool call waits for a
    slow API, the server still answers other requests."""
    bot = desk.portfolio([DEMO_READ])
    finished: list[str] = []

    async def main() -> None:
        async with connect(desk, bot.token.secret.get_secret_value(), tmp_path / "err") as c:
            assert not (await c.call("get_portfolio")).is_error  # the session has started
            desk.server.sandbox.set_faults(Faults(latency_ms=3000))
            slow_started = anyio.Event()

            async def slow() -> None:
                slow_started.set()
                assert not (await c.call("get_portfolio")).is_error
                finished.append("slow tool call")

            async def quick() -> None:
                await slow_started.wait()
                await c.session.send_ping()
                await c.session.list_resources()
                finished.append("ping and resources")

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(slow)
                tasks.start_soon(quick)

    anyio.run(main)
    assert finished == ["ping and resources", "slow tool call"]
