"""Risk policies without a server: the model, what loosens, the rules one by one, the book's
arithmetic, the ledger migration that makes room for their events, and the exposure chart's
shaping."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import etoro_nb as enb
from etoro_nb.agent import RiskPolicy
from etoro_nb.agent import checks as rules
from etoro_nb.agent.book import Book, BookView, Holding
from etoro_nb.agent.checks import Instrument, Order
from etoro_nb.charts import shaping
from etoro_nb.errors import InvalidInputError, PolicyViolation
from etoro_nb.frames import POLICY_EVENTS_SCHEMA
from etoro_nb.ledger import Ledger, schema
from etoro_nb.ledger import checkpoint as cp
from etoro_nb.ledger import core as ledger_core
from etoro_nb.models import Portfolio

NOW = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
AAPL = Instrument(1001, "AAPL", 5, "Stocks")
BTC = Instrument(100000, "BTC", 10, "Crypto")


# -- the model ------------------------------------------------------------------------------
def test_every_limit_is_optional_and_the_policy_is_frozen() -> None:
    policy = RiskPolicy()
    assert policy.limits() == {}
    assert RiskPolicy().loosened_by(RiskPolicy()) == []
    with pytest.raises(pydantic_frozen()):
        policy.max_leverage = 3  # type: ignore[misc]


def pydantic_frozen() -> type[Exception]:
    from pydantic import ValidationError as PydanticValidationError

    return PydanticValidationError


@pytest.mark.parametrize(("given", "field", "rule"), [
    ({"max_leverage": 0}, "max_leverage", "greater than or equal to 1"),
    ({"max_order_amount_usd": -5.0}, "max_order_amount_usd", "greater than 0"),
    ({"max_orders_per_day": True}, "max_orders_per_day", "valid integer"),
    ({"max_gross_exposure_usd": float("nan")}, "max_gross_exposure_usd", "finite"),
    ({"expires_at": datetime(2026, 3, 2)}, "expires_at", "timezone"),
    ({"trading_hours_utc": (time(9), time(9))}, "trading_hours_utc", "must differ"),
    ({"allowed_instruments": "AAPL"}, "allowed_instruments", "tuple"),
    ({"allowed_instruments": [1001], "denied_instruments": [1001]}, "allowed_instruments",
     "both allowed and denied"),
    ({"max_lverage": 2}, "max_lverage", "Extra inputs"),
])
def test_bad_limits_name_the_field_and_the_rule(given: dict[str, object], field: str,
                                                rule: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        RiskPolicy(**given)
    assert field in caught.value.field and rule in str(caught.value)


def test_instruments_and_classes_compare_in_one_case_and_round_trip_through_json() -> None:
    policy = RiskPolicy(allowed_instruments=[" aapl", 1001, "AAPL"], allowed_asset_classes=["ETF"],
                        trading_hours_utc=("22:00", "06:30"), max_gross_exposure_share=0.5,
                        expires_at=NOW, require_stop_loss=True)
    assert policy.allowed_instruments == ("AAPL", 1001)
    assert policy.allowed_asset_classes == ("etf",)
    assert RiskPolicy.from_limits(json.loads(json.dumps(policy.limits()))) == policy


def test_hours_wrap_past_midnight() -> None:
    night = RiskPolicy(trading_hours_utc=(time(22), time(6)))
    assert night.in_hours(NOW.replace(hour=23, minute=59))
    assert night.in_hours(NOW.replace(hour=5, minute=59))
    assert not night.in_hours(NOW.replace(hour=6))  # the end is not in the window
    assert not night.in_hours(NOW.replace(hour=12))


@pytest.mark.parametrize(("old", "new", "loosens"), [
    ({"max_leverage": 2}, {"max_leverage": 3}, ["max_leverage: 2 -> 3"]),
    ({"max_leverage": 2}, {}, ["max_leverage: 2 -> no limit"]),
    ({"max_daily_loss_usd": 100.0}, {"max_daily_loss_usd": 100.5},
     ["max_daily_loss_usd: 100.0 -> 100.5"]),
    ({"allowed_instruments": ["AAPL"]}, {"allowed_instruments": ["AAPL", "MSFT"]},
     ["allowed_instruments: adds ['MSFT']"]),
    ({"allowed_asset_classes": ["Stocks"]}, {}, ["allowed_asset_classes: ['stocks'] -> any"]),
    ({"denied_instruments": ["BTC", "ETH"]}, {"denied_instruments": ["ETH"]},
     ["denied_instruments: no longer denies ['BTC']"]),
    ({"expires_at": NOW}, {"expires_at": NOW + timedelta(days=1)},
     [f"expires_at: {NOW.isoformat()} -> {(NOW + timedelta(days=1)).isoformat()}"]),
    ({"trading_hours_utc": (time(9), time(17))}, {"trading_hours_utc": (time(8), time(17))},
     ["trading_hours_utc: 09:00-17:00 UTC -> 08:00-17:00 UTC"]),
    ({"require_stop_loss": True}, {}, ["require_stop_loss: no longer required"]),
])
def test_what_loosens_is_named(old: dict[str, object], new: dict[str, object],
                               loosens: list[str]) -> None:
    assert RiskPolicy(**old).loosened_by(RiskPolicy(**new)) == loosens
    assert RiskPolicy(**new).loosened_by(RiskPolicy(**old)) == []  # the way back tightens


def test_tightening_and_operational_changes_loosen_nothing() -> None:
    old = RiskPolicy(max_leverage=3, trading_hours_utc=(time(22), time(6)),
                     allowed_instruments=["AAPL", "MSFT"], reconcile_every_orders=10)
    new = RiskPolicy(max_leverage=2, trading_hours_utc=(time(23), time(5)),
                     allowed_instruments=["AAPL"], denied_instruments=["BTC"],
                     max_orders_per_day=5, reconcile_every_orders=50)
    assert old.loosened_by(new) == []
    assert old.changes(new)["max_leverage"] == [3, 2]


# -- the rules ------------------------------------------------------------------------------
def _view(**kw: object) -> BookView:
    base: dict[str, object] = dict(at=NOW, gross_exposure_usd=0.0, open_positions=0,
                                   realized_pnl_today_usd=0.0, worst_realized_pnl_today_usd=0.0,
                                   orders_today=0, orders_last_hour=0, read_at=NOW,
                                   orders_since_read=0)
    return BookView(**{**base, **kw})  # type: ignore[arg-type]


def _open(amount: float = 100.0, leverage: int = 1, instrument: Instrument = AAPL,
          stop_loss: float | None = None) -> Order:
    return Order("open", instrument, amount, leverage, stop_loss)


def _refused(violation: PolicyViolation | None, rule: str, limit: object,
             attempted: object) -> None:
    assert violation is not None, f"{rule} should refuse"
    assert (violation.rule, violation.limit, violation.attempted) == (rule, limit, attempted)
    assert rule in str(violation) and "nothing sent" in str(violation)


def test_each_limit_passes_at_the_limit_and_refuses_one_unit_over() -> None:
    p = RiskPolicy(max_order_amount_usd=500, max_leverage=2, max_open_positions=3,
                   max_gross_exposure_usd=1000, max_orders_per_day=10, max_orders_per_hour=4)
    assert rules.size(p, _open(500, 2)) is None
    _refused(rules.size(p, _open(501)), "max_order_amount_usd", 500.0, 501.0)
    _refused(rules.size(p, _open(100, 3)), "max_leverage", 2, 3)
    assert rules.book(p, _open(100), _view(open_positions=2), None) is None
    _refused(rules.book(p, _open(100), _view(open_positions=3), None), "max_open_positions", 3, 4)
    assert rules.book(p, _open(300, 2), _view(gross_exposure_usd=400.0), None) is None
    _refused(rules.book(p, _open(301, 2), _view(gross_exposure_usd=400.0), None),
             "max_gross_exposure_usd", 1000.0, 1002.0)
    assert rules.pace(p, _view(orders_today=9, orders_last_hour=3)) is None
    _refused(rules.pace(p, _view(orders_today=10)), "max_orders_per_day", 10, 11)
    _refused(rules.pace(p, _view(orders_last_hour=4)), "max_orders_per_hour", 4, 5)


def test_the_exposure_share_is_of_the_virtual_balance_and_needs_one() -> None:
    p = RiskPolicy(max_gross_exposure_share=0.25)
    assert rules.book(p, _open(2500), _view(), 10_000.0) is None
    _refused(rules.book(p, _open(2501), _view(), 10_000.0), "max_gross_exposure_share", 0.25,
             0.2501)
    assert rules.book(p, _open(1), _view(), None) is not None  # no base: cannot hold it


def test_the_daily_loss_stops_opening_when_reached() -> None:
    p = RiskPolicy(max_daily_loss_usd=100)
    assert rules.loss(p, _view(worst_realized_pnl_today_usd=-99.99)) is None
    _refused(rules.loss(p, _view(worst_realized_pnl_today_usd=-100.0)), "max_daily_loss_usd",
             100.0, 100.0)
    _refused(rules.loss(p, _view(worst_realized_pnl_today_usd=None)), "max_daily_loss_usd",
             100.0, None)


def test_instruments_match_by_id_or_symbol_and_asset_class() -> None:
    only_stocks = RiskPolicy(allowed_asset_classes=["stocks"], denied_instruments=[1001])
    _refused(rules.instruments(only_stocks, _open(instrument=AAPL)), "denied_instruments",
             [1001], "AAPL")
    _refused(rules.instruments(only_stocks, _open(instrument=BTC)), "allowed_asset_classes",
             ["stocks"], "Crypto")
    allowed = RiskPolicy(allowed_instruments=["btc"])
    assert rules.instruments(allowed, _open(instrument=BTC)) is None
    _refused(rules.instruments(allowed, _open(instrument=Instrument(None, "ETH"))),
             "allowed_instruments", ["BTC"], "ETH")


def test_hours_and_stop_loss_come_last() -> None:
    p = RiskPolicy(trading_hours_utc=(time(9), time(14, 30)), require_stop_loss=True)
    _refused(rules.timing(p, _open(stop_loss=1.0), NOW), "trading_hours_utc", "09:00-14:30 UTC",
             "14:30 UTC")
    assert rules.timing(p, _open(stop_loss=1.0), NOW - timedelta(minutes=1)) is None
    _refused(rules.timing(p, _open(), NOW - timedelta(minutes=1)), "require_stop_loss", True, None)
    expired = RiskPolicy(expires_at=NOW)
    _refused(rules.expiry(expired, NOW), "expires_at", NOW.isoformat(), NOW.isoformat())
    assert rules.expiry(expired, NOW - timedelta(microseconds=1)) is None


# -- the book -------------------------------------------------------------------------------
def _portfolio(positions: list[dict[str, object]], credit: float,
               orders: list[dict[str, object]] = ()) -> Portfolio:  # type: ignore[assignment]
    return Portfolio.model_validate({"credit": credit, "positions": positions,
                                     "orders": list(orders)})


def _position(pid: int, amount: float, units: float, leverage: int = 1) -> dict[str, object]:
    return {"positionID": pid, "instrumentID": 1001, "isBuy": True, "openRate": 200.0,
            "amount": amount, "units": units, "leverage": leverage}


def test_partial_closes_release_margin_as_the_sandbox_books_it() -> None:
    book = Book()
    book.reconcile(_portfolio([_position(7, 100.0, 3.0, 2)], credit=9900.0), NOW, 0.0)
    assert book.gross_exposure_usd == 200.0 and book.equity_at_cost == 10_000.0
    assert book.closed(7, 1.0) == 33.33  # a third of 100.00, to the cent
    held = book.position_of(7)
    assert held is not None and (held.units, held.amount_usd) == (2.0, 66.67)
    assert book.gross_exposure_usd == 133.34
    assert book.closed(7, 1.9999999) == 66.67  # leaves 0.000001 units: rounds to 0, closes whole
    assert book.open_positions == 0 and book.gross_exposure_usd == 0.0
    assert book.worst_realized_usd == -100.0  # assumes the worst until a read
    assert book.loss_uncertain() and not book.may_overstate()


def test_a_close_the_book_cannot_place_makes_it_overstate_until_a_read() -> None:
    book = Book()
    book.reconcile(_portfolio([], credit=10_000.0), NOW, 0.0)
    book.opened(41, Holding(1001, True, 250.0, 2))
    assert book.closed(99, None) == 0.0 and book.may_overstate()
    # The read: the order became position 99 and was closed, at a 12.50 loss.
    book.reconcile(_portfolio([], credit=9987.5), NOW + timedelta(minutes=1))
    assert book.open_positions == 0 and book.realized_today_usd == -12.5
    assert not book.may_overstate() and not book.loss_uncertain()


def test_a_new_day_forgets_the_realised_loss_and_counts_orders_again() -> None:
    book = Book()
    book.reconcile(_portfolio([], credit=9_000.0), NOW, -1000.0)
    book.count_orders([NOW - timedelta(hours=3), NOW - timedelta(minutes=30)])
    book.placed(NOW)
    assert (book.orders_today(NOW), book.orders_last_hour(NOW)) == (3, 2)
    midnight = NOW.replace(hour=0) + timedelta(days=1)
    book.roll(midnight + timedelta(minutes=10))
    assert book.realized_today_usd is None and book.orders_today(midnight) == 0
    assert book.order_times == []


# -- the ledger -----------------------------------------------------------------------------
def _lifecycle_rows(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT * FROM lifecycle_events ORDER BY seq").fetchall()


def test_migration_0006_keeps_every_row_hash_and_checkpoint(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path, key = tmp_path / "ledger" / "l.sqlite", tmp_path / "keys" / "k.key"
    checkpoints = tmp_path / "audit" / "cp.jsonl"
    with monkeypatch.context() as before:
        # a ledger from before it (a copy: deleting from the shared dict and putting it back
        # would move 0006 after 0007 for every later test)
        before.setattr(ledger_core, "MIGRATIONS", {k: v for k, v in schema.MIGRATIONS.items()
                                                   if k != "0006_policy_events"})
        with Ledger(path, seal_threshold=None) as old:
            for i in range(3):
                old.append_lifecycle(kind="token_minted", token_id=f"t{i}", phase="outcome")
            assert old.seal("lifecycle_events") is not None
            old.append_lifecycle(kind="token_revoked", token_id="t0", phase="outcome")
            with pytest.raises(Exception, match="CHECK"):
                old.append_lifecycle(kind="policy_set", portfolio_id="p")
            cp.write_checkpoint(old, checkpoints, key)
    kept = _lifecycle_rows(path)
    with Ledger(path, seal_threshold=None) as ledger:
        assert _lifecycle_rows(path) == kept  # same seq, values, hashes and phase
        assert ledger.verify(checkpoints, key=key).ok
        ledger.append_lifecycle(kind="policy_set", portfolio_id="p", phase="outcome")
        with pytest.raises(Exception, match="CHECK"):
            ledger.append_lifecycle(kind="not_a_kind")
        conn = ledger._conn
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE lifecycle_events SET kind = 'token_revoked' WHERE seq = 5")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM lifecycle_events WHERE seq = 4")
        assert ledger.seal("lifecycle_events") is not None  # the seal guard holds again
        assert ledger.live_count("lifecycle_events") == 0
        assert ledger.verify(checkpoints, key=key).ok
        assert [k for k in enb.frames.lifecycle(ledger)["kind"]] == ["token_minted"] * 3 + [
            "token_revoked"]


def test_delegation_loaders_ignore_risk_events(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite") as ledger:
        ledger.append_lifecycle(kind="token_minted", portfolio_id="p", token_id="t",
                                token_name="bot", scopes=["s"], phase="outcome")
        for kind in schema.AGENT_KINDS:
            ledger.append_lifecycle(kind=kind, portfolio_id="p", token_id="t", phase="outcome",
                                    detail={"reason": "x"})
        ledger.append_lifecycle(kind="policy_set", portfolio_id="p", phase="failed")
        assert enb.frames.lifecycle(ledger)["kind"].to_list() == ["token_minted"]
        assert enb.frames.tokens_from_ledger(ledger)["status"].to_list() == ["active"]
        assert enb.frames.unfinished_changes(ledger).is_empty()
        events = enb.frames.policy_events(ledger)
        assert events["kind"].to_list() == [*schema.AGENT_KINDS, "policy_set"]
        assert events.schema == POLICY_EVENTS_SCHEMA


# -- the exposure chart's shaping -----------------------------------------------------------
P = "11111111-aaaa"
T = "22222222-bbbb"


def _events() -> pl.DataFrame:
    rows: list[dict[str, object]] = [
        {"seq": 1, "minute": 0, "kind": "policy_set", "source": "owner", "policy_version": 1,
         "loosens": []},
        {"seq": 2, "minute": 1, "kind": "book_reconciled", "source": "agent",
         "gross_exposure_usd": 0.0, "exposure_limit_usd": 1000.0, "realized_pnl_today_usd": 0.0,
         "loss_limit_usd": 50.0},
        {"seq": 3, "minute": 2, "kind": "order_booked", "source": "agent",
         "gross_exposure_usd": 600.0, "exposure_limit_usd": 1000.0,
         "realized_pnl_today_usd": 5.0, "loss_limit_usd": 50.0},
        {"seq": 4, "minute": 3, "kind": "policy_refused", "source": "agent",
         "rule": "max_gross_exposure_usd", "limit": "1000.0", "attempted": "1200.0",
         "gross_exposure_usd": 600.0, "exposure_limit_usd": 1000.0,
         "realized_pnl_today_usd": -20.0, "loss_limit_usd": 50.0},
        {"seq": None, "minute": 4, "kind": "server_refused", "source": "server", "status": 400,
         "error_code": "InsufficientFunds", "operation": "createDemoOrder"},
        {"seq": 5, "minute": 5, "kind": "policy_refused", "source": "agent",
         "rule": "max_daily_loss_usd", "limit": "50.0", "attempted": "60.0",
         "attempted_value": 60.0, "gross_exposure_usd": 300.0, "realized_pnl_today_usd": -60.0},
        {"seq": 6, "minute": 6, "kind": "agent_paused", "source": "owner", "reason": "lunch"},
        {"seq": 7, "minute": 7, "kind": "policy_set", "source": "owner", "policy_version": 2,
         "loosens": ["max_leverage: 2 -> 3"], "consent": "yes"},
        {"seq": 8, "minute": 8, "kind": "policy_set", "phase": "failed", "source": "owner",
         "policy_version": 2, "loosens": ["max_leverage: 3 -> 9"]},
        {"seq": 9, "minute": 9, "kind": "session_stopped", "source": "agent",
         "reason": "revoked", "gross_exposure_usd": 300.0},
    ]
    full = [{**{c: None for c in POLICY_EVENTS_SCHEMA}, "phase": "outcome", "portfolio_id": P,
             "token_id": T, **{k: v for k, v in r.items() if k != "minute"},
             "ts": NOW + timedelta(minutes=int(r["minute"]))} for r in rows]  # type: ignore[call-overload]
    return pl.DataFrame(full, schema=POLICY_EVENTS_SCHEMA, orient="row")


def test_exposure_frame_draws_the_book_against_its_limits() -> None:
    at = [NOW + timedelta(minutes=m) for m in (1, 2, 3, 5, 9)]
    expected = pl.DataFrame([
        (at[0], 1, "gross exposure", 0.0, "book_reconciled"),
        (at[1], 1, "gross exposure", 600.0, "order_booked"),
        (at[2], 1, "gross exposure", 600.0, "policy_refused"),
        (at[3], 1, "gross exposure", 300.0, "policy_refused"),
        (at[4], 1, "gross exposure", 300.0, "session_stopped"),
        (at[0], 1, "exposure limit", 1000.0, "book_reconciled"),
        (at[1], 1, "exposure limit", 1000.0, "order_booked"),
        (at[2], 1, "exposure limit", 1000.0, "policy_refused"),
        (at[0], 2, "daily loss", 0.0, "book_reconciled"),
        (at[1], 2, "daily loss", 0.0, "order_booked"),
        (at[2], 2, "daily loss", 20.0, "policy_refused"),
        (at[3], 2, "daily loss", 60.0, "policy_refused"),
        (at[0], 2, "loss limit", 50.0, "book_reconciled"),
        (at[1], 2, "loss limit", 50.0, "order_booked"),
        (at[2], 2, "loss limit", 50.0, "policy_refused"),
    ], schema=shaping.EXPOSURE_SCHEMA, orient="row")
    assert_frame_equal(shaping.exposure_frame(_events()), expected)
    assert_frame_equal(shaping.exposure_frame(_events().reverse(), portfolio=P), expected)


def test_exposure_marks_tell_local_from_server_refusals() -> None:
    m = [NOW + timedelta(minutes=k) for k in range(10)]
    expected = pl.DataFrame([
        (m[0], 0, "policy set", None, "policy v1"),
        (m[3], 1, "refused locally", 600.0,
         "refused locally: max_gross_exposure_usd (limit 1000.0, attempted 1200.0)"),
        (m[4], 1, "refused by the server", 600.0,
         "refused by the server: 400 InsufficientFunds (createDemoOrder)"),
        (m[5], 2, "refused locally", 60.0,
         "refused locally: max_daily_loss_usd (limit 50.0, attempted 60.0)"),
        (m[6], 0, "paused", None, "lunch"),
        (m[7], 0, "policy set", None, "policy v2: loosens max_leverage: 2 -> 3 (consent: yes)"),
        (m[9], 0, "stopped", None, "revoked"),
    ], schema=shaping.EXPOSURE_MARKS_SCHEMA, orient="row")
    assert_frame_equal(shaping.exposure_marks_frame(_events()), expected)


def test_exposure_needs_one_portfolio_and_draws_nothing_without_a_book() -> None:
    two = pl.concat([_events(), _events().with_columns(portfolio_id=pl.lit("other"))])
    with pytest.raises(ValueError, match="name one with portfolio="):
        shaping.exposure_frame(two)
    assert shaping.exposure_frame(two, portfolio="other").height == 15
    empty = _events().clear()
    assert_frame_equal(shaping.exposure_frame(empty), pl.DataFrame(schema=shaping.EXPOSURE_SCHEMA))
    with pytest.raises(ValueError, match="missing column"):
        shaping.exposure_frame(_events().drop("rule"))
    figure = enb.charts.exposure(_events())
    names = {trace.name for trace in figure.data}
    assert {"gross exposure", "exposure limit", "daily loss", "loss limit", "refused locally",
            "refused by the server"} <= names
    assert "No agent session" in str(enb.charts.exposure(empty).layout.annotations[0].text)


def test_a_stopped_session_error_holds_no_attempted_value() -> None:
    from etoro_nb.errors import SessionStopped

    stopped = SessionStopped("token revoked", operation="openOrder")
    assert (stopped.rule, stopped.attempted, stopped.operation) == ("stopped", None, "openOrder")
