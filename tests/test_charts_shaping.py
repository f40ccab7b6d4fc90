"""The pure half of the charts: ``charts.shaping`` turns frames into the frame a figure
shows. Inputs and expected frames are written out by hand here, never computed by the
module under test; ``polars.testing.assert_frame_equal`` compares them, dtypes included.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from etoro_nb.charts import shaping
from etoro_nb.frames import (
    LEAST_PRIVILEGE_SCHEMA,
    PORTFOLIOS_SCHEMA,
    TOKENS_SCHEMA,
    USAGE_SCHEMA,
    VALUE_HISTORY_SCHEMA,
)
from etoro_nb.operations import catalogue, trade_operations
from etoro_nb.rebalancer import STEPS_SCHEMA, WEIGHTS_SCHEMA

P1 = "11111111-aaaa-4aaa-8aaa-000000000001"
P2 = "22222222-bbbb-4bbb-8bbb-000000000002"
P3 = "33333333-cccc-4ccc-8ccc-000000000003"
T1 = "aaaaaaaa-1111-4111-8111-000000000001"
T2 = "bbbbbbbb-2222-4222-8222-000000000002"
T3 = "cccccccc-3333-4333-8333-000000000003"
T4 = "dddddddd-4444-4444-8444-000000000004"
T5 = "eeeeeeee-5555-4555-8555-000000000005"
DEMO_READ = "etoro-public:trade.demo:read"
DEMO_WRITE = "etoro-public:trade.demo:write"
REAL_READ = "etoro-public:trade.real:read"
REAL_WRITE = "etoro-public:trade.real:write"
T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
DAY_MS = 86_400_000.0


def frame(schema: pl.Schema, rows: list[dict[str, Any]]) -> pl.DataFrame:
    """A frame of ``schema``; columns a row leaves out are null."""
    return pl.DataFrame([{name: row.get(name) for name in schema} for row in rows],
                        schema=schema, orient="row")


def columns(schema: pl.Schema, **values: list[Any]) -> pl.DataFrame:
    """A frame of ``schema`` given column by column."""
    return pl.DataFrame(values, schema=schema)


# -- activity -----------------------------------------------------------------------------
def request(minute: int, portfolio: str | None, operation: str, status: int | None,
            error: str | None = None, *, token: str | None = T1, principal: str = "agent",
            phase: str = "outcome", request_id: str | None = None) -> dict[str, Any]:
    return {"ts": T0 + timedelta(minutes=minute), "phase": phase,
            "request_id": request_id or f"r{minute}-{operation}", "attempt": 1,
            "principal": principal, "portfolio_id": portfolio, "token_id": token,
            "operation_id": operation, "status": status, "error_code": error}


def usage() -> pl.DataFrame:
    return frame(USAGE_SCHEMA, [
        request(5, P1, "getPortfolio", 200),
        request(10, P1, "getPortfolio", 403, "InsufficientScope", token="bot"),
        request(20, P1, "createDemoOrder", 201),
        request(22, P1, "createDemoOrder", 403, "InsufficientScope", token="bot"),  # no trade
        request(25, P1, "createDemoOrder", 201),
        request(70, P1, "cancelDemoOrder", 200),            # a DELETE: not a trade
        request(75, P1, "closePositionByMarketRateDemo", 500, "ServerError"),  # failed: no trade
        request(80, P1, "getPortfolio", None, phase="intent"),                 # never answered
        request(29, P2, "getPortfolio", None, token=None, phase="intent", request_id="seen"),
        request(30, P2, "getPortfolio", 200, token=None, request_id="seen"),   # counted once
        request(0, None, "getAgentPortfolios", 200, token=None, principal="owner"),
    ])


def test_activity_frame_counts_requests_refusals_and_trades_per_panel_and_bucket() -> None:
    early, late = T0 + timedelta(minutes=30), T0 + timedelta(minutes=90)
    span_early, span_late = "2026-03-02 14:00 to 15:00 UTC", "2026-03-02 15:00 to 16:00 UTC"
    alpha, beta, owner = "alpha01 (11111111…)", "22222222…", "no portfolio (owner calls)"
    rows = [  # panel, title, portfolio, mark, series, middle, span, count, failed, ops, detail
        (1, alpha, "alpha01", "requests", "alpha01", early, span_early, 5, 2,
         "createDemoOrder x3, getPortfolio x2", "aaaaaaaa…, bot"),
        (1, alpha, "alpha01", "requests", "alpha01", late, span_late, 3, 2,
         "cancelDemoOrder, closePositionByMarketRateDemo, getPortfolio", "aaaaaaaa…"),
        (1, alpha, "alpha01", "refused / errors", "refused / errors", early, span_early, 2, None,
         None, "403 InsufficientScope x2"),
        (1, alpha, "alpha01", "refused / errors", "refused / errors", late, span_late, 2, None,
         None, "500 ServerError, no answer"),
        (1, alpha, "alpha01", "trades", "trades", early, span_early, 2, None, None,
         "createDemoOrder x2"),
        (2, beta, "22222222…", "requests", "22222222…", early, span_early, 1, 0, "getPortfolio",
         "agent"),
        (3, owner, owner, "requests", owner, early, span_early, 1, 0, "getAgentPortfolios",
         "owner"),
    ]
    expected = pl.DataFrame(
        [(p, t, k, m, s, x, 3_240_000.0, span, n, f, o, d)
         for p, t, k, m, s, x, span, n, f, o, d in rows],
        schema=shaping.ACTIVITY_SCHEMA, orient="row")
    got = shaping.activity_frame(usage(), freq="1h", portfolio_names={P1: "alpha01"})
    assert_frame_equal(got, expected)
    assert_frame_equal(shaping.activity_frame(usage().reverse(), freq="1h",
                                              portfolio_names={P1: "alpha01"}), expected)


def test_activity_frame_buckets_by_freq_and_takes_naive_times_as_utc() -> None:
    reads = frame(USAGE_SCHEMA, [request(5, P1, "getPortfolio", 200),
                                 request(20, P1, "getPortfolio", 200, token="bot")])
    naive = reads.with_columns(pl.col("ts").dt.replace_time_zone(None))
    expected = pl.DataFrame([
        (1, "11111111…", "11111111…", "requests", "11111111…",
         T0 + timedelta(minutes=7, seconds=30), 900_000.0 * 0.9,
         "2026-03-02 14:00 to 14:15 UTC", 1, 0, "getPortfolio", "aaaaaaaa…"),
        (1, "11111111…", "11111111…", "requests", "11111111…",
         T0 + timedelta(minutes=22, seconds=30), 900_000.0 * 0.9,
         "2026-03-02 14:15 to 14:30 UTC", 1, 0, "getPortfolio", "bot"),
    ], schema=shaping.ACTIVITY_SCHEMA, orient="row")
    assert_frame_equal(shaping.activity_frame(naive, freq="15m"), expected)


@pytest.mark.parametrize(("span", "freq", "chosen"), [
    (timedelta(days=3), "1h", "2h"),        # 72 one-hour buckets are too many
    (timedelta(days=3), None, "2h"),
    (timedelta(days=3), "6h", "6h"),        # a wider one asked for is kept
    (timedelta(hours=2), None, "2m"),
    (timedelta(hours=2), "1d", "1d"),
    (timedelta(days=14), "15m", "6h"),
    (timedelta(days=30), None, "12h"),
    (timedelta(days=365), None, "1w"),
    (timedelta(days=3650), None, "3mo"),
    (timedelta(days=365 * 200), None, "1y"),  # nothing fits: the widest
])
def test_bucket_freq_keeps_to_about_sixty_buckets(span: timedelta, freq: str | None,
                                                  chosen: str) -> None:
    assert shaping.bucket_freq(T0, T0 + span, freq) == chosen


@pytest.mark.parametrize("span", [timedelta(minutes=1), timedelta(minutes=50), timedelta(hours=5),
                                  timedelta(days=1), timedelta(days=3), timedelta(days=8),
                                  timedelta(days=40), timedelta(days=400),
                                  timedelta(days=3000)])
def test_activity_buckets_and_ticks_are_readable_over_any_window(span: timedelta) -> None:
    """At most about 60 buckets and 8 ticks, each tick inside the window, no label twice."""
    start = T0 + timedelta(minutes=7)
    freq = shaping.bucket_freq(start, start + span)
    reads = frame(USAGE_SCHEMA, [request(0, P1, "getPortfolio", 200)])
    reads = pl.concat([reads, reads.with_columns(pl.col("ts") + span - timedelta(seconds=1),
                                                 request_id=pl.lit("last"))])
    got = shaping.activity_frame(reads, freq=freq, window=(start - timedelta(minutes=7),
                                                           start + span))
    assert 1 <= got.filter(pl.col("mark") == "requests").height <= 2
    assert (span - timedelta(seconds=1)) / timedelta(milliseconds=got["width_ms"][0] / 0.9) \
        <= shaping.MAX_BUCKETS
    ticks = shaping.activity_ticks(start, start + span)
    labels = ticks["label"].to_list()
    assert 2 <= len(labels) <= shaping.MAX_TICKS and len(set(labels)) == len(labels)
    assert ticks["at"].min() >= start and ticks["at"].max() <= start + span  # type: ignore[operator]
    assert ticks.schema == shaping.ACTIVITY_TICKS_SCHEMA


def test_three_days_of_hours_get_dated_ticks_not_repeated_times() -> None:
    ticks = shaping.activity_ticks(T0, T0 + timedelta(days=3))
    assert ticks["label"].to_list() == ["Mar 03 00:00", "Mar 03 12:00", "Mar 04 00:00",
                                        "Mar 04 12:00", "Mar 05 00:00", "Mar 05 12:00"]


def test_activity_window_and_bad_windows() -> None:
    reads = frame(USAGE_SCHEMA, [request(5, P1, "getPortfolio", 200),
                                 request(65, P1, "getPortfolio", 200)])
    assert shaping.activity_window(reads) == (T0 + timedelta(minutes=5),
                                              T0 + timedelta(minutes=65, seconds=1))
    naive = (datetime(2026, 3, 1), datetime(2026, 3, 4))
    assert shaping.activity_window(reads, naive) == (naive[0].replace(tzinfo=UTC),
                                                     naive[1].replace(tzinfo=UTC))
    with pytest.raises(ValueError, match="window"):
        shaping.activity_window(reads, (T0, T0))
    with pytest.raises(ValueError, match="freq"):
        shaping.bucket_freq(T0, T0 + DAY, "often")


def test_activity_frame_counts_trades_of_the_catalogue_only() -> None:
    made_up = frame(USAGE_SCHEMA, [request(5, P1, "openMarketPositionSomehow", 200),
                                   request(6, P1, "openMarketPositionByUnits", 200)])
    trades = shaping.activity_frame(made_up).filter(pl.col("mark") == "trades")
    assert trades["detail"].to_list() == ["openMarketPositionByUnits"]


def test_activity_frame_of_no_usage_is_empty_with_the_schema() -> None:
    got = shaping.activity_frame(usage().clear(), freq="1d")
    assert_frame_equal(got, pl.DataFrame(schema=shaping.ACTIVITY_SCHEMA))


def test_trade_operations_come_from_the_contract() -> None:
    assert trade_operations() == {
        "createRealOrder", "createDemoOrder", "openMarketPositionByAmount",
        "openMarketPositionByAmountDemo", "openMarketPositionByUnits",
        "openMarketPositionByUnitsDemo", "closePositionByMarketRate",
        "closePositionByMarketRateDemo"}
    assert not catalogue()["cancelDemoOrder"].places_trade
    assert not catalogue()["getPortfolio"].places_trade


# -- scope usage --------------------------------------------------------------------------
def test_scope_usage_frame_fills_the_grid_and_classifies_each_cell() -> None:
    def cell(token: str, name: str | None, scope: str, granted: bool | None, used: int | None,
             refused: int | None, verdict: str | None) -> dict[str, Any]:
        return {"portfolio_id": P1, "token_id": token, "token_name": name, "scope": scope,
                "granted": granted, "used": used, "refused": refused, "verdict": verdict}
    lp = frame(LEAST_PRIVILEGE_SCHEMA, [
        cell(T2, "b1", DEMO_WRITE, True, 1, 0, "needed"),
        cell(T2, "b1", REAL_READ, False, 0, 2, "missing"),
        cell(T1, "a1", DEMO_READ, True, 0, 0, "unused"),
        cell(T1, "a1", REAL_READ, False, 3, 1, "needed"),      # used wins over refused
        cell("tok-short", None, REAL_READ, None, None, None, None),
        cell(T3, "ignored", None, True, 1, 0, "needed"),       # no scope: not a cell
    ])
    no, unused, used, refused = "not granted", "granted, unused", "used", "refused"
    a1, b1 = "a1 (aaaaaaaa…)", "b1 (bbbbbbbb…)"
    rows = [  # token id, label, scope, state, granted, used, refused, verdict, text
        ("tok-short", "tok-short", DEMO_READ, no, False, 0, 0, "not granted", ""),
        ("tok-short", "tok-short", DEMO_WRITE, no, False, 0, 0, "not granted", ""),
        ("tok-short", "tok-short", REAL_READ, no, False, 0, 0, "", ""),
        (T1, a1, DEMO_READ, unused, True, 0, 0, "unused", ""),
        (T1, a1, DEMO_WRITE, no, False, 0, 0, "not granted", ""),
        (T1, a1, REAL_READ, used, False, 3, 1, "needed", "3"),
        (T2, b1, DEMO_READ, no, False, 0, 0, "not granted", ""),
        (T2, b1, DEMO_WRITE, used, True, 1, 0, "needed", "1"),
        (T2, b1, REAL_READ, refused, False, 0, 2, "missing", "✕2"),
    ]
    expected = pl.DataFrame(
        [(t, label, s, s.removeprefix("etoro-public:"), *rest) for t, label, s, *rest in rows],
        schema=shaping.SCOPE_USAGE_SCHEMA, orient="row")
    assert_frame_equal(shaping.scope_usage_frame(lp), expected)
    assert_frame_equal(shaping.scope_usage_frame(lp.reverse()), expected)


def test_scope_usage_frame_takes_a_pair_given_twice_from_its_last_row() -> None:
    def cell(granted: bool, used: int, verdict: str) -> dict[str, Any]:
        return {"token_id": T1, "token_name": "a1", "scope": DEMO_READ, "granted": granted,
                "used": used, "refused": 0, "verdict": verdict}
    lp = frame(LEAST_PRIVILEGE_SCHEMA, [cell(False, 0, "earlier"), cell(True, 4, "needed")])
    expected = pl.DataFrame([(T1, "a1 (aaaaaaaa…)", DEMO_READ, "trade.demo:read", "used", True, 4, 0,
                              "needed", "4")], schema=shaping.SCOPE_USAGE_SCHEMA, orient="row")
    assert_frame_equal(shaping.scope_usage_frame(lp), expected)


# -- token lifetimes ----------------------------------------------------------------------
def tokens() -> pl.DataFrame:
    def tok(token: str, name: str | None, portfolio: str | None, created: timedelta | None,
            expires: timedelta | None, revoked: timedelta | None = None, status: str = "active",
            application: str | None = "bot-app", scopes: list[str] | None = None
            ) -> dict[str, Any]:
        return {"portfolio_id": P1, "portfolio_name": portfolio, "token_id": token,
                "token_name": name, "application": application,
                "scopes": [DEMO_READ, REAL_WRITE] if scopes is None else scopes,
                "created_at": None if created is None else NOW + created,
                "expires_at": None if expires is None else NOW + expires,
                "revoked_at": None if revoked is None else NOW + revoked, "status": status}
    return frame(TOKENS_SCHEMA, [
        tok(T1, "act", "alpha01", -10 * DAY, 30 * DAY),
        tok(T2, "soon", "alpha01", -5 * DAY, 2 * DAY),                 # stale "active"
        tok(T3, "old", "alpha01", -20 * DAY, -DAY, status="expired"),
        tok(T4, "", "beta0001", -3 * DAY, 10 * DAY, -DAY, application=None, scopes=[]),
        tok("t-r", "gone", "beta0001", -2 * DAY, None, status="revoked"),
        tok(T5, "forever", None, -4 * DAY, None, application=""),
        tok("t-u", "undated", "alpha01", None, DAY),
    ])


def test_token_lifetimes_frame_ends_and_statuses_at_now() -> None:
    both = "etoro-public:trade.demo:read, etoro-public:trade.real:write"
    rows = [  # id, label, portfolio, application, scopes, status, start, end, ends, ms
        (T3, "old (cccccccc…)", "alpha01", "bot-app", both, "expired", NOW - 20 * DAY,
         NOW - DAY, "expired", 19 * DAY_MS),
        (T1, "act (aaaaaaaa…)", "alpha01", "bot-app", both, "active", NOW - 10 * DAY,
         NOW + 30 * DAY, "expires", 40 * DAY_MS),
        (T2, "soon (bbbbbbbb…)", "alpha01", "bot-app", both, "expiring", NOW - 5 * DAY,
         NOW + 2 * DAY, "expires", 7 * DAY_MS),
        (T4, "dddddddd…", "beta0001", "unknown", "—", "revoked", NOW - 3 * DAY,
         NOW - DAY, "revoked", 2 * DAY_MS),                           # the earlier end
        ("t-r", "gone (t-r)", "beta0001", "bot-app", both, "revoked", NOW - 2 * DAY,
         NOW, "revoked (time unknown)", 2 * DAY_MS),
        (T5, "forever (eeeeeeee…)", "—", "unknown", both, "active", NOW - 4 * DAY,
         NOW, "never expires", 4 * DAY_MS),
        ("t-u", "undated (t-u)", "alpha01", "bot-app", both, "expiring", None,
         NOW + DAY, "expires", None),
    ]
    expected = pl.DataFrame(rows, schema=shaping.TOKEN_LIFETIMES_SCHEMA, orient="row")
    assert_frame_equal(shaping.token_lifetimes_frame(tokens(), now=NOW), expected)
    assert_frame_equal(shaping.token_lifetimes_frame(tokens().reverse(),
                                                     now=NOW.replace(tzinfo=None)), expected)


def test_token_lifetimes_frame_durations_are_those_of_python_timedeltas() -> None:
    # the figures were built from timedelta.total_seconds() * 1000: keep them bit for bit
    created, expires = NOW - timedelta(microseconds=333_333), NOW + timedelta(days=1, microseconds=1)
    odd = frame(TOKENS_SCHEMA, [{"token_id": T1, "token_name": "a", "created_at": created,
                                 "expires_at": expires, "scopes": [], "status": "active"}])
    got = shaping.token_lifetimes_frame(odd, now=NOW)["duration_ms"].to_list()
    assert got == [86_400_333.33399999]  # not 86_400_333.334
    assert got == [(expires - created).total_seconds() * 1000]


def test_token_lifetimes_frame_takes_the_expiring_window_given() -> None:
    got = shaping.token_lifetimes_frame(tokens(), now=NOW, expiring_within=DAY)
    assert got.filter(pl.col("token_id") == T2)["status"].to_list() == ["active"]
    assert got.filter(pl.col("token_id") == "t-u")["status"].to_list() == ["expiring"]


# -- portfolio value ----------------------------------------------------------------------
def test_portfolio_value_frame_sorts_names_and_times_and_drops_rows_without_time() -> None:
    later = T0 + timedelta(hours=1)
    history = frame(VALUE_HISTORY_SCHEMA, [
        {"ts": later, "name": "beta0001", "agent_value_usd": 9_900.0, "mirror_value_usd": 990.0,
         "pnl_usd": -100.0},
        {"ts": later, "name": "alpha01", "agent_value_usd": 10_250.0, "pnl_usd": 250.0},
        {"ts": None, "name": "alpha01", "agent_value_usd": 1.0},
        {"ts": T0, "name": "alpha01", "agent_value_usd": 10_000.0, "pnl_usd": 0.0},
        {"ts": T0, "name": None, "agent_value_usd": 5.0, "pnl_usd": 0.0},
    ]).with_columns(pl.col("ts").dt.replace_time_zone(None))
    expected = columns(
        shaping.PORTFOLIO_VALUE_SCHEMA,
        ts=[T0, T0, later, later], name=["(unnamed)", "alpha01", "alpha01", "beta0001"],
        agent_value_usd=[5.0, 10_000.0, 10_250.0, 9_900.0],
        mirror_value_usd=[None, None, None, 990.0], pnl_usd=[0.0, 0.0, 250.0, -100.0])
    assert_frame_equal(shaping.portfolio_value_frame(history), expected)


# -- delegation map -----------------------------------------------------------------------
def delegation_inputs() -> tuple[pl.DataFrame, pl.DataFrame]:
    portfolios = frame(PORTFOLIOS_SCHEMA, [{"portfolio_id": P3, "name": "gamma001"},
                                           {"portfolio_id": P2, "name": "beta0001"},
                                           {"portfolio_id": P1, "name": "alpha01"}])

    def tok(pid: str, pname: str | None, tid: str, name: str | None, status: str,
            app: str | None, scopes: list[str] | None) -> dict[str, Any]:
        return {"portfolio_id": pid, "portfolio_name": pname, "token_id": tid, "token_name": name,
                "application": app, "scopes": scopes, "status": status}
    tokens = frame(TOKENS_SCHEMA, [
        tok(P2, "beta0001", T3, "b1", "revoked", None, [DEMO_READ, DEMO_WRITE]),
        tok(P1, "alpha01", T2, "short", "expired", "bot-app", [DEMO_READ]),
        tok(P1, "alpha01", T1, "a1", "active", "bot-app", [REAL_READ, REAL_WRITE]),
        tok("p-gone", None, "t-9", None, "active", "zz", None),  # its portfolio was deleted
    ])
    return portfolios, tokens


def test_delegation_nodes_in_order_with_labels_and_details() -> None:
    expected = pl.DataFrame([
        (0, "owner", "me", "me", None, "4 agent portfolio(s), 4 token(s)"),
        (1, "portfolio", P1, "alpha01", None, "portfolio 11111111…<br>tokens: 2"),
        (2, "portfolio", P2, "beta0001", None, "portfolio 22222222…<br>tokens: 1"),
        (3, "portfolio", P3, "gamma001", None, "portfolio 33333333…<br>tokens: 0"),
        (4, "portfolio", "p-gone", "p-gone", None, "portfolio p-gone<br>tokens: 1"),
        (5, "token", T1, "a1 (active)", "active",
         "token aaaaaaaa…<br>scopes: trade.real:read, trade.real:write"),
        (6, "token", T2, "short (expired)", "expired", "token bbbbbbbb…<br>scopes: trade.demo:read"),
        (7, "token", T3, "b1 (revoked)", "revoked",
         "token cccccccc…<br>scopes: trade.demo:read, trade.demo:write"),
        (8, "token", "t-9", "t-9 (active)", "active", "token t-9<br>scopes: none"),
        (9, "application", "bot-app", "bot-app", None, "application<br>tokens: 2"),
        (10, "application", "unknown", "unknown", None, "application<br>tokens: 1"),
        (11, "application", "zz", "zz", None, "application<br>tokens: 1"),
    ], schema=shaping.DELEGATION_NODES_SCHEMA, orient="row")
    portfolios, tokens = delegation_inputs()
    assert_frame_equal(shaping.delegation_nodes(portfolios, tokens, owner="me"), expected)
    assert_frame_equal(shaping.delegation_nodes(portfolios.reverse(), tokens.reverse(),
                                                owner="me"), expected)


def test_delegation_links_between_the_nodes() -> None:
    real, demo = "scopes: trade.real:read, trade.real:write", "scopes: trade.demo:read"
    both = "scopes: trade.demo:read, trade.demo:write"
    expected = pl.DataFrame([
        (0, 1, 2.0, P1, None, "tokens: 2"),
        (0, 2, 1.0, P2, None, "tokens: 1"),
        (0, 3, 0.1, P3, None, "no tokens"),
        (0, 4, 1.0, "p-gone", None, "tokens: 1"),
        (1, 5, 1.0, None, "active", real),
        (1, 6, 1.0, None, "expired", demo),
        (2, 7, 1.0, None, "revoked", both),
        (4, 8, 1.0, None, "active", "scopes: none"),
        (5, 9, 1.0, None, "active", f"{real}<br>status: active"),
        (6, 9, 1.0, None, "expired", f"{demo}<br>status: expired"),
        (7, 10, 1.0, None, "revoked", f"{both}<br>status: revoked"),
        (8, 11, 1.0, None, "active", "scopes: none<br>status: active"),
    ], schema=shaping.DELEGATION_LINKS_SCHEMA, orient="row")
    assert_frame_equal(shaping.delegation_links(*delegation_inputs()), expected)


def test_delegation_frames_of_nothing_are_empty() -> None:
    portfolios, tokens = delegation_inputs()
    assert_frame_equal(shaping.delegation_nodes(portfolios.clear(), tokens.clear()),
                       pl.DataFrame(schema=shaping.DELEGATION_NODES_SCHEMA))
    assert_frame_equal(shaping.delegation_links(portfolios.clear(), tokens.clear()),
                       pl.DataFrame(schema=shaping.DELEGATION_LINKS_SCHEMA))


# -- the rebalancer's run -----------------------------------------------------------------
S1, S2 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC), datetime(2026, 3, 3, 14, 30, tzinfo=UTC)


def weights() -> pl.DataFrame:
    def row(step: int, phase: str, instrument: str, iid: int | None, target: float | None,
            weight: float) -> dict[str, Any]:
        return {"step": step, "at": S1 if step == 1 else S2, "phase": phase,
                "instrument": instrument, "instrument_id": iid, "target": target,
                "weight": weight, "value_usd": weight * 1000}
    return frame(WEIGHTS_SCHEMA, [
        row(2, "before", "cash", None, None, 0.1875),
        row(2, "before", "#77", 77, 0.0, 0.0625),
        row(2, "before", "GLD", 3025, 0.25, 0.1875),
        row(2, "before", "AAPL", 1001, 0.5, 0.5625),
        row(1, "after", "GLD", 3025, 0.25, 0.25),
        row(1, "after", "AAPL", 1001, 0.5, 0.5),
        row(1, "after", "cash", None, None, 0.25),
        row(1, "before", "cash", None, None, 0.125),
        row(1, "before", "AAPL", 1001, 0.5, 0.75),
        row(1, "before", "GLD", 3025, 0.25, 0.125),
    ])


def test_rebalance_weights_frame_orders_instruments_then_steps() -> None:
    rows = [  # step, at, phase, instrument, id, slot, target, weight
        (2, S2, "before", "#77", 77, 0, 0.0, 0.0625),
        (1, S1, "before", "AAPL", 1001, 1, 0.5, 0.75),
        (1, S1, "after", "AAPL", 1001, 1, 0.5, 0.5),
        (2, S2, "before", "AAPL", 1001, 1, 0.5, 0.5625),
        (1, S1, "before", "GLD", 3025, 2, 0.25, 0.125),
        (1, S1, "after", "GLD", 3025, 2, 0.25, 0.25),
        (2, S2, "before", "GLD", 3025, 2, 0.25, 0.1875),
        (1, S1, "before", "cash", None, None, None, 0.125),
        (1, S1, "after", "cash", None, None, None, 0.25),
        (2, S2, "before", "cash", None, None, None, 0.1875),
    ]
    expected = pl.DataFrame([(*r, r[-1] * 1000) for r in rows],
                            schema=shaping.REBALANCE_WEIGHTS_SCHEMA, orient="row")
    assert_frame_equal(shaping.rebalance_weights_frame(weights()), expected)


def test_rebalance_gaps_frame_takes_the_largest_gap_of_each_step_and_phase() -> None:
    expected = columns(shaping.REBALANCE_GAPS_SCHEMA, step=[1, 1, 2], at=[S1, S1, S2],
                       phase=["before", "after", "before"], gap=[0.25, 0.0, 0.0625])
    assert_frame_equal(shaping.rebalance_gaps_frame(weights()), expected)


def test_rebalance_events_frame_keeps_refused_and_stopped_steps() -> None:
    steps = frame(STEPS_SCHEMA, [
        {"step": 4, "at": S2 + 2 * DAY, "outcome": "failed: ServerError"},
        {"step": 3, "at": S2 + DAY, "outcome": "stopped: Unauthorized"},
        {"step": 2, "at": S2, "outcome": "refused: InsufficientScope"},
        {"step": 1, "at": S1, "outcome": "rebalanced"},
    ])
    expected = columns(shaping.REBALANCE_EVENTS_SCHEMA, step=[2, 3], at=[S2, S2 + DAY],
                       outcome=["refused: InsufficientScope", "stopped: Unauthorized"],
                       event=["refused", "stopped"])
    assert_frame_equal(shaping.rebalance_events_frame(steps), expected)


# -- checks -------------------------------------------------------------------------------
@pytest.mark.parametrize(("shape", "inputs", "column"), [
    (shaping.scope_usage_frame, lambda: (frame(LEAST_PRIVILEGE_SCHEMA, []).drop("used"),), "used"),
    (shaping.rebalance_weights_frame, lambda: (weights().drop("phase"),), "phase"),
    (shaping.rebalance_events_frame, lambda: (frame(STEPS_SCHEMA, []).drop("outcome"),), "outcome"),
    (shaping.delegation_links, lambda: (delegation_inputs()[0].drop("name"),
                                        delegation_inputs()[1]), "name"),
])
def test_a_missing_column_is_named(shape: Any, inputs: Any, column: str) -> None:
    with pytest.raises(ValueError, match=f"missing column\\(s\\) {column}"):
        shape(*inputs())


def test_a_time_column_that_is_not_a_datetime_is_refused() -> None:
    history = frame(VALUE_HISTORY_SCHEMA, []).with_columns(pl.col("ts").cast(pl.String))
    with pytest.raises(ValueError, match="history: column ts must be a Datetime"):
        shaping.portfolio_value_frame(history)


# -- plotly loads only when a chart is drawn ----------------------------------------------
def test_shaping_needs_no_plotly_and_drawing_loads_it() -> None:
    probe = (
        "import sys\n"
        "import polars as pl\n"
        "import etoro_nb.charts as charts\n"
        "from etoro_nb.frames import VALUE_HISTORY_SCHEMA\n"
        "empty = pl.DataFrame(schema=VALUE_HISTORY_SCHEMA)\n"
        "charts.shaping.portfolio_value_frame(empty)\n"
        "print('plotly' in sys.modules)\n"
        "charts.portfolio_value(empty)\n"
        "print('plotly' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                         text=True).stdout.split()
    assert out == ["False", "True"]
