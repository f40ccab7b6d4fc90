"""Frames, the agent session and the rebalancer on an ``AsyncEtoroClient``: the same sandbox
state loaded through either client gives equal frames, and an async session (and a
rebalancer on one) places orders, refuses locally with nothing sent (checked in the
sandbox's own state), reconciles its book with the sandbox and stops on a revocation."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from etoro_nb import frames
from etoro_nb._runner import Work, blocking, run
from etoro_nb.agent import AsyncAgentSession, PolicyViolation, RiskPolicy, SessionStopped
from etoro_nb.client import AsyncEtoroClient, EtoroClient
from etoro_nb.errors import ConfigurationError, InvalidInputError
from etoro_nb.models import CreatedPortfolio
from etoro_nb.rebalancer import AsyncRebalancer, Rebalancer
from tests.agent_support import Desk

AAPL, MSFT, GLD = 1001, 1003, 3025
T = TypeVar("T")


def _async_owner(desk: Desk) -> AsyncEtoroClient:
    """The desk owner's settings (its ledger, its clock) on an asyncio client."""
    return AsyncEtoroClient(replace(desk.owner.config, owns_ledger=False))


def _run(desk: Desk, scenario: Callable[[AsyncEtoroClient], Awaitable[T]]) -> T:
    async def main() -> T:
        async with _async_owner(desk) as owner:
            return await scenario(owner)
    return asyncio.run(main())


# -- frames -------------------------------------------------------------------------------
def _trade(desk: Desk, bot: CreatedPortfolio) -> EtoroClient:
    """Some history on the agent's real account: two positions, one of them closed."""
    agent = desk.agent(bot)
    trading = agent.trading("real")
    trading.open_order(AAPL, amount=500)
    trading.open_order(GLD, amount=300)
    desk.server.sandbox.clock.advance(3600)
    first = trading.portfolio().positions[0]
    trading.close_position(first.position_id, first.instrument_id)
    return agent


def test_every_loader_gives_the_same_frame_through_either_client(desk: Desk) -> None:
    bot, other = desk.portfolio(), desk.portfolio()
    spare = desk.owner.agent_portfolios.mint_token(other.portfolio.id, "spare",
                                                   scopes=["etoro-public:trade.demo:read"])
    desk.owner.agent_portfolios.revoke_token(other.portfolio.id, spare.id)  # in the ledger only
    agent = _trade(desk, bot)
    loads: dict[str, Callable[[Any, Any], Any]] = {
        "portfolios": lambda owner, _: frames.portfolios(owner),
        "tokens": lambda owner, _: frames.tokens(owner),
        "scope_grants": lambda owner, _: frames.scope_grants(owner),
        "accounting": lambda owner, _: frames.accounting(owner),
        "owner positions": lambda owner, _: frames.positions(owner),
        "value_snapshot": lambda owner, agent: frames.value_snapshot(
            owner, agents={bot.portfolio.id: agent}),
        "trades": lambda _, agent: frames.trades(agent, mode="real"),
        "positions": lambda _, agent: frames.positions(agent, mode="real"),
    }
    expected = {name: load(desk.owner, agent) for name, load in loads.items()}

    async def load_all(owner: AsyncEtoroClient) -> dict[str, pl.DataFrame]:
        async_agent = owner.as_agent(bot.token)
        return {name: await load(owner, async_agent) for name, load in loads.items()}

    got = _run(desk, load_all)
    for name, frame in expected.items():
        assert frame.height > 0, name  # the state has something to show in every frame
        assert_frame_equal(got[name], frame, check_row_order=False)
    assert "revoked" in got["tokens"]["status"].to_list()  # the ledger's part came too
    assert got["trades"].height == 1 and got["value_snapshot"]["agent_value_usd"].null_count() == 1


def test_a_loader_refuses_clients_of_both_kinds_at_once(desk: Desk) -> None:
    bot = desk.portfolio()

    async def mixed(owner: AsyncEtoroClient) -> None:
        with pytest.raises(InvalidInputError) as err:
            frames.value_snapshot(desk.owner, agents={bot.portfolio.id: owner.as_agent(bot.token)})
        assert err.value.field == "client" and "synchronous" in err.value.rule
    _run(desk, mixed)


# -- the session --------------------------------------------------------------------------
def test_an_async_session_places_refuses_locally_and_reconciles(desk: Desk) -> None:
    bot = desk.portfolio()
    cid = desk.cid(bot)
    policy = RiskPolicy(max_order_amount_usd=500, max_gross_exposure_usd=1000,
                        denied_instruments=["BTC"])

    async def scenario(owner: AsyncEtoroClient) -> list[str]:
        session = await AsyncAgentSession.open(owner.as_agent(bot.token), policy, account="real")
        async with session:
            await session.open_order(AAPL, amount=400)
            assert desk.orders_received(cid) == 1
            refused = []
            for instrument, amount in ((AAPL, 501.0), ("BTC", 10.0)):
                with pytest.raises(PolicyViolation) as caught:
                    await session.open_order(instrument, amount=amount)
                refused.append(caught.value.rule)
            assert desk.orders_received(cid) == 1  # nothing reached the sandbox
            room = await session.room(MSFT, leverage=2)
            assert (room.usd, room.rule) == (300.0, "max_gross_exposure_usd")
            # Two orders at once are serialised by the session: both placed, both booked.
            await asyncio.gather(session.open_order(MSFT, amount=150, leverage=2),
                                 session.open_order(GLD, amount=150, leverage=2))
            assert await session.room_usd() == 0.0
            assert session.book.gross_exposure_usd == desk.exposure(cid)[1] == 1000.0
            view = await session.reconcile()
            assert (view.open_positions, view.gross_exposure_usd) == desk.exposure(cid)
            book = sorted((h.position_id, h.amount_usd, h.units, h.leverage)
                          for h in session.holdings())
            assert book == desk.positions(cid)
            held = next(h for h in session.holdings() if h.instrument == AAPL)
            assert held.position_id is not None
            await session.close_position(held.position_id, AAPL)
            assert session.book.gross_exposure_usd == desk.exposure(cid)[1] == 600.0
            await owner.agent_portfolios.revoke_token(bot.portfolio.id, bot.token.id)
            with pytest.raises(SessionStopped):
                await session.open_order(AAPL, amount=10)  # the 401 stops it
            with pytest.raises(SessionStopped):
                await session.pnl()  # and nothing is sent after
        return refused

    assert _run(desk, scenario) == ["max_order_amount_usd", "denied_instruments"]
    events = frames.policy_events(desk.ledger, portfolio=bot.portfolio.id)
    assert events.filter(kind="policy_refused")["rule"].to_list() == [
        "max_order_amount_usd", "denied_instruments"]
    assert events.filter(kind="session_stopped").height == 1
    booked = events.filter(kind="order_booked")
    assert booked.height >= 1 and events.filter(kind="book_reconciled").height >= 2
    assert desk.orders_received(cid) == 4  # three opens and one close, no more


