"""plotly charts of the frames in ``etoro_nb.frames``: activity per portfolio, scope usage,
token lifetimes, portfolio value and the delegation map.

Every function takes polars frames (with the columns of the matching ``frames`` loader)
and returns a ``plotly.graph_objects.Figure``. Nothing here calls the API or reads a file:
the same frames give the same figure (inputs are sorted, colours come from fixed maps).
A frame without rows gives a titled figure whose annotation says so, with no data traces.

Examples
--------
>>> import etoro_nb as enb
>>> client = enb.connect()                                                # doctest: +SKIP
>>> enb.charts.activity(enb.frames.usage(client.ledger), freq="15m")      # doctest: +SKIP
>>> enb.charts.token_lifetimes(enb.frames.tokens(client), now=client.now())  # doctest: +SKIP
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import plotly.graph_objects as go  # type: ignore[import-untyped]
import polars as pl
from plotly.subplots import make_subplots  # type: ignore[import-untyped]

from etoro_nb.frames import VALUE_HISTORY_SCHEMA, token_status

TEMPLATE = "plotly_white"

# Categorical colours for operations and portfolios; no reds (red means refused / error).
PALETTE: tuple[str, ...] = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
    "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7",
    "#dbdb8d", "#9edae5", "#393b79", "#637939",
)
ERROR_COLOUR = "#d62728"
TRADE_COLOUR = "#111111"
STATUS_COLOURS: dict[str, str] = {
    "active": "#2ca02c", "expiring": "#ff7f0e", "expired": "#7f7f7f", "revoked": "#d62728",
}
SCOPE_CATEGORIES: tuple[tuple[str, str], ...] = (  # (label, colour), index = heatmap z
    ("not granted", "#eeeeee"),
    ("granted, unused", "#ffbb33"),
    ("used", "#2ca02c"),
    ("refused", "#d62728"),
)
TRADE_OPERATIONS = frozenset({"createRealOrder", "createDemoOrder"})
TRADE_PREFIXES = ("openMarketPosition", "closePositionByMarketRate")
NO_PORTFOLIO = "(no portfolio)"
THIN_LINK = 0.1  # the value of the owner -> portfolio link of a portfolio without tokens


# -- helpers ------------------------------------------------------------------------------
def _short(value: str | None, keep: int = 8) -> str:
    """An id cut to its first ``keep`` characters (UUIDs stay recognisable in hovers)."""
    if value is None:
        return "—"
    return value if len(value) <= keep + 2 else value[:keep] + "…"


def _when(value: datetime | None) -> str:
    return "—" if value is None else f"{value.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _require(frame: pl.DataFrame, columns: Iterable[str], what: str) -> None:
    if not isinstance(frame, pl.DataFrame):
        raise TypeError(f"{what}: expected a polars DataFrame, got {type(frame).__name__}"
                        " (collect a LazyFrame first)")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {', '.join(missing)}")


def _as_utc(frame: pl.DataFrame, columns: Iterable[str], what: str) -> pl.DataFrame:
    """Datetime columns in UTC (naive ones are taken as UTC); other dtypes are an error."""
    exprs = []
    for column in columns:
        dtype = frame.schema[column]
        if not isinstance(dtype, pl.Datetime):
            raise ValueError(f"{what}: column {column} must be a Datetime, not {dtype}")
        expr = pl.col(column)
        exprs.append(expr.dt.replace_time_zone("UTC") if dtype.time_zone is None
                     else expr.dt.convert_time_zone("UTC"))
    return frame.with_columns(exprs) if exprs else frame


def _colours(keys: Iterable[str]) -> dict[str, str]:
    """A colour per key: a fixed preferred slot (hash of the key), moved on only when another
    key of the same figure has taken it, so colours stay distinct and mostly stable."""
    out: dict[str, str] = {}
    taken: set[int] = set()
    for key in sorted(set(keys)):
        slot = zlib.crc32(key.encode()) % len(PALETTE)
        while slot in taken and len(taken) < len(PALETTE):
            slot = (slot + 1) % len(PALETTE)
        taken.add(slot)
        out[key] = PALETTE[slot]
    return out


def _empty(title: str, message: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(
        title={"text": title}, template=TEMPLATE, height=320,
        xaxis={"visible": False}, yaxis={"visible": False},
        annotations=[{"text": message, "name": "empty", "xref": "paper", "yref": "paper",
                      "x": 0.5, "y": 0.5, "showarrow": False, "font": {"size": 16}}])
    return fig


def _check_freq(freq: str) -> None:
    ref = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        end = pl.select(pl.lit(ref).dt.offset_by(freq)).item()
        pl.select(pl.lit(ref).dt.truncate(freq))
    except (pl.exceptions.PolarsError, ValueError, TypeError) as exc:
        raise ValueError(f"freq: {freq!r} is not a polars duration such as '15m', '1h' or "
                         f"'1d' ({exc.__class__.__name__})") from None
    if not end > ref:
        raise ValueError(f"freq: {freq!r} must be a positive duration such as '15m', '1h' or '1d'")


def _counted(items: Iterable[str]) -> str:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return ", ".join(f"{k} x{n}" if n > 1 else k for k, n in sorted(counts.items()))


# -- activity -----------------------------------------------------------------------------
def activity(usage: pl.DataFrame, *, freq: str = "1h",
             portfolio_names: Mapping[str, str] | None = None) -> go.Figure:
    """Requests per time bucket, one subplot row per portfolio.

    Counts the ``outcome`` rows of a ``frames.usage(...)`` (or ``frames.requests(...)``)
    frame, and the ``intent`` rows that have no outcome (requests never answered, shown
    with a null status). Each row stacks one bar
    trace per ``operation_id``; a red ``refused / errors`` marker per bucket counts the
    requests answered with status >= 400 or never answered (null status), naming their
    status and error codes; a dark ``trades`` marker counts order-creating and closing
    requests that succeeded (``createRealOrder``, ``createDemoOrder``,
    ``openMarketPosition*``, ``closePositionByMarketRate*``). Requests without a portfolio
    (owner calls such as listing portfolios) get a row of their own, last.

    Parameters
    ----------
    usage
        A ``frames.usage(...)`` or ``frames.requests(...)`` frame.
    freq
        Bucket width, a polars duration string: ``"15m"``, ``"1h"``, ``"1d"``, ``"1mo"``.
    portfolio_names
        Portfolio id -> name, for the row titles (``frames.portfolios(...)`` has both).

    Returns
    -------
    plotly.graph_objects.Figure

    Examples
    --------
    >>> names = dict(enb.frames.portfolios(client).select("portfolio_id", "name").iter_rows())
    ...                                                             # doctest: +SKIP
    >>> activity(enb.frames.usage(client.ledger), freq="15m", portfolio_names=names)
    ...                                                             # doctest: +SKIP
    """
    _require(usage, ("ts", "phase", "request_id", "attempt", "principal", "portfolio_id",
                     "token_id", "operation_id", "status", "error_code"), "usage")
    _check_freq(freq)
    title = f"Requests per portfolio ({freq} buckets)"
    events = _as_utc(usage, ["ts"], "usage").filter(pl.col("ts").is_not_null())
    outcomes = events.filter(pl.col("phase") == "outcome")
    unanswered = events.filter(pl.col("phase") == "intent",
                               pl.col("request_id").is_not_null()).join(
        outcomes.select("request_id", "attempt"), on=["request_id", "attempt"], how="anti")
    rows = pl.concat([outcomes, unanswered.with_columns(
        pl.lit(None).cast(events.schema["status"]).alias("status"))])
    if rows.is_empty():
        return _empty(title, "No usage recorded in this window")
    names = dict(portfolio_names or {})
    rows = rows.with_columns(
        bucket=pl.col("ts").dt.truncate(freq),
        portfolio=pl.col("portfolio_id").fill_null(NO_PORTFOLIO),
        operation=pl.col("operation_id").fill_null("unknown"),
        failed=pl.col("status").is_null() | (pl.col("status") >= 400),
        who=pl.when(pl.col("token_id").str.len_chars() > 10)
        .then(pl.col("token_id").str.slice(0, 8) + pl.lit("…"))
        .otherwise(pl.col("token_id").fill_null(pl.col("principal")).fill_null("owner")),
    ).with_columns(
        end=pl.col("bucket").dt.offset_by(freq),
        trade=(pl.col("operation").is_in(sorted(TRADE_OPERATIONS))
               | pl.col("operation").str.starts_with(TRADE_PREFIXES[0])
               | pl.col("operation").str.starts_with(TRADE_PREFIXES[1]))
        & pl.col("status").is_between(200, 299),
        answer=pl.when(pl.col("status").is_null()).then(pl.lit("no answer"))
        .otherwise(pl.concat_str(pl.col("status").cast(pl.String),
                                 pl.col("error_code").fill_null(""), separator=" ")
                   .str.strip_chars()),
    ).with_columns(
        mid=pl.col("bucket") + (pl.col("end") - pl.col("bucket")) / 2,
        width=(pl.col("end") - pl.col("bucket")).dt.total_milliseconds() * 0.9,
        span=pl.concat_str(
            pl.col("bucket").dt.strftime("%Y-%m-%d %H:%M"), pl.lit(" to "),
            pl.when(pl.col("end").dt.date() == pl.col("bucket").dt.date())
            .then(pl.col("end").dt.strftime("%H:%M"))
            .otherwise(pl.col("end").dt.strftime("%Y-%m-%d %H:%M")), pl.lit(" UTC")),
    )

    def label(pid: str) -> str:
        if pid == NO_PORTFOLIO:
            return "no portfolio (owner calls)"
        return f"{names[pid]} ({_short(pid)})" if pid in names else _short(pid)

    portfolio_ids = sorted(set(rows["portfolio"].to_list()),
                           key=lambda p: (p == NO_PORTFOLIO, names.get(p, "\uffff"), p))
    colours = _colours(rows["operation"].to_list())
    n = len(portfolio_ids)
    fig = make_subplots(rows=n, cols=1, shared_xaxes=True,
                        subplot_titles=[label(p) for p in portfolio_ids],
                        vertical_spacing=min(0.08, 0.3 / n) if n > 1 else 0.08)
    shown: set[str] = set()
    for r, pid in enumerate(portfolio_ids, start=1):
        mine = rows.filter(pl.col("portfolio") == pid)
        where = label(pid)
        ops = (mine.group_by("operation", "bucket")
               .agg(pl.len().alias("n"), pl.col("mid").first(), pl.col("width").first(),
                    pl.col("span").first(), pl.col("failed").sum().alias("failed"),
                    pl.col("who").unique().sort().str.join(", ").alias("who"))
               .sort("operation", "bucket"))
        for op in sorted(set(ops["operation"].to_list())):
            part = ops.filter(pl.col("operation") == op)
            fig.add_trace(go.Bar(
                x=part["mid"].to_list(), y=part["n"].to_list(), width=part["width"].to_list(),
                name=op, legendgroup=op, showlegend=op not in shown,
                marker={"color": colours[op]},
                customdata=[[s, f, w] for s, f, w in part.select("span", "failed", "who")
                            .iter_rows()],
                hovertemplate=(f"<b>{op}</b><br>%{{customdata[0]}}<br>requests: %{{y}}"
                               "<br>refused / errors: %{customdata[1]}"
                               f"<br>by: %{{customdata[2]}}<extra>{where}</extra>")),
                row=r, col=1)
            shown.add(op)
        buckets = (mine.group_by("bucket")
                   .agg(pl.col("mid").first(), pl.col("span").first(),
                        pl.col("failed").sum().alias("failed"),
                        pl.col("trade").sum().alias("trades"),
                        pl.col("answer").filter(pl.col("failed")).sort().alias("answers"),
                        pl.col("operation").filter(pl.col("trade")).sort().alias("trade_ops"))
                   .sort("bucket"))
        errors = buckets.filter(pl.col("failed") > 0)
        if not errors.is_empty():
            fig.add_trace(go.Scatter(
                x=errors["mid"].to_list(), y=errors["failed"].to_list(),
                mode="markers+text", text=[str(v) for v in errors["failed"].to_list()],
                textposition="top center", textfont={"color": ERROR_COLOUR},
                name="refused / errors", legendgroup="refused / errors",
                showlegend="refused / errors" not in shown,
                marker={"color": ERROR_COLOUR, "symbol": "x", "size": 11},
                customdata=[[s, _counted(a)] for s, a in errors.select("span", "answers")
                            .iter_rows()],
                hovertemplate=("<b>refused / errors: %{y}</b><br>%{customdata[0]}"
                               f"<br>%{{customdata[1]}}<extra>{where}</extra>")),
                row=r, col=1)
            shown.add("refused / errors")
        trades = buckets.filter(pl.col("trades") > 0)
        if not trades.is_empty():
            fig.add_trace(go.Scatter(
                x=trades["mid"].to_list(), y=trades["trades"].to_list(), mode="markers",
                name="trades", legendgroup="trades", showlegend="trades" not in shown,
                marker={"color": TRADE_COLOUR, "symbol": "diamond", "size": 10,
                        "line": {"color": "white", "width": 1}},
                customdata=[[s, _counted(o)] for s, o in trades.select("span", "trade_ops")
                            .iter_rows()],
                hovertemplate=("<b>trades: %{y}</b><br>%{customdata[0]}"
                               f"<br>%{{customdata[1]}}<extra>{where}</extra>")),
                row=r, col=1)
            shown.add("trades")
        fig.update_yaxes(title_text="requests", rangemode="tozero", row=r, col=1)
    fig.update_xaxes(title_text="time (UTC)", row=n, col=1)
    fig.update_layout(title={"text": title}, barmode="stack", template=TEMPLATE,
                      height=160 + 220 * n, legend={"title": {"text": "operation"}})
    return fig


# -- scope usage --------------------------------------------------------------------------
def scope_usage(least_privilege: pl.DataFrame) -> go.Figure:
    """Tokens x scopes heatmap of a ``frames.least_privilege(...)`` frame.

    Each cell is one of ``used`` (answered 2xx at least once), ``granted, unused``,
    ``refused`` (asked for without the grant) or ``not granted`` (nothing recorded); the
    colour bar names them. Hover gives the used and refused counts and the verdict.
    Tokens are sorted by name then id, scopes by name.

    Parameters
    ----------
    least_privilege
        A ``frames.least_privilege(grants, usage)`` frame.

    Returns
    -------
    plotly.graph_objects.Figure

    Examples
    --------
    >>> lp = enb.frames.least_privilege(enb.frames.scope_grants(client),
    ...                                 enb.frames.usage(client.ledger))  # doctest: +SKIP
    >>> scope_usage(lp)                                                    # doctest: +SKIP
    """
    _require(least_privilege, ("token_id", "token_name", "scope", "granted", "used", "refused",
                               "verdict"), "least_privilege")
    title = "Scope usage per token"
    frame = least_privilege.filter(pl.col("token_id").is_not_null(),
                                   pl.col("scope").is_not_null())
    if frame.is_empty():
        return _empty(title, "No scope grants or usage in this window")
    tokens = (frame.group_by("token_id")
              .agg(pl.col("token_name").drop_nulls().first())
              .sort(pl.col("token_name").fill_null(""), "token_id"))
    token_ids = tokens["token_id"].to_list()
    labels = [f"{name} ({_short(tid)})" if name else _short(tid)
              for tid, name in tokens.iter_rows()]
    scopes = sorted(set(frame["scope"].to_list()))
    cells = {(r["token_id"], r["scope"]): r for r in frame.iter_rows(named=True)}
    z: list[list[int]] = []
    custom: list[list[list[Any]]] = []
    text: list[list[str]] = []
    for tid in token_ids:
        z_row, c_row, t_row = [], [], []
        for scope in scopes:
            cell = cells.get((tid, scope))
            if cell is None:
                used, refused, verdict, granted = 0, 0, "not granted", False
            else:
                used, refused = cell["used"] or 0, cell["refused"] or 0
                verdict, granted = cell["verdict"] or "", bool(cell["granted"])
            if used > 0:
                category = 2
            elif granted:
                category = 1
            elif refused > 0:
                category = 3
            else:
                category = 0
            z_row.append(category)
            c_row.append([SCOPE_CATEGORIES[category][0], used, refused, verdict,
                          "yes" if granted else "no"])
            t_row.append(str(used) if used else f"✕{refused}" if refused else "")
        z.append(z_row)
        custom.append(c_row)
        text.append(t_row)
    k = len(SCOPE_CATEGORIES)
    colourscale: list[list[Any]] = []
    for i, (_, colour) in enumerate(SCOPE_CATEGORIES):
        colourscale += [[i / k, colour], [(i + 1) / k, colour]]
    fig = go.Figure(go.Heatmap(
        z=z, x=scopes, y=labels, customdata=custom, text=text, texttemplate="%{text}",
        colorscale=colourscale, zmin=-0.5, zmax=k - 0.5, xgap=2, ygap=2,
        colorbar={"title": {"text": "scope"}, "tickvals": list(range(k)),
                  "ticktext": [name for name, _ in SCOPE_CATEGORIES]},
        hovertemplate=("<b>%{y}</b><br>%{x}<br>%{customdata[0]}<br>granted: %{customdata[4]}"
                       "<br>used: %{customdata[1]}<br>refused: %{customdata[2]}"
                       "<br>verdict: %{customdata[3]}<extra></extra>")))
    fig.update_xaxes(title_text="scope", tickvals=scopes,
                     ticktext=[s.removeprefix("etoro-public:") for s in scopes])
    fig.update_yaxes(title_text="token", autorange="reversed")
    fig.update_layout(title={"text": title}, template=TEMPLATE,
                      height=220 + 36 * len(labels))
    return fig


# -- token lifetimes ----------------------------------------------------------------------
def token_lifetimes(tokens: pl.DataFrame, *, now: datetime,
                    expiring_within: timedelta = timedelta(days=7)) -> go.Figure:
    """Each token as a horizontal bar from its creation to its end, coloured by status.

    The end is ``expires_at``, or ``revoked_at`` for a revoked token (the earlier of the
    two when it had also expired), or ``now`` for a token that never expires, which also
    gets an open-ended marker. Status is taken at ``now``: ``revoked``, ``expired``,
    ``expiring`` (within ``expiring_within``, highlighted with the window shaded) or
    ``active``. A dotted vertical line marks ``now``. Tokens without ``created_at`` are
    left out (a note says how many).

    Parameters
    ----------
    tokens
        A ``frames.tokens(...)`` frame.
    now
        The time to draw as now and to take statuses at (naive means UTC).
    expiring_within
        How close to expiry a token counts as ``expiring``.

    Returns
    -------
    plotly.graph_objects.Figure

    Examples
    --------
    >>> token_lifetimes(enb.frames.tokens(client), now=client.now(),
    ...                 expiring_within=timedelta(days=3))             # doctest: +SKIP
    """
    _require(tokens, ("portfolio_name", "token_id", "token_name", "application", "scopes",
                      "created_at", "expires_at", "revoked_at", "status"), "tokens")
    now = _utc(now)
    title = f"Token lifetimes (now: {_when(now)})"
    frame = _as_utc(tokens, ["created_at", "expires_at", "revoked_at"], "tokens").filter(
        pl.col("token_id").is_not_null())
    if frame.is_empty():
        return _empty(title, "No tokens to show")
    undated = frame.filter(pl.col("created_at").is_null()).height
    frame = frame.filter(pl.col("created_at").is_not_null()).sort(
        pl.col("portfolio_name").fill_null("\uffff"), "created_at", "token_id")
    bars: dict[str, list[dict[str, Any]]] = {s: [] for s in STATUS_COLOURS}
    open_ended: list[dict[str, Any]] = []
    for t in frame.iter_rows(named=True):
        expires, revoked = t["expires_at"], t["revoked_at"]
        status = ("revoked" if t["status"] == "revoked"
                  else token_status(expires, revoked, now, expiring_within))
        if status == "revoked":
            ends = [d for d in (expires, revoked) if d is not None]
            end, kind = (min(ends), "revoked") if ends else (now, "revoked (time unknown)")
        elif expires is None:
            end, kind = now, "never expires"
        else:
            end, kind = expires, ("expired" if status == "expired" else "expires")
        label = (f"{t['token_name']} ({_short(t['token_id'])})" if t["token_name"]
                 else _short(t["token_id"]))
        bar = {"label": label, "start": t["created_at"], "end": end, "token": t,
               "status": status, "kind": kind}
        bars[status].append(bar)
        if kind == "never expires":
            open_ended.append(bar)
    fig = go.Figure()
    hover = ("<b>%{y}</b> · %{customdata[0]}<br>portfolio: %{customdata[1]}"
             "<br>application: %{customdata[2]}<br>scopes: %{customdata[3]}"
             "<br>created: %{customdata[4]}<br>%{customdata[5]}: %{customdata[6]}<extra></extra>")
    for status, colour in STATUS_COLOURS.items():
        group = bars[status]
        if not group:
            continue
        fig.add_trace(go.Bar(
            orientation="h", name=status, legendgroup=status,
            y=[b["label"] for b in group], base=[b["start"] for b in group],
            x=[(b["end"] - b["start"]).total_seconds() * 1000 for b in group],
            marker={"color": colour,
                    "line": {"color": "#000000" if status == "expiring" else colour,
                             "width": 2 if status == "expiring" else 0}},
            customdata=[[status, b["token"]["portfolio_name"] or "—",
                         b["token"]["application"] or "unknown",
                         ", ".join(b["token"]["scopes"] or []) or "—", _when(b["start"]),
                         b["kind"], _when(b["end"])] for b in group],
            hovertemplate=hover))
    if open_ended:
        fig.add_trace(go.Scatter(
            x=[now] * len(open_ended), y=[b["label"] for b in open_ended], mode="markers",
            name="never expires", marker={"symbol": "triangle-right", "size": 12,
                                          "color": STATUS_COLOURS["active"]},
            customdata=[_when(b["start"]) for b in open_ended],
            hovertemplate="<b>%{y}</b><br>never expires<br>created: %{customdata}<extra></extra>"))
    fig.add_shape(type="rect", name="expiring window", xref="x", yref="paper",
                  x0=now, x1=now + expiring_within, y0=0, y1=1, layer="below",
                  fillcolor=STATUS_COLOURS["expiring"], opacity=0.08, line={"width": 0})
    fig.add_shape(type="line", name="now", xref="x", yref="paper", x0=now, x1=now, y0=0,
                  y1=1, line={"color": "#333333", "width": 2, "dash": "dot"})
    fig.add_annotation(name="now", x=now, xref="x", y=1, yref="paper", text="now",
                       showarrow=False, yanchor="bottom")
    if undated:
        fig.add_annotation(name="undated", xref="paper", yref="paper", x=0, y=-0.18,
                           showarrow=False, xanchor="left",
                           text=f"{undated} token(s) without a creation time not shown")
    n = sum(len(g) for g in bars.values())
    fig.update_xaxes(type="date", title_text="time (UTC)")
    fig.update_yaxes(title_text="token", autorange="reversed", type="category")
    fig.update_layout(title={"text": title}, template=TEMPLATE, barmode="overlay",
                      height=220 + 32 * n, legend={"title": {"text": "status"}})
    return fig


# -- portfolio value ----------------------------------------------------------------------
def portfolio_value(history: pl.DataFrame) -> go.Figure:
    """Value and P&L of agent portfolios over time (``VALUE_HISTORY_SCHEMA`` rows).

    Top row: the agent account's value (solid, left axis) and the owner's mirror of it
    (dashed, right axis: the two are on different scales, a virtual balance and the
    owner's investment). Bottom row: P&L as bars. One colour per portfolio.

    Parameters
    ----------
    history
        One row per portfolio and snapshot: ``ts``, ``name``, ``agent_value_usd``,
        ``mirror_value_usd``, ``pnl_usd``.

    Returns
    -------
    plotly.graph_objects.Figure

    Examples
    --------
    >>> snapshots = []                                                  # doctest: +SKIP
    >>> for _ in range(12):                                             # doctest: +SKIP
    ...     snapshots.append(enb.frames.value_snapshot(client))
    ...     client.sandbox.sandbox.clock.advance(3600)
    >>> portfolio_value(pl.concat(snapshots))                           # doctest: +SKIP
    """
    _require(history, tuple(VALUE_HISTORY_SCHEMA), "history")
    title = "Agent portfolio value and P&L"
    frame = _as_utc(history, ["ts"], "history").filter(pl.col("ts").is_not_null())
    if frame.is_empty():
        return _empty(title, "No value history recorded")
    frame = frame.with_columns(pl.col("name").fill_null("(unnamed)")).sort("name", "ts")
    names = list(dict.fromkeys(frame["name"].to_list()))
    colours = _colours(names)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        row_heights=[0.62, 0.38],
                        specs=[[{"secondary_y": True}], [{}]],
                        subplot_titles=["value: agent account (solid) and owner mirror (dashed)",
                                        "P&L"])
    for name in names:
        part = frame.filter(pl.col("name") == name)
        ts = part["ts"].to_list()
        colour = colours[name]
        fig.add_trace(go.Scatter(
            x=ts, y=part["agent_value_usd"].to_list(), mode="lines+markers",
            name=f"{name} · agent account", legendgroup=name, line={"color": colour},
            hovertemplate=(f"<b>{name}</b> agent account<br>%{{x|%Y-%m-%d %H:%M}} UTC"
                           "<br>value: $%{y:,.2f}<extra></extra>")),
            row=1, col=1, secondary_y=False)
        fig.add_trace(go.Scatter(
            x=ts, y=part["mirror_value_usd"].to_list(), mode="lines+markers",
            name=f"{name} · owner mirror", legendgroup=name,
            line={"color": colour, "dash": "dash"}, marker={"symbol": "circle-open"},
            hovertemplate=(f"<b>{name}</b> owner mirror<br>%{{x|%Y-%m-%d %H:%M}} UTC"
                           "<br>value: $%{y:,.2f}<extra></extra>")),
            row=1, col=1, secondary_y=True)
        fig.add_trace(go.Bar(
            x=ts, y=part["pnl_usd"].to_list(), name=f"{name} · P&L", legendgroup=name,
            marker={"color": colour},
            hovertemplate=(f"<b>{name}</b> P&L<br>%{{x|%Y-%m-%d %H:%M}} UTC"
                           "<br>$%{y:+,.2f}<extra></extra>")),
            row=2, col=1)
    fig.update_yaxes(title_text="agent account (USD)", row=1, col=1, secondary_y=False)
    fig.update_yaxes(title_text="owner mirror (USD)", row=1, col=1, secondary_y=True,
                     showgrid=False)
    fig.update_yaxes(title_text="P&L (USD)", zeroline=True, zerolinecolor="#888888",
                     row=2, col=1)
    fig.update_xaxes(title_text="time (UTC)", row=2, col=1)
    fig.update_layout(title={"text": title}, template=TEMPLATE, barmode="group", height=620,
                      hovermode="closest")
    return fig


# -- delegation map -----------------------------------------------------------------------
def delegation_map(portfolios: pl.DataFrame, tokens: pl.DataFrame, *,
                   owner: str = "owner") -> go.Figure:
    """Sankey of who delegated to whom: owner -> agent portfolios -> tokens -> applications.

    Each token is worth 1 on its links; a portfolio without tokens still gets a thin link
    from the owner (value ``THIN_LINK``). Tokens are labelled with name and status and
    coloured by status; applications are the token's ``application`` or ``unknown``.
    Tokens of portfolios missing from ``portfolios`` (revoked with a deleted portfolio)
    still appear, under a portfolio node named from the token row. Hover names scopes.

    Parameters
    ----------
    portfolios
        A ``frames.portfolios(...)`` frame.
    tokens
        A ``frames.tokens(...)`` frame.
    owner
        The label of the owner node.

    Returns
    -------
    plotly.graph_objects.Figure

    Examples
    --------
    >>> delegation_map(enb.frames.portfolios(client), enb.frames.tokens(client),
    ...                owner="me")                                     # doctest: +SKIP
    """
    _require(portfolios, ("portfolio_id", "name"), "portfolios")
    _require(tokens, ("portfolio_id", "portfolio_name", "token_id", "token_name",
                      "application", "scopes", "status"), "tokens")
    title = "Delegation: owner → agent portfolios → tokens → applications"
    known = portfolios.filter(pl.col("portfolio_id").is_not_null())
    toks = tokens.filter(pl.col("token_id").is_not_null(), pl.col("portfolio_id").is_not_null())
    if known.is_empty() and toks.is_empty():
        return _empty(title, "No agent portfolios or tokens to show")
    names: dict[str, str] = {}
    for pid, name in toks.select("portfolio_id", "portfolio_name").iter_rows():
        names.setdefault(pid, name or _short(pid))
    for pid, name in known.select("portfolio_id", "name").iter_rows():
        names[pid] = name or _short(pid)
    order = sorted(names, key=lambda p: (names[p], p))
    toks = toks.with_columns(pl.col("application").fill_null("unknown"),
                             pl.col("token_name").fill_null(""))
    per_portfolio = {p: toks.filter(pl.col("portfolio_id") == p).sort("token_name", "token_id")
                     for p in order}
    applications = sorted(set(toks["application"].to_list()))
    colours = _colours(order)

    labels: list[str] = [owner]
    node_colours: list[str] = ["#333333"]
    node_info: list[str] = [f"{len(order)} agent portfolio(s), {toks.height} token(s)"]
    portfolio_node: dict[str, int] = {}
    for pid in order:
        portfolio_node[pid] = len(labels)
        labels.append(names[pid])
        node_colours.append(colours[pid])
        node_info.append(f"portfolio {_short(pid)}<br>tokens: {per_portfolio[pid].height}")
    token_rows: list[tuple[str, dict[str, Any]]] = []
    for pid in order:
        token_rows += [(pid, t) for t in per_portfolio[pid].iter_rows(named=True)]
    token_node: dict[str, int] = {}
    for _, t in token_rows:
        token_node[t["token_id"]] = len(labels)
        name = t["token_name"] or _short(t["token_id"])
        labels.append(f"{name} ({t['status']})")
        node_colours.append(STATUS_COLOURS.get(t["status"], "#7f7f7f"))
        node_info.append(f"token {_short(t['token_id'])}<br>scopes: {_scopes(t['scopes'])}")
    app_node: dict[str, int] = {}
    for app in applications:
        app_node[app] = len(labels)
        labels.append(app)
        node_colours.append("#8c8c8c")
        count = toks.filter(pl.col("application") == app).height
        node_info.append(f"application<br>tokens: {count}")

    source: list[int] = []
    target: list[int] = []
    value: list[float] = []
    link_info: list[str] = []
    link_colours: list[str] = []
    for pid in order:
        n = per_portfolio[pid].height
        source.append(0)
        target.append(portfolio_node[pid])
        value.append(float(n) if n else THIN_LINK)
        link_info.append(f"tokens: {n}" if n else "no tokens")
        link_colours.append(_rgba(colours[pid], 0.35))
    for pid, t in token_rows:
        source.append(portfolio_node[pid])
        target.append(token_node[t["token_id"]])
        value.append(1.0)
        link_info.append(f"scopes: {_scopes(t['scopes'])}")
        link_colours.append(_rgba(STATUS_COLOURS.get(t["status"], "#7f7f7f"), 0.35))
    for _, t in token_rows:
        source.append(token_node[t["token_id"]])
        target.append(app_node[t["application"]])
        value.append(1.0)
        link_info.append(f"scopes: {_scopes(t['scopes'])}<br>status: {t['status']}")
        link_colours.append(_rgba(STATUS_COLOURS.get(t["status"], "#7f7f7f"), 0.35))

    fig = go.Figure(go.Sankey(
        arrangement="snap", valueformat=".0f",
        node={"label": labels, "color": node_colours, "customdata": node_info,
              "pad": 18, "thickness": 16, "line": {"color": "white", "width": 0.5},
              "hovertemplate": "<b>%{label}</b><br>%{customdata}<extra></extra>"},
        link={"source": source, "target": target, "value": value, "color": link_colours,
              "customdata": link_info,
              "hovertemplate": ("%{source.label} → %{target.label}<br>%{customdata}"
                                "<extra></extra>")}))
    fig.update_layout(title={"text": title}, template=TEMPLATE,
                      height=max(360, 120 + 28 * len(token_rows) + 20 * len(order)),
                      annotations=[{"text": text, "x": x, "y": 1.04, "xref": "paper",
                                    "yref": "paper", "showarrow": False, "name": "column"}
                                   for text, x in (("owner", 0.0), ("portfolios", 0.33),
                                                   ("tokens", 0.66), ("applications", 1.0))])
    return fig


def _scopes(scopes: Sequence[str] | None) -> str:
    return ", ".join(s.removeprefix("etoro-public:") for s in scopes or []) or "none"


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


__all__ = ["VALUE_HISTORY_SCHEMA", "activity", "delegation_map", "portfolio_value",
           "scope_usage", "token_lifetimes"]
