"""An agent trading through an ``AgentSession`` on a real sandbox: every boundary holds at
its limit and refuses one unit over with nothing reaching the server (checked in the
sandbox's own state), the book needs no read per order and matches the server, the kill
switch stops the session, and a restart keeps the day's counters."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import time, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import etoro_nb as enb
from etoro_nb._runner import drive
from etoro_nb.agent import RiskPolicy
from etoro_nb.agent.session import AgentSession
from etoro_nb.client import EtoroClient
from etoro_nb.errors import (
    ConfigurationError,
    OrderOutcomeUnknownError,
    PolicyViolation,
    SessionStopped,
)
from etoro_nb.ledger import Ledger
from etoro_nb.models import CreatedPortfolio
from etoro_nb.sandbox import Faults
from tests.agent_support import Desk, IgnoresSearchFilters, open_desk
from tests.conftest import START
from tests.helpers import DEMO_READ, DEMO_WRITE, REAL_READ, REAL_WRITE

AAPL, MSFT, BTC = 1001, 1003, 100000


def _usage_rows(desk: Desk, request_id: str) -> int:
    usage = enb.frames.usage(desk.ledger)
    assert isinstance(usage, pl.DataFrame)
    return usage.filter(pl.col("request_id") == request_id).height


def _refused(desk: Desk, session: AgentSession, bot: CreatedPortfolio, rule: str, limit: object,
             attempted: object, order: Callable[[str], object]) -> PolicyViolation:
    """``order(request_id)`` is refused locally by ``rule``: nothing reaches the sandbox, no
    request is recorded, and the refusal is in the ledger with its figures."""
    cid = desk.cid(bot)
    before = desk.orders_received(cid)
    rid = str(uuid.uuid4())
    with pytest.raises(PolicyViolation) as caught:
        order(rid)
    violation = caught.value
    assert (violation.rule, violation.limit, violation.attempted) == (rule, limit, attempted)
    assert desk.orders_received(cid) == before  # the sandbox's side: nothing arrived
    assert _usage_rows(desk, rid) == 0  # and nothing was sent
    events = enb.frames.policy_events(desk.ledger, portfolio=bot.portfolio.id)
    refusal = events.filter(pl.col("request_id") == rid)
    assert refusal["kind"].to_list() == ["policy_refused"] and refusal["rule"][0] == rule
    return violation


def _passes(desk: Desk, bot: CreatedPortfolio, order: Callable[[str], object]) -> None:
    cid = desk.cid(bot)
    before = desk.orders_received(cid)
    order(str(uuid.uuid4()))
    assert desk.orders_received(cid) == before + 1


def _buy(session: AgentSession, instrument: int | str = AAPL, amount: float = 100.0,
         **kw: Any) -> Callable[[str], object]:
    return lambda rid: session.open_order(instrument, amount=amount, request_id=rid, **kw)


# -- each boundary: at the limit passes, one unit over is refused ----------------------------
@pytest.mark.parametrize(("limits", "setup", "at", "over", "rule", "limit", "attempted"), [
    ({"max_order_amount_usd": 500}, [], {"amount": 500}, {"amount": 501},
     "max_order_amount_usd", 500.0, 501.0),
    ({"max_leverage": 2}, [], {"leverage": 2}, {"leverage": 3}, "max_leverage", 2, 3),
    ({"max_open_positions": 2}, [{}], {}, {}, "max_open_positions", 2, 3),
    ({"max_gross_exposure_usd": 1000}, [{"amount": 300}], {"amount": 350, "leverage": 2},
     {"amount": 10}, "max_gross_exposure_usd", 1000.0, 1010.0),
    ({"max_gross_exposure_share": 0.1}, [{"amount": 300}], {"amount": 700}, {"amount": 10},
     "max_gross_exposure_share", 0.1, 0.101),
    ({"max_orders_per_day": 3}, [{}, {}], {}, {}, "max_orders_per_day", 3, 4),
    ({"max_orders_per_hour": 2}, [{}], {}, {}, "max_orders_per_hour", 2, 3),
    ({"allowed_instruments": ["AAPL"]}, [], {}, {"instrument": MSFT}, "allowed_instruments",
     ["AAPL"], "MSFT"),
    ({"denied_instruments": ["BTC"]}, [], {}, {"instrument": BTC}, "denied_instruments",
     ["BTC"], "BTC"),
    ({"allowed_asset_classes": ["Stocks"]}, [], {}, {"instrument": "BTC"},
     "allowed_asset_classes", ["stocks"], "Crypto"),
    ({"require_stop_loss": True}, [], {"stop_loss": 100.0}, {}, "require_stop_loss", True, None),
    ({"trading_hours_utc": (time(14, 30), time(15))}, [], {}, {"later": 1800},
     "trading_hours_utc", "14:30-15:00 UTC", "15:00 UTC"),
    ({"expires_at": START + timedelta(seconds=1)}, [], {}, {"later": 1}, "expires_at",
     (START + timedelta(seconds=1)).isoformat(), (START + timedelta(seconds=1)).isoformat()),
])
def test_each_boundary_holds_at_its_limit(desk: Desk, limits: dict[str, Any],
                                          setup: list[dict[str, Any]], at: dict[str, Any],
                                          over: dict[str, Any], rule: str, limit: object,
                                          attempted: object) -> None:
    bot = desk.portfolio()
    session = desk.session(bot, RiskPolicy(**limits), virtual_balance_usd=10_000)
    for extra in setup:
        _passes(desk, bot, _buy(session, **extra))
    _passes(desk, bot, _buy(session, **at))  # exactly at the limit
    later = over.pop("later", 0)
    desk.server.sandbox.clock.advance(later)
    violation = _refused(desk, session, bot, rule, limit, attempted, _buy(session, **over))
    assert rule in str(violation)
    assert session.stopped is None  # a refusal does not stop the session


def test_the_hourly_limit_is_a_rolling_hour(desk: Desk) -> None:
    bot = desk.portfolio()
    session = desk.session(bot, RiskPolicy(max_orders_per_hour=1))
    _passes(desk, bot, _buy(session))
    _refused(desk, session, bot, "max_orders_per_hour", 1, 2, _buy(session))
    desk.server.sandbox.clock.advance(3600)
    _passes(desk, bot, _buy(session))


def test_the_daily_loss_stops_opening_but_never_closing(desk: Desk) -> None:
    bot = desk.portfolio()
    session = desk.session(bot, RiskPolicy(max_daily_loss_usd=1000))
    session.open_order(BTC, amount=1000)  # crypto's 1% spread: closing at once loses ~10 USD
    position = session.portfolio().positions[0]
    session.close_position(position.position_id, BTC)
    lost = -desk.realized(desk.cid(bot), START.replace(hour=0, minute=0))
    assert 5 < lost < 20
    # The owner's limit just above the loss: opening passes; at the loss: reached, refused.
    desk.owner.agent_portfolios.set_policy(bot.portfolio.id,
                                           RiskPolicy(max_daily_loss_usd=lost + 0.01))
    _passes(desk, bot, _buy(session, BTC, 20))
    desk.owner.agent_portfolios.set_policy(bot.portfolio.id, RiskPolicy(max_daily_loss_usd=lost))
    _refused(desk, session, bot, "max_daily_loss_usd", lost, lost, _buy(session))
    held = session.portfolio().positions[0]
    session.close_position(held.position_id, BTC)  # closing is always allowed
    assert session.portfolio().positions == ()
    desk.server.sandbox.clock.advance(86_400)  # the next UTC day starts from nothing
    _passes(desk, bot, _buy(session))


def test_a_token_without_the_write_scope_is_refused_locally(desk: Desk) -> None:
    bot = desk.portfolio(scopes=[REAL_READ, DEMO_READ, DEMO_WRITE])
    session = desk.session(bot)
    _refused(desk, session, bot, "scope", sorted([DEMO_READ, DEMO_WRITE, REAL_READ]), REAL_WRITE,
             _buy(session))
    with pytest.raises(PolicyViolation, match=REAL_READ.replace(".", r"\.")):
        desk.session(desk.portfolio(scopes=[DEMO_READ, DEMO_WRITE]))  # cannot keep a book


def test_closes_need_no_room_but_need_the_scope_and_no_pause(desk: Desk) -> None:
    bot = desk.portfolio()
    session = desk.session(bot, RiskPolicy(max_orders_per_day=1))
    session.open_order(AAPL, amount=100)
    position = session.portfolio().positions[0]
    _refused(desk, session, bot, "max_orders_per_day", 1, 2, _buy(session))
    desk.owner.agent_portfolios.pause(bot.portfolio.id, reason="checking")
    _refused(desk, session, bot, "paused", "checking", "closePositionByMarketRate",
             lambda rid: session.close_position(position.position_id, AAPL, request_id=rid))
    desk.owner.agent_portfolios.resume(bot.portfolio.id)
    session.close_position(position.position_id, AAPL, units=position.units / 2)
    session.close_position(position.position_id, AAPL)  # over the day's orders: a close is fine
    assert desk.positions(desk.cid(bot)) == []


# -- the book: no read per order, and the same as the server's --------------------------------
def _gets(desk: Desk, bot: CreatedPortfolio) -> int:
    usage = enb.frames.usage(desk.ledger, portfolio=bot.portfolio.id, phase="outcome")
    assert isinstance(usage, pl.DataFrame)
    return usage.filter(pl.col("method") == "GET", pl.col("principal") == "agent").height


def test_orders_need_no_read_until_the_cadence_says_so(desk: Desk) -> None:
    bot = desk.portfolio()
    session = desk.session(bot, RiskPolicy(max_order_amount_usd=1000, max_open_positions=50,
                                           max_gross_exposure_usd=5000, reconcile_every_orders=5))
    started = _gets(desk, bot)
    assert started == 3  # me, the account, the day's closed trades
    for _ in range(10):
        session.open_order(AAPL, amount=50)
    assert _gets(desk, bot) == started + 1  # one read after the fifth order, none per order
    count, exposure = desk.exposure(desk.cid(bot))
    assert (session.book.open_positions, session.book.gross_exposure_usd) == (count, exposure)


def test_an_unknown_outcome_counts_as_placed_until_a_read_shows_otherwise(desk: Desk) -> None:
    bot = desk.portfolio()
    session = desk.session(bot)
    desk.server.sandbox.set_faults(Faults(fail_rate=1.0))  # no order, no lookup gets through
    with pytest.raises(OrderOutcomeUnknownError):
        session.open_order(AAPL, amount=100)
    assert session.book.gross_exposure_usd == 100.0  # the worst case, until it knows
    desk.server.sandbox.set_faults(Faults())
    reads = _gets(desk, bot)
    session.open_order(AAPL, amount=200)
    assert _gets(desk, bot) == reads + 1  # it read the account before the next order
    assert session.book.gross_exposure_usd == 200.0 == desk.exposure(desk.cid(bot))[1]


_OPEN = st.tuples(st.just("open"), st.sampled_from([AAPL, BTC, 1]),
                  st.sampled_from([10.0, 25.0, 100.0, 333.33, 900.0]), st.sampled_from([1, 1, 1, 2]))
_CLOSE = st.tuples(st.just("close"), st.integers(0, 20), st.sampled_from([None, 0.1, 0.5, 0.9]),
                   st.just(0))
_READ = st.tuples(st.just("read"), st.just(0), st.just(0.0), st.just(0))
_LATER = st.tuples(st.just("later"), st.integers(60, 1800), st.just(0.0), st.just(0))
_POLICY = st.fixed_dictionaries({}, optional={
    "max_order_amount_usd": st.sampled_from([100.0, 500.0]),
    "max_leverage": st.sampled_from([1, 2]),
    "max_open_positions": st.integers(1, 6),
    "max_gross_exposure_usd": st.sampled_from([500.0, 1500.0]),
    "max_gross_exposure_share": st.sampled_from([0.05, 0.2]),
    "max_orders_per_day": st.integers(2, 12),
    "max_orders_per_hour": st.integers(1, 6),
    "max_daily_loss_usd": st.sampled_from([0.5, 5.0]),
    "reconcile_every_orders": st.integers(2, 8),
})


@pytest.mark.slow
@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(limits=_POLICY, actions=st.lists(st.one_of(_OPEN, _OPEN, _OPEN, _CLOSE, _CLOSE, _READ,
                                                  _LATER), min_size=10, max_size=25))
def test_no_accepted_order_leaves_the_book_beyond_a_boundary(
        desk: Desk, limits: dict[str, Any], actions: list[tuple[Any, ...]]) -> None:
    bot = desk.portfolio()
    policy = RiskPolicy(**limits)
    session = desk.session(bot, policy, virtual_balance_usd=10_000)
    cid = desk.cid(bot)
    clock = desk.server.sandbox.clock
    for action, a, b, c in actions:
        if action == "open":
            open_checked(desk, session, cid, policy, a, b, c)
        elif action == "close":
            close_some(session, a, b)
        elif action == "read":
            session.portfolio()
        else:
            clock.advance(a)
        assert session.book.gross_exposure_usd == desk.exposure(cid)[1]  # the book, unread
        assert session.book.open_positions == desk.exposure(cid)[0]
    session.reconcile()
    book = sorted((h.position_id, h.amount_usd, h.units, h.leverage) for h in session.holdings())
    assert book == desk.positions(cid)


def open_checked(desk: Desk, session: AgentSession, cid: str, policy: RiskPolicy,
                 instrument: Any, amount: float, leverage: int) -> None:
    """Open through ``session``: a local refusal must be justified by the sandbox's figures
    just before it, and an accepted order must leave the sandbox inside every limit."""
    now = desk.server.sandbox.clock.now()
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    count, exposure = desk.exposure(cid)
    lost = -desk.realized(cid, day)
    today = desk.orders_received(cid, day)
    hour = desk.orders_received(cid, now - timedelta(hours=1) + timedelta(milliseconds=1))
    try:
        session.open_order(instrument, amount=amount, leverage=leverage)
    except PolicyViolation as refused:
        _justified(refused, policy, count, exposure, lost, today, hour, amount * leverage)
        return
    except enb.errors.BadRequestError:  # the server's refusal (funds): nothing placed
        return
    after_count, after_exposure = desk.exposure(cid)
    assert after_exposure == round(exposure + amount * leverage, 2)
    _within(policy, after_count, after_exposure, lost, today + 1, hour + 1, amount, leverage)


def close_some(session: AgentSession, pick: int, share: float | None) -> None:
    """Close the ``pick``-th held position (modulo), all of it or ``share`` of its units."""
    held = [h for h in session.holdings() if h.position_id is not None]
    if held:
        target = held[pick % len(held)]
        assert target.units is not None and target.position_id is not None
        units = None if share is None else round(target.units * share, 6)
        session.close_position(target.position_id, int(target.instrument), units=units)


def _within(policy: RiskPolicy, count: int, exposure: float, lost: float, today: int,
            hour: int, amount: float, leverage: int) -> None:
    """The sandbox's state just after an accepted opening order is inside every limit."""
    cent = 0.005
    for limit, value in [(policy.max_order_amount_usd, amount), (policy.max_leverage, leverage),
                         (policy.max_open_positions, count),
                         (policy.max_gross_exposure_usd, exposure),
                         (None if policy.max_gross_exposure_share is None
                          else policy.max_gross_exposure_share * 10_000, exposure),
                         (policy.max_orders_per_day, today), (policy.max_orders_per_hour, hour)]:
        assert limit is None or value <= limit + cent, (limit, value)
    assert policy.max_daily_loss_usd is None or lost < policy.max_daily_loss_usd