def test_an_async_session_must_be_opened(desk: Desk) -> None:
    bot = desk.portfolio()

    async def scenario(owner: AsyncEtoroClient) -> None:
        session = AsyncAgentSession(owner.as_agent(bot.token), account="real")
        with pytest.raises(ConfigurationError, match="open"):
            await session.open_order(AAPL, amount=10)
        with pytest.raises(ConfigurationError, match="as_agent"):
            await AsyncAgentSession.open(owner, account="real")
    _run(desk, scenario)
    assert desk.orders_received(desk.cid(bot)) == 0


# -- the rebalancer -----------------------------------------------------------------------
def _placed(records: list[Any]) -> list[list[tuple[str, int, float]]]:
    return [[(o.action, o.instrument_id, o.amount_usd) for o in r.placed] for r in records]


def test_the_async_rebalancer_sizes_and_trades_as_the_sync_one_does(desk: Desk) -> None:
    """Two agent portfolios, one rebalanced through each client under the same policy, at
    the same prices: the same orders, cut down the same way, and no local refusal."""
    policy = RiskPolicy(max_order_amount_usd=1500, max_orders_per_hour=4,
                        reconcile_every_orders=3)
    targets = {"AAPL": 0.4, "GLD": 0.3, "BTC": 0.3}
    sync_bot, async_bot = desk.portfolio(), desk.portfolio()
    clock = desk.server.sandbox.clock
    rebalancer = Rebalancer(desk.agent(sync_bot), "real", targets, policy=policy)

    async def scenario(owner: AsyncEtoroClient) -> tuple[list[Any], list[str]]:
        async with await AsyncRebalancer.open(owner.as_agent(async_bot.token), "real", targets,
                                              policy=policy) as twin:
            first = await twin.step()
            rebalancer.step()
            clock.advance(2 * 3600)
            second = await twin.step()
            rebalancer.step()
            cid = desk.cid(async_bot)
            assert twin.session.book.gross_exposure_usd == desk.exposure(cid)[1]  # reconciled
            received = desk.orders_received(cid)
            clock.advance(30 * 86_400)  # prices drift: there is trading to do
            desk.owner.agent_portfolios.pause(async_bot.portfolio.id, reason="review")
            paused = await twin.step()
            assert paused.outcome == "refused: paused" and paused.planned and not paused.placed
            assert paused.sizing[0].reason == "the owner paused this agent portfolio (review)"
            assert desk.orders_received(cid) == received  # held locally: nothing was sent
            return [first, second], twin.steps_frame()["sizing"].to_list()[:2]

    records, sizing = _run(desk, scenario)
    assert _placed(records) == _placed(rebalancer.records)
    assert sizing == rebalancer.steps_frame()["sizing"].to_list()
    first = records[0]
    assert first.outcome == "rebalanced"
    assert [o.amount_usd for o in first.placed] == [1500.0, 1500.0, 1500.0]  # 4000/3000/3000 cut
    assert {s.rule for s in first.sizing} == {"max_order_amount_usd"}
    for bot in (sync_bot, async_bot):
        events = frames.policy_events(desk.ledger, portfolio=bot.portfolio.id)
        assert events.filter(kind="policy_refused").is_empty()
        assert desk.exposure(desk.cid(bot))[1] == pytest.approx(
            sum(o.amount_usd for r in records for o in r.placed if o.action == "buy")
            - sum(o.amount_usd for r in records for o in r.placed if o.action == "close"),
            abs=50)


# -- the drivers --------------------------------------------------------------------------
def _threads_and_errors() -> Work[tuple[int, str]]:
    """Work with two blocking steps: where the first ran, and the second's error, caught."""
    where = yield from blocking(threading.get_ident)
    try:
        yield from blocking(lambda: int("not a number"))
    except ValueError as exc:
        return where, type(exc).__name__
    raise AssertionError("the error was not thrown into the work")


def test_blocking_steps_run_in_the_callers_thread_or_off_the_loop(desk: Desk) -> None:
    here = threading.get_ident()
    assert run(desk.owner, _threads_and_errors()) == (here, "ValueError")

    async def on_the_loop(owner: AsyncEtoroClient) -> tuple[int, int, str]:
        pending = run(owner, _threads_and_errors())
        where, error = await pending
        return threading.get_ident(), where, error

    loop_thread, where, error = _run(desk, on_the_loop)
    assert error == "ValueError" and where not in (loop_thread, here)
