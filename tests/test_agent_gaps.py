"""What issue 10's "tests that must exist" ask for beyond what the other agent tests check:

- a local refusal is proven on the sandbox's side by what the sandbox itself received (its
  count of the token's write requests, and the order request ids its order handler saw),
  not only by its count of orders placed, which cannot tell a refused order that was never
  sent from one the sandbox received and refused;
- the day's counters survive a restart of the agent's process (a separate interpreter that
  trades and exits, cleanly or killed with its ledger rows still in its spool)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etoro_nb.agent import AgentSession, RiskPolicy
from etoro_nb.client import EtoroClient
from etoro_nb.errors import APIError, PolicyViolation
from etoro_nb.ledger import Ledger
from etoro_nb.models import CreatedPortfolio
from etoro_nb.sandbox import Faults
from etoro_nb.sandbox.app import _key_of
from tests.agent_support import Desk, open_desk
from tests.helpers import ALL_SCOPES, REAL_READ
from tests.test_agent_session import _CLOSE, _LATER, _OPEN, _POLICY, close_some, open_checked

AAPL = 1001
UNKNOWN_INSTRUMENT = 999_999


def _secret(bot: CreatedPortfolio) -> str:
    secret = bot.token.secret
    assert secret is not None
    return secret.get_secret_value()


def _writes_received(desk: Desk, bot: CreatedPortfolio) -> int:
    """Write requests the sandbox received with this token (it counts every authenticated
    one, before checking its scope or handling it), over its quota window; the simulated
    clock stands still, so none leaves the window during a test."""
    quota = desk.server.sandbox.quota
    now = desk.server.sandbox.clock.now()
    return quota.limits["write"] - quota.peek(_key_of(_secret(bot)), "write", now).remaining


def _order_ids_seen(desk: Desk) -> set[str]:
    """The x-request-id of every order creation the sandbox's order handler ran, whatever
    its answer (the sandbox keeps them to answer a repeated id the same way)."""
    return {str(r[0]) for r in desk.query("SELECT request_id FROM idempotency")}


# Boundaries whose order the sandbox itself would refuse if it were sent: its count of
# orders placed stays the same either way, so only what it received can show nothing left.
CASES: list[tuple[str, list[str], dict[str, Any], dict[str, Any]]] = [
    ("max_order_amount_usd", ALL_SCOPES, {"max_order_amount_usd": 500},
     {"instrument": AAPL, "amount": 50_000_000.0}),  # beyond the account's money too
    ("denied_instruments", ALL_SCOPES, {"denied_instruments": [UNKNOWN_INSTRUMENT]},
     {"instrument": UNKNOWN_INSTRUMENT, "amount": 100.0}),  # unknown to the sandbox too
    ("scope", [REAL_READ], {}, {"instrument": AAPL, "amount": 100.0}),  # 403 if sent
]


@pytest.mark.parametrize(("rule", "scopes", "limits", "order"), CASES, ids=[c[0] for c in CASES])
def test_a_local_refusal_never_reaches_the_sandbox(desk: Desk, rule: str, scopes: list[str],
                                                   limits: dict[str, Any],
                                                   order: dict[str, Any]) -> None:
    bot = desk.portfolio(scopes=scopes)
    session = desk.session(bot, RiskPolicy(**limits))
    cid = desk.cid(bot)
    writes, placed = _writes_received(desk, bot), desk.orders_received(cid)
    rid = str(uuid.uuid4())
    with pytest.raises(PolicyViolation) as caught:
        session.open_order(request_id=rid, **order)
    assert caught.value.rule == rule and session.stopped is None
    assert _writes_received(desk, bot) == writes  # the sandbox received no write at all
    assert rid not in _order_ids_seen(desk)
    assert desk.orders_received(cid) == placed
    # The control: the same order sent by the bare agent client reaches the sandbox, which
    # refuses it, and its count of orders placed does not move either.
    with pytest.raises(APIError):
        desk.agent(bot).trading("real").open_order(request_id=rid, **order)
    assert _writes_received(desk, bot) == writes + 1
    assert desk.orders_received(cid) == placed


def test_a_pause_stops_the_order_before_the_sandbox_receives_it(desk: Desk) -> None:
    bot = desk.portfolio()
    session = desk.session(bot)
    desk.owner.agent_portfolios.pause(bot.portfolio.id, reason="checking")
    writes = _writes_received(desk, bot)
    rid = str(uuid.uuid4())
    with pytest.raises(PolicyViolation, match="paused"):
        session.open_order(AAPL, amount=100, request_id=rid)
    assert _writes_received(desk, bot) == writes and rid not in _order_ids_seen(desk)
    desk.owner.agent_portfolios.resume(bot.portfolio.id)
    session.open_order(AAPL, amount=100, request_id=rid)  # the same id, now sent once
    assert _writes_received(desk, bot) == writes + 1 and rid in _order_ids_seen(desk)


# -- a restart of the agent's process keeps the day's counters ---------------------------------
def test_a_restart_counts_an_order_whose_answer_was_lost(desk: Desk) -> None:
    """The sandbox places the order and the answer is dropped; the client finds it by its
    request id. The ledger holds no 2xx for the order itself, yet it was placed."""
    bot = desk.portfolio()
    policy = RiskPolicy(max_orders_per_day=2)
    first = desk.session(bot, policy)
    first.open_order(AAPL, amount=100)
    desk.server.sandbox.set_faults(Faults(drop_after_commit_rate=1.0))
    first.open_order(AAPL, amount=100)  # placed; its answer lost, then looked up
    desk.server.sandbox.set_faults(Faults())
    assert desk.orders_received(desk.cid(bot)) == 2
    first.close()
    again = desk.session(bot, policy)  # a restart: the counts come from the ledger
    assert again.book.orders_today == 2
    with pytest.raises(PolicyViolation, match="max_orders_per_day"):
        again.open_order(AAPL, amount=100)
    assert desk.orders_received(desk.cid(bot)) == 2



_AGENT = """
import os, sys
from etoro_nb.agent import AgentSession, RiskPolicy
from etoro_nb.client import EtoroClient
from etoro_nb.ledger import Ledger
base, api_key, path, orders, how = sys.argv[1:]
agent = EtoroClient(base_url=base, api_key=api_key, user_key=os.environ["AGENT_TOKEN"],
                    environment="sandbox", principal="agent", allow_real=True, ledger=Ledger(path),
                    owns_ledger=True)