def _justified(refused: PolicyViolation, policy: RiskPolicy, count: int, exposure: float,
               lost: float, today: int, hour: int, order_exposure: float) -> None:
    """A refusal is for a limit the order would really have crossed (the book is exact here:
    every close was of a position the book held, and nothing has a stop)."""
    rule = refused.rule
    crossed = {
        "max_order_amount_usd": lambda: True, "max_leverage": lambda: True,
        "max_open_positions": lambda: count + 1 > (policy.max_open_positions or 0),
        "max_gross_exposure_usd": lambda: exposure + order_exposure
        > (policy.max_gross_exposure_usd or 0) + 0.005,
        "max_gross_exposure_share": lambda: exposure + order_exposure
        > (policy.max_gross_exposure_share or 0) * 10_000 + 0.005,
        "max_orders_per_day": lambda: today + 1 > (policy.max_orders_per_day or 0),
        "max_orders_per_hour": lambda: hour + 1 > (policy.max_orders_per_hour or 0),
        "max_daily_loss_usd": lambda: lost + 0.005 >= (policy.max_daily_loss_usd or 0),
    }
    assert rule in crossed and crossed[rule](), (rule, refused)


def test_the_book_after_each_order_is_in_the_audit_in_order(desk: Desk) -> None:
    bot = desk.portfolio()
    session = desk.session(bot, RiskPolicy(max_gross_exposure_usd=1000))
    rids = [str(uuid.uuid4()) for _ in range(3)]
    for i, rid in enumerate(rids):
        session.open_order(AAPL, amount=100.0 * (i + 1), request_id=rid)

    def audit() -> pl.DataFrame:
        return enb.frames.policy_events(desk.ledger, portfolio=bot.portfolio.id,
                                        server_refusals=False)

    assert audit().filter(pl.col("kind") == "order_booked").is_empty()  # a batch, in memory
    with pytest.raises(PolicyViolation):
        session.open_order(AAPL, amount=500)  # a refusal writes the batch before itself
    events = audit().filter(pl.col("kind").is_in(["order_booked", "policy_refused"]))
    assert events["kind"].to_list() == ["order_booked"] * 3 + ["policy_refused"]
    assert events["request_id"].to_list()[:3] == rids
    assert events["gross_exposure_usd"].to_list() == [100.0, 300.0, 600.0, 600.0]
    assert events["exposure_limit_usd"].to_list() == [1000.0] * 4
    assert events["attempted_value"].to_list()[3] == 1100.0
    session.open_order(AAPL, amount=50)
    session.close()  # closing writes what is left, then the stop
    assert audit()["kind"].to_list()[-2:] == ["order_booked", "session_stopped"]


