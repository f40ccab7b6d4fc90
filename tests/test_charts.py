"""plotly charts: figures built from hand-made frames with the loaders' exact schemas.

Expected values are worked out here from the rows written in each test, not by calling
the chart module's helpers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import plotly.graph_objects as go
import polars as pl
import pytest

from etoro_nb import charts
from etoro_nb.charts import style
from etoro_nb.frames import (
    LEAST_PRIVILEGE_SCHEMA,
    PORTFOLIOS_SCHEMA,
    TOKENS_SCHEMA,
    USAGE_SCHEMA,
)

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
HOUR_MS = 3_600_000.0
DAY_MS = 86_400_000.0


def frame(schema: pl.Schema, rows: list[dict[str, Any]]) -> pl.DataFrame:
    """A frame of ``schema``; columns a row leaves out are null."""
    full = [{name: row.get(name) for name in schema} for row in rows]
    return pl.DataFrame(full, schema=schema, orient="row")


def reversed_rows(df: pl.DataFrame) -> pl.DataFrame:
    return df.reverse()


def annotation_texts(fig: go.Figure) -> list[str]:
    return [a.text for a in fig.layout.annotations]


# -- activity -----------------------------------------------------------------------------
_seq = iter(range(1, 10_000))


def outcome(minute: int, portfolio: str | None, operation: str, status: int | None,
            error: str | None = None, token: str | None = T1, phase: str = "outcome",
            request: str | None = None) -> dict[str, Any]:
    seq = next(_seq)
    return {"seq": seq, "ts": T0 + timedelta(minutes=minute), "phase": phase,
            "request_id": request or f"req-{seq}", "attempt": 1,
            "principal": "agent" if token else "owner", "portfolio_id": portfolio,
            "token_id": token, "environment": "sandbox", "method": "GET", "route": "/x",
            "operation_id": operation, "status": status, "error_code": error,
            "latency_ms": 5.0}


def usage_frame() -> pl.DataFrame:
    rows = [
        # alpha01: reads, a refused read, and two trades in two hours
        outcome(5, P1, "getPortfolio", 200),
        outcome(10, P1, "getPortfolio", 200, token=T2),
        outcome(20, P1, "createRealOrder", 200),
        outcome(70, P1, "getPortfolio", 403, "InsufficientScope"),
        outcome(75, P1, "openMarketPositionByAmount", 201),
        # beta0001: a refused order (not a trade) and a request never answered
        outcome(30, P2, "createDemoOrder", 403, "InsufficientScope", token=T3),
        outcome(31, P2, "getPortfolio", None, token=T3, phase="intent", request="lost"),
        # the owner, no portfolio
        outcome(0, None, "getAgentPortfolios", 200, token=None),
    ]
    # an answered request's intent row is not counted twice
    answered = outcome(40, P2, "getPortfolio", None, token=T3, phase="intent",
                       request="answered")
    rows += [answered, {**outcome(41, P2, "getPortfolio", 200, token=T3, request="answered"),
                        "ts": answered["ts"] + timedelta(seconds=1)}]
    return frame(USAGE_SCHEMA, rows)


def traces(fig: go.Figure) -> list[tuple[str, str, str]]:
    return [(t.type, t.name, t.yaxis) for t in fig.data]


def test_activity_rows_traces_and_counts() -> None:
    names = {P1: "alpha01", P2: "beta0001"}
    fig = charts.activity(usage_frame(), freq="1h", portfolio_names=names)
    assert traces(fig) == [
        ("bar", "alpha01", "y"), ("scatter", "refused / errors", "y"), ("scatter", "trades", "y"),
        ("bar", "beta0001", "y2"), ("scatter", "refused / errors", "y2"),
        ("bar", "no portfolio (owner calls)", "y3"),
    ]
    first, second = T0 + timedelta(minutes=30), T0 + timedelta(minutes=90)  # bucket middles
    got = {(t.name, t.yaxis): (list(t.x), list(t.y)) for t in fig.data}
    assert got[("alpha01", "y")] == ([first, second], [3, 2])
    assert got[("refused / errors", "y")] == ([second], [1])
    assert got[("trades", "y")] == ([first, second], [1, 1])
    assert got[("beta0001", "y2")] == ([first], [3])  # one answered twice, one never answered
    assert got[("refused / errors", "y2")] == ([first], [2])
    assert got[("no portfolio (owner calls)", "y3")] == ([first], [1])
    assert all(w == 0.9 * HOUR_MS for t in fig.data if t.type == "bar" for w in t.width)
    assert fig.layout.barmode == "stack"


def test_activity_titles_legend_and_hover() -> None:
    fig = charts.activity(usage_frame(), portfolio_names={P1: "alpha01", P2: "beta0001"})
    assert "2m" in fig.layout.title.text  # 1h41m of requests: 2-minute buckets, 51 of them
    assert annotation_texts(fig) == ["alpha01 (11111111…)", "beta0001 (22222222…)",
                                     "no portfolio (owner calls)"]
    assert fig.layout.xaxis3.title.text == "time (UTC)"
    assert [fig.layout[f"yaxis{i}"].title.text for i in ("", "2", "3")] == ["requests"] * 3
    # each portfolio and marker is in the legend once
    legend = [t.name for t in fig.data if t.showlegend is not False]
    assert sorted(legend) == sorted(set(legend))
    assert "alpha01" in legend and "refused / errors" in legend
    errors = [t for t in fig.data if t.name == "refused / errors"]
    assert errors[0].customdata[0][1] == "403 InsufficientScope"
    assert errors[1].customdata[0][1] == "403 InsufficientScope, no answer"
    assert errors[0].marker.color == errors[1].marker.color
    assert "%{y}" in errors[0].hovertemplate and "alpha01" in errors[0].hovertemplate
    style.portfolio_colours.clear()  # distinct while the session's palette lasts
    hourly = charts.activity(usage_frame(), freq="1h",
                             portfolio_names={P1: "alpha01", P2: "beta0001"})
    alpha = next(t for t in hourly.data if t.name == "alpha01")
    # bucket span, errors in it, who called (ids shortened), and which operations
    assert alpha.customdata[0] == ["2026-03-02 14:00 to 15:00 UTC", 0, "aaaaaaaa…, bbbbbbbb…",
                                   "createRealOrder, getPortfolio x2"]
    assert alpha.customdata[1] == ["2026-03-02 15:00 to 16:00 UTC", 1, "aaaaaaaa…",
                                   "getPortfolio, openMarketPositionByAmount"]
    assert "requests: %{y}" in alpha.hovertemplate and "%{customdata[3]}" in alpha.hovertemplate
    trades = next(t for t in hourly.data if t.name == "trades")
    assert [c[1] for c in trades.customdata] == ["createRealOrder", "openMarketPositionByAmount"]
    colours = {t.name: t.marker.color for t in hourly.data if t.type == "bar"}
    assert len(set(colours.values())) == len(colours) == 3


def test_activity_without_names_uses_short_ids_and_other_buckets() -> None:
    fig = charts.activity(usage_frame(), freq="30m")
    assert annotation_texts(fig)[:2] == ["11111111…", "22222222…"]
    read = next(t for t in fig.data if t.name == "11111111…")
    # 14:05, 14:10, 14:20 -> 14:00-14:30; 15:10, 15:15 -> 15:00-15:30
    assert list(read.x) == [T0 + timedelta(minutes=15), T0 + timedelta(minutes=75)]
    assert list(read.y) == [3, 2]
    assert list(read.width) == [0.9 * HOUR_MS / 2] * 2


def test_activity_over_three_days_is_readable() -> None:
    """The issue's case: asked for 1-hour buckets over a 3-day window, the chart uses 2-hour
    ones (36, not 72), labels its ticks with dates and no label twice, covers the window,
    and puts the legend under the plot rather than beside it."""
    window = (T0 - timedelta(days=2), T0 + timedelta(days=1))
    fig = charts.activity(usage_frame(), freq="1h", window=window,
                          portfolio_names={P1: "alpha01", P2: "beta0001"})
    assert fig.layout.title.text == "Requests per portfolio (2h buckets)"
    assert all(w == 0.9 * 2 * HOUR_MS for t in fig.data if t.type == "bar" for w in t.width)
    axis = fig.layout.xaxis
    assert [datetime.fromisoformat(str(x)) for x in axis.range] == list(window)
    labels = list(axis.ticktext)
    assert 2 <= len(labels) <= 8 and len(set(labels)) == len(labels)
    assert all(" " in label for label in labels)  # "Mar 01 12:00": the day is named
    legend = fig.layout.legend
    assert legend.orientation == "h" and legend.y < 0 and legend.yanchor == "top"


@pytest.mark.parametrize("freq", ["abc", "-1h", "0h", ""])
def test_activity_rejects_a_bad_freq(freq: str) -> None:
    with pytest.raises(ValueError, match="freq"):
        charts.activity(usage_frame(), freq=freq)


def test_activity_counts_an_answered_request_once() -> None:
    answered = usage_frame().filter(pl.col("request_id") == "answered")
    assert answered["phase"].to_list() == ["intent", "outcome"]
    fig = charts.activity(answered)
    assert [(t.name, list(t.y)) for t in fig.data] == [("22222222…", [1])]


# -- scope usage --------------------------------------------------------------------------
def lp_frame() -> pl.DataFrame:
    def row(token: str, name: str, scope: str, granted: bool, used: int, refused: int,
            verdict: str) -> dict[str, Any]:
        return {"portfolio_id": P1, "token_id": token, "token_name": name, "scope": scope,
                "granted": granted, "used": used, "refused": refused, "verdict": verdict,
                "suggested_scopes": []}
    return frame(LEAST_PRIVILEGE_SCHEMA, [
        row(T2, "b1", DEMO_WRITE, True, 1, 0, "needed"),
        row(T2, "b1", REAL_READ, False, 0, 2, "missing"),
        row(T1, "a1", DEMO_READ, True, 0, 0, "unused"),
        row(T1, "a1", REAL_WRITE, True, 2, 0, "needed"),
    ])


def test_scope_usage_matrix_and_labels() -> None:
    fig = charts.scope_usage(lp_frame())
    assert len(fig.data) == 1 and fig.data[0].type == "heatmap"
    heat = fig.data[0]
    assert list(heat.x) == [DEMO_READ, DEMO_WRITE, REAL_READ, REAL_WRITE]
    assert list(heat.y) == ["a1 (aaaaaaaa…)", "b1 (bbbbbbbb…)"]
    # 0 not granted, 1 granted but unused, 2 used, 3 refused
    assert [list(r) for r in heat.z] == [[1, 0, 0, 2], [0, 2, 3, 0]]
    assert list(heat.colorbar.tickvals) == [0, 1, 2, 3]
    assert list(heat.colorbar.ticktext) == ["not granted", "granted, unused", "used", "refused"]
    assert (heat.zmin, heat.zmax) == (-0.5, 3.5)
    # discrete: each category is one flat band of the scale
    scale = [(float(stop), colour) for stop, colour in heat.colorscale]
    assert [stop for stop, _ in scale] == [0, 0.25, 0.25, 0.5, 0.5, 0.75, 0.75, 1.0]
    bands = [scale[i][1] for i in range(0, 8, 2)]
    assert bands == [scale[i][1] for i in range(1, 8, 2)] and len(set(bands)) == 4
    assert list(heat.customdata[1][2]) == ["refused", 0, 2, "missing", "no"]
    assert list(heat.customdata[0][3]) == ["used", 2, 0, "needed", "yes"]
    assert list(heat.customdata[0][1]) == ["not granted", 0, 0, "not granted", "no"]
    for part in ("used: %{customdata[1]}", "refused: %{customdata[2]}", "verdict"):
        assert part in heat.hovertemplate
    assert [list(r) for r in heat.text] == [["", "", "", "2"], ["", "1", "✕2", ""]]
    assert list(fig.layout.xaxis.ticktext) == ["trade.demo:read", "trade.demo:write",
                                               "trade.real:read", "trade.real:write"]
    assert fig.layout.title.text and fig.layout.xaxis.title.text == "scope"
    assert fig.layout.yaxis.title.text == "token"


# -- token lifetimes ----------------------------------------------------------------------
def tokens_frame() -> pl.DataFrame:
    def tok(token: str, name: str, portfolio: str, created: timedelta, expires: timedelta | None,
            revoked: timedelta | None = None, status: str = "active",
            application: str | None = "bot-app") -> dict[str, Any]:
        return {"portfolio_id": P1 if portfolio == "alpha01" else P2,
                "portfolio_name": portfolio, "token_id": token, "token_name": name,
                "application": application, "scopes": [DEMO_READ, REAL_WRITE],
                "ips_whitelist": [], "created_at": NOW + created,
                "expires_at": None if expires is None else NOW + expires,
                "revoked_at": None if revoked is None else NOW + revoked, "status": status}
    d = timedelta(days=1)
    return frame(TOKENS_SCHEMA, [
        tok(T1, "act", "alpha01", -10 * d, 30 * d),
        tok(T2, "soon", "alpha01", -5 * d, 2 * d, status="active"),  # stale status column
        tok(T3, "old", "alpha01", -20 * d, -d, status="expired"),
        tok(T4, "gone", "beta0001", -3 * d, 10 * d, -d, status="revoked", application=None),
        tok(T5, "forever", "beta0001", -4 * d, None),
    ])


def test_token_lifetimes_bars_by_status() -> None:
    fig = charts.token_lifetimes(tokens_frame(), now=NOW)
    assert [(t.type, t.name) for t in fig.data] == [
        ("bar", "active"), ("bar", "expiring"), ("bar", "expired"), ("bar", "revoked"),
        ("scatter", "never expires")]
    by = {t.name: t for t in fig.data}
    assert list(by["active"].y) == ["act (aaaaaaaa…)", "forever (eeeeeeee…)"]
    assert list(by["active"].base) == [NOW - timedelta(days=10), NOW - timedelta(days=4)]
    assert list(by["active"].x) == [40 * DAY_MS, 4 * DAY_MS]  # to expiry; to now
    assert list(by["expiring"].y) == ["soon (bbbbbbbb…)"]
    assert list(by["expiring"].x) == [7 * DAY_MS]
    assert list(by["expired"].x) == [19 * DAY_MS]
    assert list(by["revoked"].y) == ["gone (dddddddd…)"]
    assert list(by["revoked"].base) == [NOW - timedelta(days=3)]
    assert list(by["revoked"].x) == [2 * DAY_MS]                   # ends at revocation
    assert list(by["never expires"].x) == [NOW]
    assert list(by["never expires"].y) == ["forever (eeeeeeee…)"]
    assert all(t.orientation == "h" for t in fig.data if t.type == "bar")
    assert len({t.marker.color for t in fig.data if t.type == "bar"}) == 4
    assert by["revoked"].customdata[0][2] == "unknown"                # application
    assert by["revoked"].customdata[0][1] == "beta0001"
    assert "trade.demo:read" in by["revoked"].customdata[0][3]
    assert "%{customdata[1]}" in by["revoked"].hovertemplate
    assert fig.layout.title.text.startswith("Token lifetimes")
    assert fig.layout.xaxis.title.text == "time (UTC)"
    assert fig.layout.yaxis.title.text == "token"


def test_token_lifetimes_now_line_and_window() -> None:
    fig = charts.token_lifetimes(tokens_frame(), now=NOW, expiring_within=timedelta(days=3))
    shapes = {s.name: s for s in fig.layout.shapes}
    assert (shapes["now"].type, shapes["now"].x0, shapes["now"].x1) == ("line", NOW, NOW)
    assert (shapes["now"].yref, shapes["now"].y0, shapes["now"].y1) == ("paper", 0, 1)
    assert (shapes["expiring window"].x0,
            shapes["expiring window"].x1) == (NOW, NOW + timedelta(days=3))
    assert "now" in annotation_texts(fig)
    narrow = charts.token_lifetimes(tokens_frame(), now=NOW, expiring_within=timedelta(days=1))
    assert "expiring" not in [t.name for t in narrow.data]
    assert "soon (bbbbbbbb…)" in list(next(t for t in narrow.data if t.name == "active").y)


def test_token_lifetimes_takes_a_naive_now_as_utc() -> None:
    naive = charts.token_lifetimes(tokens_frame(), now=NOW.replace(tzinfo=None))
    assert naive.to_dict() == charts.token_lifetimes(tokens_frame(), now=NOW).to_dict()


def test_token_lifetimes_notes_tokens_without_creation_time() -> None:
    tokens = tokens_frame().with_columns(
        pl.when(pl.col("token_id") == T3).then(None).otherwise(pl.col("created_at"))
        .alias("created_at"))
    fig = charts.token_lifetimes(tokens, now=NOW)
    assert "expired" not in [t.name for t in fig.data]
    assert any("1 token(s) without a creation time" in t for t in annotation_texts(fig))


# -- portfolio value ----------------------------------------------------------------------
def history_frame() -> pl.DataFrame:
    later = T0 + timedelta(hours=1)
    return frame(charts.VALUE_HISTORY_SCHEMA, [
        {"ts": later, "name": "beta0001", "agent_value_usd": 9_900.0,
         "mirror_value_usd": 990.0, "pnl_usd": -100.0},
        {"ts": later, "name": "alpha01", "agent_value_usd": 10_250.0,
         "mirror_value_usd": 2_050.0, "pnl_usd": 250.0},
        {"ts": T0, "name": "alpha01", "agent_value_usd": 10_000.0,
         "mirror_value_usd": 2_000.0, "pnl_usd": 0.0},
        {"ts": T0, "name": "beta0001", "agent_value_usd": 10_000.0,
         "mirror_value_usd": None, "pnl_usd": 0.0},
    ])


def test_value_history_schema() -> None:
    expected = pl.Schema({
        "ts": pl.Datetime("us", "UTC"), "name": pl.String, "agent_value_usd": pl.Float64,
        "mirror_value_usd": pl.Float64, "pnl_usd": pl.Float64})
    declared = charts.VALUE_HISTORY_SCHEMA
    assert declared == expected


def test_portfolio_value_lines_bars_and_axes() -> None:
    fig = charts.portfolio_value(history_frame())
    assert [(t.type, t.name, t.yaxis) for t in fig.data] == [
        ("scatter", "alpha01 · agent account", "y"), ("scatter", "alpha01 · owner mirror", "y2"),
        ("bar", "alpha01 · P&L", "y3"),
        ("scatter", "beta0001 · agent account", "y"),
        ("scatter", "beta0001 · owner mirror", "y2"), ("bar", "beta0001 · P&L", "y3")]
    later = T0 + timedelta(hours=1)
    assert all(list(t.x) == [T0, later] for t in fig.data)
    assert [list(t.y) for t in fig.data] == [
        [10_000.0, 10_250.0], [2_000.0, 2_050.0], [0.0, 250.0],
        [10_000.0, 9_900.0], [None, 990.0], [0.0, -100.0]]
    alpha = {t.line.color if t.type == "scatter" else t.marker.color for t in fig.data[:3]}
    beta = {t.line.color if t.type == "scatter" else t.marker.color for t in fig.data[3:]}
    assert len(alpha) == 1 and len(beta) == 1 and alpha != beta
    assert fig.data[1].line.dash == "dash"
    assert fig.layout.yaxis2.overlaying == "y"
    assert fig.layout.yaxis.title.text == "agent account (USD)"
    assert fig.layout.yaxis2.title.text == "owner mirror (USD)"
    assert fig.layout.yaxis3.title.text == "P&L (USD)"
    assert fig.layout.xaxis2.title.text == "time (UTC)"
    assert fig.layout.title.text
    assert "alpha01" in fig.data[0].hovertemplate and "%{y" in fig.data[0].hovertemplate


# -- delegation map -----------------------------------------------------------------------
def portfolios_frame() -> pl.DataFrame:
    def port(pid: str, name: str, count: int) -> dict[str, Any]:
        return {"portfolio_id": pid, "name": name, "gcid": 1, "virtual_balance": 10_000.0,
                "mirror_id": 88, "created_at": T0, "token_count": count}
    return frame(PORTFOLIOS_SCHEMA, [port(P3, "gamma001", 0), port(P2, "beta0001", 1),
                                     port(P1, "alpha01", 2)])


def delegation_tokens() -> pl.DataFrame:
    def tok(pid: str, pname: str, tid: str, name: str, status: str, app: str | None,
            scopes: list[str]) -> dict[str, Any]:
        return {"portfolio_id": pid, "portfolio_name": pname, "token_id": tid,
                "token_name": name, "application": app, "scopes": scopes,
                "ips_whitelist": [], "created_at": T0, "status": status}
    return frame(TOKENS_SCHEMA, [
        tok(P2, "beta0001", T3, "b1", "revoked", None, [DEMO_READ, DEMO_WRITE]),
        tok(P1, "alpha01", T2, "short", "expired", "bot-app", [DEMO_READ]),
        tok(P1, "alpha01", T1, "a1", "active", "bot-app", [REAL_READ, REAL_WRITE]),
    ])


def test_delegation_map_nodes_and_links() -> None:
    fig = charts.delegation_map(portfolios_frame(), delegation_tokens(), owner="me")
    assert len(fig.data) == 1 and fig.data[0].type == "sankey"
    sankey = fig.data[0]
    labels = list(sankey.node.label)
    assert labels == ["me", "alpha01", "beta0001", "gamma001", "a1 (active)",
                      "short (expired)", "b1 (revoked)", "bot-app", "unknown"]
    ix = {label: i for i, label in enumerate(labels)}
    links = list(zip(sankey.link.source, sankey.link.target, sankey.link.value, strict=True))
    thin = links[2][2]
    assert 0 < thin < 1
    assert links == [
        (ix["me"], ix["alpha01"], 2), (ix["me"], ix["beta0001"], 1),
        (ix["me"], ix["gamma001"], thin),
        (ix["alpha01"], ix["a1 (active)"], 1), (ix["alpha01"], ix["short (expired)"], 1),
        (ix["beta0001"], ix["b1 (revoked)"], 1),
        (ix["a1 (active)"], ix["bot-app"], 1), (ix["short (expired)"], ix["bot-app"], 1),
        (ix["b1 (revoked)"], ix["unknown"], 1)]
    info = list(sankey.link.customdata)
    assert info[2] == "no tokens"
    assert info[3] == "scopes: trade.real:read, trade.real:write"
    assert info[8] == "scopes: trade.demo:read, trade.demo:write<br>status: revoked"
    assert "aaaaaaaa…" in sankey.node.customdata[ix["a1 (active)"]]
    assert "trade.real:write" in sankey.node.customdata[ix["a1 (active)"]]
    assert "%{customdata}" in sankey.link.hovertemplate
    colours = list(sankey.node.color)
    assert colours[ix["a1 (active)"]] != colours[ix["b1 (revoked)"]]
    assert fig.layout.title.text.startswith("Delegation")


def test_delegation_map_keeps_tokens_of_deleted_portfolios() -> None:
    fig = charts.delegation_map(portfolios_frame().filter(pl.col("portfolio_id") != P2),
                                delegation_tokens())
    sankey = fig.data[0]
    assert list(sankey.node.label)[:4] == ["owner", "alpha01", "beta0001", "gamma001"]
    assert sum(v for s, v in zip(sankey.link.source, sankey.link.value, strict=True)
               if s == 0) == pytest.approx(3 + list(sankey.link.value)[2])


# -- every chart --------------------------------------------------------------------------
CHARTS: dict[str, tuple[Callable[..., go.Figure], Callable[[], tuple[pl.DataFrame, ...]],
                        dict[str, Any], str]] = {
    "activity": (charts.activity, lambda: (usage_frame(),),
                 {"portfolio_names": {P1: "alpha01"}}, "No usage recorded in this window"),
    "scope_usage": (charts.scope_usage, lambda: (lp_frame(),), {},
                    "No scope grants or usage in this window"),
    "token_lifetimes": (charts.token_lifetimes, lambda: (tokens_frame(),), {"now": NOW},
                        "No tokens to show"),
    "portfolio_value": (charts.portfolio_value, lambda: (history_frame(),), {},
                        "No value history recorded"),
    "delegation_map": (charts.delegation_map, lambda: (portfolios_frame(), delegation_tokens()),
                       {}, "No agent portfolios or tokens to show"),
}


@pytest.mark.parametrize("name", list(CHARTS))
def test_same_input_same_figure(name: str) -> None:
    chart, inputs, options, _ = CHARTS[name]
    first = chart(*inputs(), **options).to_dict()
    assert chart(*inputs(), **options).to_dict() == first
    assert chart(*(reversed_rows(f) for f in inputs()), **options).to_dict() == first


@pytest.mark.parametrize("name", list(CHARTS))
def test_empty_frame_gives_an_annotated_figure(name: str) -> None:
    chart, inputs, options, message = CHARTS[name]
    fig = chart(*(f.clear() for f in inputs()), **options)
    assert len(fig.data) == 0
    assert annotation_texts(fig) == [message]
    assert fig.layout.title.text
    fig.to_json()


@pytest.mark.parametrize("name", list(CHARTS))
def test_figures_are_titled_and_serialise(name: str) -> None:
    chart, inputs, options, _ = CHARTS[name]
    fig = chart(*inputs(), **options)
    assert isinstance(fig, go.Figure) and fig.layout.title.text
    assert all(getattr(t, "hovertemplate", None) or t.type == "sankey" for t in fig.data)
    fig.to_json()


@pytest.mark.parametrize("name", list(CHARTS))
def test_missing_columns_are_named(name: str) -> None:
    chart, inputs, options, _ = CHARTS[name]
    frames = list(inputs())
    column = frames[0].columns[1]
    frames[0] = frames[0].drop(column)
    with pytest.raises(ValueError, match=column):
        chart(*frames, **options)


def test_a_lazy_frame_is_refused() -> None:
    with pytest.raises(TypeError, match="collect"):
        charts.activity(usage_frame().lazy())  # type: ignore[arg-type]


def test_options_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        charts.activity(usage_frame(), "1h")  # type: ignore[misc]
    with pytest.raises(TypeError):
        charts.token_lifetimes(tokens_frame(), NOW)  # type: ignore[misc]


# -- one look, one colour per portfolio ------------------------------------------------------
@pytest.mark.parametrize("name", list(CHARTS))
def test_every_chart_uses_the_project_template(name: str) -> None:
    import plotly.io as pio

    from etoro_nb.charts import figures

    chart, inputs, options, _ = CHARTS[name]
    registered = pio.templates[style.TEMPLATE]
    assert figures.register_template() is registered  # registered once, then reused
    for fig in (chart(*inputs(), **options), chart(*(f.clear() for f in inputs()), **options)):
        assert fig.layout.template == registered
    assert list(registered.layout.colorway) == list(style.PALETTE)


@pytest.mark.parametrize("name", ["activity", "token_lifetimes", "portfolio_value"])
def test_legends_sit_under_the_plot(name: str) -> None:
    """A horizontal legend below the plot wraps into rows and pushes the bottom margin; a
    vertical one beside it takes its width from the plot."""
    chart, inputs, options, _ = CHARTS[name]
    legend = chart(*inputs(), **options).layout.legend
    assert legend.orientation == "h" and legend.yanchor == "top" and -1 < legend.y < 0


def test_a_portfolio_has_one_colour_in_every_chart() -> None:
    names = {P1: "alpha01", P2: "beta0001"}
    activity = charts.activity(usage_frame(), portfolio_names=names)
    value = charts.portfolio_value(history_frame())
    sankey = charts.delegation_map(portfolios_frame(), delegation_tokens()).data[0]
    in_activity = {t.name: t.marker.color for t in activity.data if t.type == "bar"}
    in_value = {t.legendgroup: t.line.color for t in value.data if t.type == "scatter"}
    in_map = dict(zip(sankey.node.label, sankey.node.color, strict=True))
    shared = set(in_activity) & set(in_value) & set(in_map)
    assert shared, (in_activity, in_value, in_map)  # the fixtures share portfolio names
    for portfolio in shared:
        assert in_activity[portfolio] == in_value[portfolio] == in_map[portfolio]
    assert style.portfolio_colours(sorted(shared)) == {p: in_map[p] for p in shared}


def test_portfolio_colours_are_distinct_and_kept() -> None:
    from etoro_nb.charts.style import PALETTE, PortfolioColours

    colours = PortfolioColours()
    first = colours([f"bot{i:04d}" for i in range(10)])
    assert len(set(first.values())) == 10  # distinct while the palette lasts
    later = colours([f"new{i:04d}" for i in range(10)] + ["bot0003"])
    assert later["bot0003"] == first["bot0003"]  # a portfolio keeps its colour
    assert len(set(first.values()) | set(later.values())) == len(PALETTE)
    assert set(colours(["one-more"]).values()) <= set(PALETTE)  # then colours repeat