session = AgentSession(agent, RiskPolicy(max_orders_per_hour=3), account="real")
for _ in range(int(orders)):
    session.open_order(1001, amount=100)
if how == "killed":
    os._exit(0)  # no close: the ledger rows it has not committed are left in its spool
session.close()
agent.close()
"""


@pytest.mark.parametrize("how", ["closed", "killed"])
def test_a_restarted_agent_process_keeps_the_days_counters(
        make_server: Callable[..., Any], make_client: Callable[..., EtoroClient],
        tmp_path: Any, how: str) -> None:
    # The wall clock on both sides: the agent's process cannot share a simulated one. The
    # limit is per rolling hour, so a run across midnight counts the same.
    desk = open_desk(make_server, make_client, tmp_path, clock=None)
    bot = desk.portfolio()
    creds = desk.server.credentials
    done = subprocess.run([sys.executable, "-c", _AGENT, creds.base_url, creds.api_key,
                           str(desk.ledger_path), "3", how],
                          env={**os.environ, "AGENT_TOKEN": _secret(bot)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert desk.orders_received(desk.cid(bot)) == 3
    reopened = Ledger(desk.ledger_path)  # the restarted agent's own ledger connection
    agent = EtoroClient(base_url=creds.base_url, api_key=creds.api_key, user_key=bot.token,
                        environment="sandbox", principal="agent", allow_real=True,
                        ledger=reopened, owns_ledger=True)
    try:
        session = AgentSession(agent, RiskPolicy(max_orders_per_hour=3), account="real")
        assert session.book.orders_last_hour == 3
        with pytest.raises(PolicyViolation) as caught:
            session.open_order(AAPL, amount=100)
        assert (caught.value.rule, caught.value.limit, caught.value.attempted) == (
            "max_orders_per_hour", 3, 4)
        assert desk.orders_received(desk.cid(bot)) == 3
        session.close()
    finally:
        agent.close()
        desk.owner.close()


# -- the owner's policy, from the ledger, holds each boundary as the session's own does ---------
OWNER_CASES: list[tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any], dict[str, Any],
                        str, object, object]] = [
    # The share's base is the virtual balance the owner's policy recorded (10,000 USD): the
    # session is given none of its own.
    ({"max_gross_exposure_share": 0.1}, [{"amount": 600}], {"amount": 400}, {"amount": 1},
     "max_gross_exposure_share", 0.1, 0.1001),
    ({"allowed_asset_classes": ["Stocks", "ETF"]}, [], {"instrument": "GLD"},
     {"instrument": "ETH"}, "allowed_asset_classes", ["stocks", "etf"], "Crypto"),
    ({"max_orders_per_hour": 2}, [{}], {}, {}, "max_orders_per_hour", 2, 3),
    ({"require_stop_loss": True}, [], {"stop_loss": 100.0}, {}, "require_stop_loss", True, None),
    ({"trading_hours_utc": ["14:00", "14:31"]}, [], {"later": 59}, {"later": 1},
     "trading_hours_utc", "14:00-14:31 UTC", "14:31 UTC"),
]


@pytest.mark.parametrize(("limits", "setup", "at", "over", "rule", "limit", "attempted"), OWNER_CASES,
                         ids=[next(iter(c[0])) for c in OWNER_CASES])
def test_the_owners_policy_holds_each_boundary(desk: Desk, limits: dict[str, Any],
                                              setup: list[dict[str, Any]], at: dict[str, Any],
                                              over: dict[str, Any], rule: str, limit: object,
                                              attempted: object) -> None:
    bot = desk.portfolio()
    desk.owner.agent_portfolios.set_policy(bot.portfolio.id, RiskPolicy.from_limits(limits))
    session = desk.session(bot)  # no policy of its own: only the owner's, from the ledger
    cid = desk.cid(bot)
    clock = desk.server.sandbox.clock

    def buy(**kw: Any) -> None:
        clock.advance(kw.pop("later", 0))
        session.open_order(kw.pop("instrument", AAPL), amount=kw.pop("amount", 100.0), **kw)

    for extra in [*setup, at]:  # the last one exactly at the limit
        before = desk.orders_received(cid)
        buy(**extra)
        assert desk.orders_received(cid) == before + 1
    writes = _writes_received(desk, bot)
    with pytest.raises(PolicyViolation) as caught:
        buy(**over)
    assert (caught.value.rule, caught.value.limit, caught.value.attempted) == (rule, limit, attempted)
    assert _writes_received(desk, bot) == writes  # the sandbox received nothing


# -- random streams under the owner's policy, tightened mid-run ---------------------------------
def _tighter(policy: RiskPolicy) -> RiskPolicy:
    """Every upper limit of ``policy`` halved (counts one less): tighter, so no consent."""
    limits = policy.limits()
    for name, value in limits.items():
        if name.startswith("max_") and isinstance(value, float):
            limits[name] = round(value / 2, 2)
        elif name.startswith("max_") and isinstance(value, int):
            limits[name] = max(1, value - 1)
    return RiskPolicy.from_limits(limits)


_TIGHTEN = st.tuples(st.just("tighten"), st.just(0), st.just(0.0), st.just(0))


@pytest.mark.slow
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(limits=_POLICY, actions=st.lists(st.one_of(_OPEN, _OPEN, _OPEN, _CLOSE, _LATER, _TIGHTEN),
                                        min_size=8, max_size=20))
def test_no_accepted_order_crosses_the_owners_policy_in_force(
        desk: Desk, limits: dict[str, Any], actions: list[tuple[Any, ...]]) -> None:
    """As ``test_no_accepted_order_leaves_the_book_beyond_a_boundary``, with the policy the
    owner's (read from the ledger before each order) and tightened by the owner mid-run:
    every accepted order is inside the policy in force when it was placed."""
    bot = desk.portfolio()
    policy = RiskPolicy(**limits)
    desk.owner.agent_portfolios.set_policy(bot.portfolio.id, policy)
    session = desk.session(bot)
    cid = desk.cid(bot)
    clock = desk.server.sandbox.clock
    for action, a, b, c in actions:
        if action == "open":
            open_checked(desk, session, cid, policy, a, b, c)
        elif action == "close":
            close_some(session, a, b)
        elif action == "tighten":
            policy = _tighter(policy)
            desk.owner.agent_portfolios.set_policy(bot.portfolio.id, policy)
        else:
            clock.advance(a)
    session.reconcile()
    book = sorted((h.position_id, h.amount_usd, h.units, h.leverage) for h in session.holdings())
    assert book == desk.positions(cid)