# -- the kill switch ----------------------------------------------------------------------------
def _stop_events(desk: Desk, bot: CreatedPortfolio) -> pl.DataFrame:
    return enb.frames.policy_events(desk.ledger, portfolio=bot.portfolio.id).filter(
        pl.col("kind") == "session_stopped")


def test_revocation_mid_run_stops_the_session_for_good(desk: Desk) -> None:
    bot = desk.portfolio()
    session = desk.session(bot)
    session.open_order(AAPL, amount=100)
    desk.owner.agent_portfolios.revoke_token(bot.portfolio.id, bot.token.id)
    cid = desk.cid(bot)
    received = desk.orders_received(cid)
    with pytest.raises(SessionStopped, match="401") as caught:
        session.open_order(AAPL, amount=100)
    assert caught.value.cause is not None and caught.value.cause.status == 401
    sent = _gets(desk, bot)
    with pytest.raises(SessionStopped):
        session.portfolio()
    with pytest.raises(SessionStopped):
        session.close_position(1, AAPL)
    assert _gets(desk, bot) == sent  # nothing more was sent, not even a read
    assert desk.orders_received(cid) == received
    stops = _stop_events(desk, bot)
    assert stops.height == 1 and "revoked" in stops["reason"][0]
    # the server's answer that stopped it is in the audit, not only in the reason's words
    assert (stops["status"][0], stops["error_code"][0]) == (401, caught.value.cause.error_code)
    assert stops["error_code"][0]
    assert session.stopped is not None and "401" in str(session.stopped)


