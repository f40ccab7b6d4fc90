"""The async agent session never blocks its event loop on the ledger: the owner's controls it
looks at before each order, the book it records after them and its refusals and
reconciliations are ledger steps run in a worker thread, while another process keeps taking
the ledger's write lock (the loop-lag property of ``test_async_loop``, for the session)."""

from __future__ import annotations

import asyncio

import pytest

from etoro_nb import frames
from etoro_nb.agent import AsyncAgentSession, PolicyViolation, RiskPolicy
from etoro_nb.client import AsyncEtoroClient, EtoroClient
from etoro_nb.ledger import Ledger
from etoro_nb.ratelimit import Quota
from etoro_nb.sandbox.config import DEFAULT_API_KEY, DEFAULT_USER_KEY
from tests.helpers import DEMO_READ, DEMO_WRITE
from tests.test_async_loop import (
    UNTHROTTLED,
    _lags,
    assert_never_stalled,
    contended,
    run_frozen,
    served,
)

ORDERS = 40
__all__ = ["contended", "served"]  # the fixtures, shared with test_async_loop


def _settings(served: str, ledger: Ledger) -> dict[str, object]:
    return {"base_url": served, "api_key": DEFAULT_API_KEY, "user_key": DEFAULT_USER_KEY,
            "environment": "sandbox", "ledger": ledger,
            "quota": Quota(read_limit=UNTHROTTLED, write_limit=UNTHROTTLED)}


@pytest.mark.slow
def test_an_async_session_trading_never_stalls_the_event_loop(served: str,
                                                               contended: Ledger) -> None:
    with EtoroClient(**_settings(served, contended)) as owner:  # type: ignore[arg-type]
        bot = owner.agent_portfolios.create("loopy01", 200, scopes=[DEMO_READ, DEMO_WRITE])
    lags: list[float] = []
    refused: list[str] = []
    # Every third order reads the account (and records it); every fourth is over the limit
    # (refused locally, and recorded): the ledger is written all along.
    policy = RiskPolicy(max_order_amount_usd=50, reconcile_every_orders=3)

    async def scenario() -> None:
        async with AsyncEtoroClient(**_settings(served, contended)) as client:  # type: ignore[arg-type]
            agent = client.as_agent(bot.token)
            session = await AsyncAgentSession.open(agent, policy, account="demo")
            stop = asyncio.Event()
            ticker = asyncio.create_task(_lags(stop, lags))
            for n in range(ORDERS):
                try:
                    await session.open_order("AAPL", amount=60 if n % 4 == 3 else 20)
                except PolicyViolation as exc:
                    refused.append(exc.rule)
            await session.room("AAPL")
            await session.aclose()
            stop.set()
            await ticker

    run_frozen(scenario())
    assert_never_stalled(lags)
    assert refused == ["max_order_amount_usd"] * (ORDERS // 4)
    events = frames.policy_events(contended, portfolio=bot.portfolio.id)
    kinds = events["kind"].to_list()
    assert kinds.count("policy_refused") == ORDERS // 4 and kinds.count("session_stopped") == 1
    assert kinds.count("book_reconciled") >= ORDERS * 3 // 4 // 3