def test_scope_narrowing_mid_run_stops_the_session_and_says_what_remains(desk: Desk) -> None:
    bot = desk.portfolio()
    session = desk.session(bot)
    session.open_order(AAPL, amount=100)
    desk.owner.agent_portfolios.update_token(bot.portfolio.id, bot.token.id, scopes=[REAL_READ])
    with pytest.raises(SessionStopped, match="narrowed"):
        session.open_order(AAPL, amount=100)
    assert session.scopes == frozenset({REAL_READ})  # re-learnt from /api/v1/me
    reason = _stop_events(desk, bot)["reason"][0]
    assert "403" in reason and REAL_READ in reason
    # A new session learns the narrower scopes at start and refuses locally instead.
    again = desk.session(bot)
    _refused(desk, again, bot, "scope", [REAL_READ], REAL_WRITE, _buy(again))


def test_orders_waiting_for_the_session_are_abandoned_when_it_stops(desk: Desk) -> None:
    bot = desk.portfolio()
    session = desk.session(bot)
    outcome: list[BaseException] = []

    def queued() -> None:
        try:
            session.open_order(AAPL, amount=100)
        except BaseException as exc:  # the outcome is the test's to check
            outcome.append(exc)

    with session._lock:  # an order in flight holds the lock; another one queues behind it
        waiting = threading.Thread(target=queued)
        waiting.start()
        drive(desk.agents[-1], session._stop("the server refused the token (401 Unauthorized): "
                                             "revoked", None))
    waiting.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], SessionStopped)
    assert desk.orders_received(desk.cid(bot)) == 0


def test_closing_the_session_records_its_end(desk: Desk) -> None:
    bot = desk.portfolio()
    with desk.session(bot) as session:
        session.open_order(AAPL, amount=100)
    assert _stop_events(desk, bot)["reason"].to_list() == ["closed"]
    with pytest.raises(SessionStopped, match="closed"):
        session.open_order(AAPL, amount=100)


# -- a restart keeps the day's counters -------------------------------------------------------
def test_a_restart_keeps_the_days_counters(desk: Desk) -> None:
    bot = desk.portfolio()
    policy = RiskPolicy(max_orders_per_day=4, max_orders_per_hour=3)
    first = desk.session(bot, policy)
    for _ in range(2):
        first.open_order(AAPL, amount=100)
    position = first.portfolio().positions[0]
    first.close_position(position.position_id, AAPL)  # closes count too
    lost = first.reconcile().realized_pnl_today_usd
    first.close()
    desk.server.sandbox.clock.advance(3600)  # the hour has passed, the day has not
    # A new process: its own ledger connection on the same file, its own agent client.
    reopened = Ledger(desk.ledger_path)
    agent = EtoroClient(base_url=desk.server.base_url, api_key=desk.server.credentials.api_key,
                   user_key=bot.token, environment="sandbox", principal="agent",
                   ledger=reopened, clock=desk.server.sandbox.clock.now)
    desk.agents.append(agent)
    second = AgentSession(agent, policy, account="real")
    assert (second.book.orders_today, second.book.orders_last_hour) == (3, 0)
    assert second.book.realized_pnl_today_usd == lost
    second.open_order(AAPL, amount=100)
    _refused(desk, second, bot, "max_orders_per_day", 4, 5, _buy(second))
    reopened.close()


def test_the_session_takes_orders_by_symbol_and_sizes_to_the_policy(desk: Desk) -> None:
    bot = desk.portfolio()
    session = desk.session(bot, RiskPolicy(max_order_amount_usd=400, max_gross_exposure_usd=1000,
                                           denied_instruments=["BTC"]))
    assert session.room_usd() == 400.0
    session.open_order("AAPL", amount=400, leverage=2)
    assert session.room_usd(leverage=2) == 100.0
    assert session.room_usd("BTC") == 0.0
    assert session.room_usd("MSFT", leverage=2) == 100.0
    session.open_order("MSFT", amount=100, leverage=2)
    assert session.room_usd() == 0.0
    assert session.now() == desk.server.sandbox.clock.now()  # it runs on the sandbox's clock


def test_bad_input_is_refused_before_any_check_or_request(desk: Desk) -> None:
    bot = desk.portfolio()
    with pytest.raises(enb.errors.InvalidInputError, match="account"):
        desk.session(bot, account="paper")
    with pytest.raises(enb.errors.ConfigurationError, match="as_agent"):
        AgentSession(desk.owner, account="demo")  # the owner's client is not an agent's
    session = desk.session(bot)
    for bad in ({"amount": -5.0}, {"amount": 10.0, "leverage": 0}, {"amount": 10.0, "side": "hold"}):
        with pytest.raises(enb.errors.InvalidInputError):
            session.open_order(AAPL, **bad)
    with pytest.raises(enb.errors.InvalidInputError, match="units"):
        session.close_position(1, AAPL, units=0)
    assert desk.orders_received(desk.cid(bot)) == 0
    assert enb.frames.policy_events(desk.ledger).filter(pl.col("kind") == "policy_refused").is_empty()


def test_a_session_without_a_ledger_holds_its_own_policy(server: Any,
                                                         make_client: Callable[..., Any]) -> None:
    owner = make_client(server)  # no ledger: no owner controls, nothing recorded
    bot = owner.agent_portfolios.create("noledger", 500, scopes=[DEMO_READ, DEMO_WRITE])
    session = AgentSession(owner.as_agent(bot.token), RiskPolicy(max_order_amount_usd=50))
    assert session.controls is None and session.portfolio_id is None
    session.open_order(AAPL, amount=50)
    with pytest.raises(PolicyViolation, match="max_order_amount_usd"):
        session.open_order(AAPL, amount=51)
    session.close()


def test_an_unmatched_search_answer_is_not_taken_for_the_instrument_named(
        make_server: Any, make_client: Any, tmp_path: Path) -> None:
    """A server that ignored the search's filter lists other instruments first: the session
    must not check the deny list against one of them (and send a denied order)."""
    desk = open_desk(make_server, make_client, tmp_path, transport=IgnoresSearchFilters())
    bot = desk.portfolio()
    session = desk.session(bot, RiskPolicy(denied_instruments=["BTC"]))
    with pytest.raises(PolicyViolation) as refused:
        session.open_order("BTC", amount=100)
    assert refused.value.rule == "denied_instruments"
    assert desk.orders_received(desk.cid(bot)) == 0
    session.close()
    for agent in desk.agents:
        agent.close()


def test_a_session_that_failed_to_be_made_still_has_a_repr(desk: Desk) -> None:
    """A traceback that shows its locals (pytest, IPython's verbose mode) shows the half-made
    session, not an error raised by its repr."""
    with pytest.raises(ConfigurationError) as caught:
        AgentSession(desk.owner, account="real")  # the owner's client: refused at once
    half_made = caught.traceback[-1].locals["self"]
    assert repr(half_made) == "AgentSession(not made)"
