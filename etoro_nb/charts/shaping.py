"""The frames behind the charts: pure polars, no plotting.

Each function takes the frames its chart takes (with the columns of the matching
``frames`` loader or ``Rebalancer`` frame), checks them, and returns a frame of a declared
schema holding everything the figure shows (positions, counts, labels, hover text) in
drawing order. The figure builders in ``charts.figures`` only map these columns to plotly
marks and styles. Input with nothing to draw gives a frame of the schema with no rows.

Times are UTC (naive input is taken as UTC). Ids in labels are cut to their first eight
characters (``11111111…``), which keeps UUIDs recognisable.

Examples
--------
>>> from etoro_nb.charts import shaping
>>> shaping.activity_frame(enb.frames.usage(client.ledger), freq="15m")   # doctest: +SKIP
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import polars as pl

from etoro_nb.frames import POLICY_EVENTS_SCHEMA, UTC_US, VALUE_HISTORY_SCHEMA
from etoro_nb.operations import trade_operations
from etoro_nb.rebalancer import WEIGHTS_SCHEMA
from etoro_nb.scopes import PREFIX as SCOPE_PREFIX


def _schema(columns: dict[str, Any]) -> pl.Schema:  # Any: polars' dtype union is not inferred
    return pl.Schema(columns)


NO_PORTFOLIO = "(no portfolio)"
NO_PORTFOLIO_TITLE = "no portfolio (owner calls)"
THIN_LINK = 0.1  # the value of the owner -> portfolio link of a portfolio without tokens

ACTIVITY_MARKS = ("requests", "refused / errors", "trades")
ACTIVITY_SCHEMA = _schema({
    "panel": pl.Int64, "panel_title": pl.String, "portfolio": pl.String,
    "mark": pl.Enum(ACTIVITY_MARKS), "series": pl.String, "bucket_mid": UTC_US,
    "width_ms": pl.Float64, "span": pl.String, "count": pl.Int64, "failed": pl.Int64,
    "operations": pl.String, "detail": pl.String,
})
"""``activity_frame``: one row per portfolio (``panel``, 1 = top), mark and time bucket.
``portfolio`` names the panel's portfolio (its name, else its short id, else
``NO_PORTFOLIO_TITLE``): the key of its colour. ``requests`` rows (series: the portfolio)
count its requests, ``failed`` of them refused (status >= 400) or never answered,
``operations`` which (``getPortfolio x2, createDemoOrder``), ``detail`` who sent them.
``refused / errors`` rows count those, ``detail`` their answers (``403 InsufficientScope x2,
no answer``); ``trades`` rows count the trades that succeeded, ``detail`` their operations.
Marker rows have no ``failed`` or ``operations``. ``span`` names the bucket, ``width_ms`` is
90% of its length."""
MAX_BUCKETS = 60
BUCKET_STEPS = ("1m", "2m", "5m", "10m", "15m", "30m", "1h", "2h", "3h", "6h", "12h", "1d",
                "2d", "1w", "2w", "1mo", "3mo", "6mo", "1y")
"""The bucket widths ``bucket_freq`` chooses from, narrowest first."""
MAX_TICKS = 8
ACTIVITY_TICKS_SCHEMA = _schema({"at": UTC_US, "label": pl.String})
"""``activity_ticks``: the time axis's ticks, each with its label; no two labels alike."""

SCOPE_STATES = ("not granted", "granted, unused", "used", "refused")
SCOPE_USAGE_SCHEMA = _schema({
    "token_id": pl.String, "token": pl.String, "scope": pl.String, "scope_label": pl.String,
    "state": pl.Enum(SCOPE_STATES), "granted": pl.Boolean, "used": pl.Int64,
    "refused": pl.Int64, "verdict": pl.String, "text": pl.String,
})
"""``scope_usage_frame``: one row per token and scope, every pair of the two (tokens by
name then id, then scopes by name). ``state`` is ``used`` (answered 2xx at least once),
else ``granted, unused``, else ``refused`` (asked for without the grant), else ``not
granted``; ``verdict`` is the input's (``not granted`` where nothing was recorded);
``text`` the cell's: the used count, ``✕`` and the refused count, or nothing."""

TOKEN_STATUSES = ("active", "expiring", "expired", "revoked")
TOKEN_LIFETIMES_SCHEMA = _schema({
    "token_id": pl.String, "token": pl.String, "portfolio": pl.String, "application": pl.String,
    "scopes": pl.String, "status": pl.Enum(TOKEN_STATUSES), "start": UTC_US, "end": UTC_US,
    "ends": pl.String, "duration_ms": pl.Float64,
})
"""``token_lifetimes_frame``: one row per token, by portfolio name, creation time and id;
tokens without a creation time last, with no ``start`` (they are not drawn). ``status``
is taken at ``now``; ``end`` is the expiry, the revocation (the earlier of the two, for
a revoked token that had also expired) or ``now`` (never expires, or revoked at an
unknown time), and ``ends`` says which: ``expires``, ``expired``, ``revoked``,
``revoked (time unknown)`` or ``never expires``."""

PORTFOLIO_VALUE_SCHEMA = VALUE_HISTORY_SCHEMA
"""``portfolio_value_frame``: the history's rows with a time, by name then time; a
portfolio without a name is ``(unnamed)``."""

DELEGATION_KINDS = ("owner", "portfolio", "token", "application")
DELEGATION_NODES_SCHEMA = _schema({
    "node": pl.Int64, "kind": pl.Enum(DELEGATION_KINDS), "key": pl.String, "label": pl.String,
    "status": pl.String, "detail": pl.String,
})
"""``delegation_nodes``: the owner (node 0), then portfolios by name and id, their tokens
by name and id, and applications by name. ``key`` is the portfolio id, token id or
application; ``status`` a token's; ``detail`` is hover text (plotly's ``<br>`` breaks)."""
DELEGATION_LINKS_SCHEMA = _schema({
    "source": pl.Int64, "target": pl.Int64, "value": pl.Float64, "portfolio_id": pl.String,
    "status": pl.String, "detail": pl.String,
})
"""``delegation_links``: owner -> portfolio (``portfolio_id`` set; worth its token count,
or ``THIN_LINK`` without tokens), then portfolio -> token and token -> application (each
worth 1, with the token's ``status``), between ``delegation_nodes`` rows."""

REBALANCE_WEIGHTS_SCHEMA = _schema({
    "step": pl.Int64, "at": UTC_US, "phase": pl.String, "instrument": pl.String,
    "instrument_id": pl.Int64, "slot": pl.Int64, "target": pl.Float64, "weight": pl.Float64,
    "value_usd": pl.Float64,
})
"""``rebalance_weights_frame``: the weights by instrument (ids in order, cash last), then
step and phase (``before`` / ``after`` its orders). ``slot`` numbers the instruments with
an id from 0 (cash has none); ``target`` is the instrument's (none for cash)."""
REBALANCE_GAPS_SCHEMA = _schema({
    "step": pl.Int64, "at": UTC_US, "phase": pl.String, "gap": pl.Float64,
})
"""``rebalance_gaps_frame``: per step and phase, the largest gap between an instrument's
weight and its target."""
REBALANCE_EVENTS_SCHEMA = _schema({
    "step": pl.Int64, "at": UTC_US, "outcome": pl.String, "event": pl.String,
})
"""``rebalance_events_frame``: the steps refused (``event`` ``refused``) or at which the
agent stopped (``stopped``), by step."""


EXPOSURE_SERIES = ("gross exposure", "exposure limit", "daily loss", "loss limit")
EXPOSURE_SCHEMA = _schema({
    "ts": UTC_US, "panel": pl.Int64, "series": pl.Enum(EXPOSURE_SERIES), "value_usd": pl.Float64,
    "event": pl.String,
})
"""``exposure_frame``: an agent portfolio's book over time, one row per series and event
that carries it, by series then time. Panel 1: ``gross exposure`` and the tightest
``exposure limit`` in effect; panel 2: the UTC day's realised ``daily loss`` (0 while the
day is in profit; the worst case for closes since the last read) and the ``loss limit``.
``event`` is the ledger event the figure comes from."""
EXPOSURE_MARKS = ("refused locally", "refused by the server", "paused", "resumed", "policy set",
                  "stopped")
EXPOSURE_MARKS_SCHEMA = _schema({
    "ts": UTC_US, "panel": pl.Int64, "mark": pl.Enum(EXPOSURE_MARKS), "value_usd": pl.Float64,
    "text": pl.String,
})
"""``exposure_marks_frame``: what happened to the agent portfolio, by time. Refusals are
points (panel 2 for the daily loss rule, else 1) at the book's figure when they happened
(a server refusal at the last one recorded before it); the owner's ``paused``,
``resumed`` and ``policy set`` and the session's ``stopped`` are lines across both panels
(panel 0, no value). ``text`` is the hover text: rule, limit and attempted value; the
server's answer; a reason; a policy's version and what it loosened."""


# -- checks and shared expressions ---------------------------------------------------------
def _require(frame: pl.DataFrame, columns: Iterable[str], what: str, hint: str = "") -> None:
    if not isinstance(frame, pl.DataFrame):
        raise TypeError(f"{what}: expected a polars DataFrame, got {type(frame).__name__}"
                        " (collect a LazyFrame first)")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {', '.join(missing)}{hint}")


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


def utc(value: datetime) -> datetime:
    """A time in UTC; a naive one is taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _check_freq(freq: str) -> None:
    if not isinstance(freq, str):
        raise ValueError(f"freq: {freq!r} is not a polars duration such as '15m', '1h' or '1d'")
    _check_duration(freq)


@functools.cache  # a handful of strings, each checked on every chart drawn
def _check_duration(freq: str) -> None:
    ref = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        end = pl.select(pl.lit(ref).dt.offset_by(freq)).item()
        pl.select(pl.lit(ref).dt.truncate(freq))
    except (pl.exceptions.PolarsError, ValueError, TypeError) as exc:
        raise ValueError(f"freq: {freq!r} is not a polars duration such as '15m', '1h' or "
                         f"'1d' ({exc.__class__.__name__})") from None
    if not end > ref:
        raise ValueError(f"freq: {freq!r} must be a positive duration such as '15m', '1h' or '1d'")


def _short(ids: pl.Expr) -> pl.Expr:
    """Ids longer than ten characters cut to their first eight and ``…``."""
    return pl.when(ids.str.len_chars() <= 10).then(ids).otherwise(ids.str.slice(0, 8) + "…")


def _blank(text: pl.Expr) -> pl.Expr:
    return text.is_null() | (text == "")


def _named(name: str, id_column: str) -> pl.Expr:
    """``name (short id)``, or the short id alone for a thing without a name."""
    short = _short(pl.col(id_column))
    return pl.when(_blank(pl.col(name))).then(short).otherwise(pl.format("{} ({})", pl.col(name), short))


def _shape(frame: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    return frame.select([pl.col(name).cast(dtype) for name, dtype in schema.items()])


# -- activity -----------------------------------------------------------------------------
_BUCKET = ["panel_title", "portfolio", "bucket_mid", "width_ms", "span"]  # a bucket's, in a panel


@functools.cache  # a handful of strings, each looked up many times per chart
def _step(freq: str) -> timedelta:
    """A duration's nominal length (from 2026-01-01: a month is 31 days, a year 365)."""
    ref = datetime(2026, 1, 1, tzinfo=UTC)
    end: datetime = pl.select(pl.lit(ref).dt.offset_by(freq)).item()
    return end - ref


def bucket_freq(start: datetime, end: datetime, freq: str | None = None) -> str:
    """The bucket width for the window ``[start, end)``: ``freq`` when it cuts the window into
    at most ``MAX_BUCKETS`` buckets, else (and when it is None) the narrowest of
    ``BUCKET_STEPS`` that does and is no narrower than ``freq``."""
    if freq is not None:
        _check_freq(freq)
    span = max(utc(end) - utc(start), timedelta(minutes=1))
    floor = _step(freq) if freq is not None else timedelta(0)
    if freq is not None and span / floor <= MAX_BUCKETS:
        return freq
    for step in BUCKET_STEPS:
        if _step(step) >= floor and span / _step(step) <= MAX_BUCKETS:
            return step
    return BUCKET_STEPS[-1]


def activity_window(usage: pl.DataFrame, window: tuple[datetime, datetime] | None = None
                    ) -> tuple[datetime, datetime]:
    """The time window an activity chart covers: ``window`` (naive: UTC), else from the
    first to the last request of ``usage`` (at least a minute; an hour ending now-less at
    the epoch when there is none)."""
    if window is not None:
        start, end = utc(window[0]), utc(window[1])
        if not end > start:
            raise ValueError(f"window: the end ({end}) must come after the start ({start})")
        return start, end
    _require(usage, ("ts",), "usage")
    times = _as_utc(usage.select("ts"), ["ts"], "usage")["ts"].drop_nulls()
    if times.is_empty():
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        return epoch, epoch + timedelta(hours=1)
    first, last = times.min(), times.max()
    assert isinstance(first, datetime) and isinstance(last, datetime)
    return first, max(last + timedelta(seconds=1), first + timedelta(minutes=1))


def activity_ticks(start: datetime, end: datetime) -> pl.DataFrame:
    """At most ``MAX_TICKS`` ticks on round times of ``[start, end]``, labelled as precisely as
    their spacing needs and with the date wherever the times alone would repeat
    (``ACTIVITY_TICKS_SCHEMA``)."""
    start, end = utc(start), utc(end)
    span = max(end - start, timedelta(minutes=1))
    step = next((s for s in BUCKET_STEPS if span / _step(s) < MAX_TICKS), BUCKET_STEPS[-1])
    at = pl.datetime_range(pl.lit(start).dt.truncate(step), end, interval=step, time_zone="UTC")
    ticks: list[datetime] = (pl.select(at=at).filter(pl.col("at") >= start)["at"].to_list())
    if _step(step) >= timedelta(days=365):
        fmt = "%Y"
    elif _step(step) >= timedelta(days=28):
        fmt = "%b %Y"
    elif _step(step) >= timedelta(days=1):
        fmt = "%b %d" if start.year == end.year else "%Y-%m-%d"
    else:
        fmt = "%H:%M" if start.date() == end.date() else "%b %d %H:%M"
    labels = [t.strftime(fmt) for t in ticks]
    if len(set(labels)) < len(labels):  # a coarse format met a finer step: spell it out
        labels = [t.strftime("%Y-%m-%d %H:%M") for t in ticks]
    return pl.DataFrame({"at": ticks, "label": labels}, schema=ACTIVITY_TICKS_SCHEMA)


def activity_frame(usage: pl.DataFrame, *, freq: str | None = None,
                   portfolio_names: Mapping[str, str] | None = None,
                   window: tuple[datetime, datetime] | None = None) -> pl.DataFrame:
    """Requests, refusals and trades per portfolio and time bucket (``ACTIVITY_SCHEMA``).

    Counts the ``outcome`` rows of a ``frames.usage(...)`` (or ``frames.requests(...)``)
    frame, and the ``intent`` rows that have no outcome (never answered: failed, with no
    status). A trade is a request of an operation that opens or closes a position
    (``operations.trade_operations()``) answered 2xx. Portfolios are panels by name
    (``portfolio_names``, id -> name; unnamed ones after, by id); requests without a
    portfolio (owner calls) get the last panel. Buckets are ``bucket_freq(window, freq)``
    wide: ``freq`` (a polars duration) unless the window would hold more than
    ``MAX_BUCKETS`` of them; ``window`` defaults to ``activity_window(usage)``.
    """
    _require(usage, ("ts", "phase", "request_id", "attempt", "principal", "portfolio_id",
                     "token_id", "operation_id", "status", "error_code"), "usage")
    freq = bucket_freq(*activity_window(usage, window), freq)
    # Few polars calls, each doing much: on a chart's few hundred rows every call costs about
    # the same whatever it does, and the chart is drawn on every refresh of the cockpit.
    phase, timed = pl.col("phase"), pl.col("ts").is_not_null()
    answered = (((phase == "outcome") & timed).any().over("request_id", "attempt")
                & pl.col("attempt").is_not_null())  # an intent with an outcome of its attempt
    rows = (_as_utc(usage, ["ts"], "usage")
            .filter(timed, (phase == "outcome") | ((phase == "intent")
                                                  & pl.col("request_id").is_not_null() & ~answered))
            .with_columns(status=pl.when(phase == "outcome").then("status")))
    if rows.is_empty():
        return ACTIVITY_SCHEMA.to_frame()
    # Each request counts once in its portfolio's bars, and once more under a marker when it
    # failed (by its answer) or traded (by its operation): one row per mark it counts in.
    marks = (_request_rows(rows, freq, portfolio_names or {})
             .with_columns(mark=pl.concat_list(
                 pl.lit("requests"), pl.when("failed").then(pl.lit("refused / errors")),
                 pl.when("trade").then(pl.lit("trades"))).list.drop_nulls())
             .explode("mark")
             .with_columns(what=pl.when(pl.col("mark") == "refused / errors").then("answer")
                           .otherwise("operation")))
    counted = pl.when(pl.col("n") > 1).then(pl.format("{} x{}", "what", "n")).otherwise("what")
    requests = pl.col("mark") == "requests"
    out = (marks.group_by("panel", "bucket", "mark", "what")
           .agg(pl.col(_BUCKET).first(), n=pl.len(), failed=pl.col("failed").sum(),
                who=pl.col("who"))
           .group_by("panel", "bucket", "mark")
           .agg(pl.col(_BUCKET).first(), count=pl.col("n").sum(),
                failed=pl.col("failed").sum(), counted=counted.sort_by("what").str.join(", "),
                who=pl.col("who").list.explode(keep_nulls=False, empty_as_null=False)
                .unique().sort().str.join(", "))
           .with_columns(series=pl.when(requests).then("portfolio").otherwise("mark"),
                         failed=pl.when(requests).then("failed"),
                         operations=pl.when(requests).then("counted"),
                         detail=pl.when(requests).then("who").otherwise("counted")))
    return _shape(out, ACTIVITY_SCHEMA).sort("panel", "mark", "series", "bucket_mid")


def _request_rows(rows: pl.DataFrame, freq: str, names: Mapping[str, str]) -> pl.DataFrame:
    """Each request with its bucket, the bucket's middle, width and span, and whether it
    failed or was a trade; ``who`` sent it (a short token id, else the principal); its
    portfolio's ``panel`` (by name, unnamed ones after by id, owner calls last), the panel's
    title and the portfolio's label (its name, else short id: the key of its colour)."""
    owner = pl.col("portfolio_id").is_null()
    name = pl.col("portfolio_id").replace_strict(dict(names), default=None, return_dtype=pl.String)
    short = _short(pl.col("portfolio_id"))
    return rows.with_columns(
        bucket=pl.col("ts").dt.truncate(freq),
        portfolio=pl.col("portfolio_id").fill_null(NO_PORTFOLIO),
        operation=pl.col("operation_id").fill_null("unknown"),
        failed=pl.col("status").is_null() | (pl.col("status") >= 400),
        who=_short(pl.col("token_id")).fill_null(pl.col("principal")).fill_null("owner"),
        name=name,
    ).with_columns(
        end=pl.col("bucket").dt.offset_by(freq),
        trade=(pl.col("operation").is_in(sorted(trade_operations()))
               & pl.col("status").is_between(200, 299)).fill_null(False),
        answer=pl.when(pl.col("status").is_null()).then(pl.lit("no answer"))
        .otherwise(pl.concat_str(pl.col("status").cast(pl.String),
                                 pl.col("error_code").fill_null(""), separator=" ")
                   .str.strip_chars()),
        # Panels in order of (owner calls last, name, unnamed last, id), numbered from 1.
        panel=pl.struct(owner, pl.col("name").fill_null("\uffff"), pl.col("portfolio"))
        .rank("dense").cast(pl.Int64),
        panel_title=pl.when(owner).then(pl.lit(NO_PORTFOLIO_TITLE))
        .when(pl.col("name").is_not_null()).then(pl.format("{} ({})", "name", short))
        .otherwise(short),
        label=pl.when(owner).then(pl.lit(NO_PORTFOLIO_TITLE)).otherwise(pl.coalesce("name", short)),
    ).with_columns(
        portfolio=pl.col("label"),
        bucket_mid=pl.col("bucket") + (pl.col("end") - pl.col("bucket")) / 2,
        width_ms=(pl.col("end") - pl.col("bucket")).dt.total_milliseconds() * 0.9,
        span=pl.concat_str(
            pl.col("bucket").dt.strftime("%Y-%m-%d %H:%M"), pl.lit(" to "),
            pl.when(pl.col("end").dt.date() == pl.col("bucket").dt.date())
            .then(pl.col("end").dt.strftime("%H:%M"))
            .otherwise(pl.col("end").dt.strftime("%Y-%m-%d %H:%M")), pl.lit(" UTC")),
    )


# -- scope usage --------------------------------------------------------------------------
# scope_usage_frame's columns, made once: making them costs about as much as running them on
# the small frames a panel shows. The grid's cells come from a left join: ``scope_right`` is
# null where nothing was recorded, and so are the counts.
_USED, _REFUSED = pl.col("used").fill_null(0), pl.col("refused").fill_null(0)
_GRANTED = pl.col("granted").fill_null(False)
_SCOPE_USAGE_COLUMNS = {
    "token_id": pl.col("token_id"), "token": _named("token_name", "token_id"),
    "scope": pl.col("scope"), "scope_label": pl.col("scope").str.strip_prefix(SCOPE_PREFIX),
    "state": pl.when(_USED > 0).then(pl.lit("used"))
    .when(_GRANTED).then(pl.lit("granted, unused"))
    .when(_REFUSED > 0).then(pl.lit("refused"))
    .otherwise(pl.lit("not granted")).cast(SCOPE_USAGE_SCHEMA["state"]),
    "granted": _GRANTED, "used": _USED, "refused": _REFUSED,
    "verdict": pl.when(pl.col("scope_right").is_null()).then(pl.lit("not granted"))
    .otherwise(pl.col("verdict").fill_null("")),
    "text": pl.when(_USED != 0).then(_USED.cast(pl.String))
    .when(_REFUSED != 0).then("✕" + _REFUSED.cast(pl.String))
    .otherwise(pl.lit("")),
}
_SCOPE_USAGE_SELECT = [_SCOPE_USAGE_COLUMNS[name].alias(name) for name in SCOPE_USAGE_SCHEMA]


def scope_usage_frame(least_privilege: pl.DataFrame) -> pl.DataFrame:
    """The tokens x scopes grid of a ``frames.least_privilege(...)`` frame
    (``SCOPE_USAGE_SCHEMA``). A token's name is its first one given; a pair given twice
    is taken from its last row."""
    _require(least_privilege, ("token_id", "token_name", "scope", "granted", "used", "refused",
                               "verdict"), "least_privilege")
    # Few eager steps, filters and casts only where needed: on the small frames a panel
    # shows, each step costs more than its data. A blank name is labelled as a missing one,
    # and "" sorts the same.
    frame = least_privilege
    if frame.get_column("token_id").has_nulls() or frame.get_column("scope").has_nulls():
        frame = frame.filter(pl.col("token_id").is_not_null(), pl.col("scope").is_not_null())
    tokens = frame.group_by("token_id").agg(pl.col("token_name").drop_nulls().first().fill_null(""))
    grid = (tokens.join(frame.select(pl.col("scope").unique()), how="cross")
            .join(frame.unique(["token_id", "scope"], keep="last"), on=["token_id", "scope"],
                  how="left", coalesce=False))
    # in drawing order (token ids are unique)
    shaped = grid.sort("token_name", "token_id", "scope").select(_SCOPE_USAGE_SELECT)
    return shaped if shaped.schema == SCOPE_USAGE_SCHEMA else shaped.cast(SCOPE_USAGE_SCHEMA)


# -- token lifetimes ----------------------------------------------------------------------
def token_lifetimes_frame(tokens: pl.DataFrame, *, now: datetime,
                          expiring_within: timedelta = timedelta(days=7)) -> pl.DataFrame:
    """Each token's lifetime and status at ``now`` (naive: UTC) from a ``frames.tokens(...)``
    frame (``TOKEN_LIFETIMES_SCHEMA``). A token is ``revoked`` when its ``status`` says so
    or it has a revocation time, else as ``frames.token_status`` finds at ``now``."""
    _require(tokens, ("portfolio_name", "token_id", "token_name", "application", "scopes",
                      "created_at", "expires_at", "revoked_at", "status"), "tokens")
    times = ["created_at", "expires_at", "revoked_at"]
    # Few eager steps, filters, conversions and casts only where needed (frames.tokens gives
    # UTC microseconds): on the small frames a panel shows, each step costs more than its data.
    # ``now`` is made from its microseconds (pl.lit(datetime) builds a Series).
    if any(tokens.schema[name] != UTC_US for name in times):
        tokens = _as_utc(tokens, times, "tokens")
    if tokens.get_column("token_id").has_nulls():
        tokens = tokens.filter(pl.col("token_id").is_not_null())
    schema = tokens.schema
    created, expires, revoked_at = (
        pl.col(name) if schema[name] == UTC_US else pl.col(name).dt.cast_time_unit("us")
        for name in times)
    at = pl.lit((utc(now) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)).cast(UTC_US)
    # frames.token_status at ``now``, as an expression
    revoked = (pl.col("status") == "revoked") | revoked_at.is_not_null()
    status = (pl.when(revoked).then(pl.lit("revoked")).when(expires <= at).then(pl.lit("expired"))
              .when(expires - at <= expiring_within).then(pl.lit("expiring"))
              .otherwise(pl.lit("active")))
    ended = pl.min_horizontal(expires, revoked_at)
    end = pl.when(revoked).then(ended).otherwise(expires).fill_null(at)
    scopes = pl.col("scopes").list.join(", ")
    order = (created.is_null(), pl.col("portfolio_name").fill_null("\uffff"), created, "token_id")
    shaped = tokens.sort(*order).select(
        "token_id", token=_named("token_name", "token_id"),
        portfolio=pl.when(_blank(pl.col("portfolio_name"))).then(pl.lit("—"))
        .otherwise("portfolio_name"),
        application=pl.when(_blank(pl.col("application"))).then(pl.lit("unknown"))
        .otherwise("application"),
        scopes=pl.when(scopes != "").then(scopes).otherwise(pl.lit("—")),  # null or ""
        status=status.cast(TOKEN_LIFETIMES_SCHEMA["status"]), start=created, end=end,
        ends=pl.when(revoked).then(pl.when(ended.is_null()).then(pl.lit("revoked (time unknown)"))
                                   .otherwise(pl.lit("revoked")))
        .when(expires.is_null()).then(pl.lit("never expires"))
        .when(expires <= at).then(pl.lit("expired"))
        .otherwise(pl.lit("expires")),
        # as timedelta.total_seconds() * 1000 does it, to the last bit
        duration_ms=(end - created).dt.total_microseconds() / 1_000_000 * 1000)
    return shaped if shaped.schema == TOKEN_LIFETIMES_SCHEMA else shaped.cast(TOKEN_LIFETIMES_SCHEMA)


# -- portfolio value ----------------------------------------------------------------------
def portfolio_value_frame(history: pl.DataFrame) -> pl.DataFrame:
    """The rows of a value history (``VALUE_HISTORY_SCHEMA``, e.g. ``frames.value_snapshot``
    rows over time) ready to draw (``PORTFOLIO_VALUE_SCHEMA``)."""
    _require(history, tuple(VALUE_HISTORY_SCHEMA), "history")
    frame = _as_utc(history, ["ts"], "history").filter(pl.col("ts").is_not_null())
    frame = frame.with_columns(pl.col("name").fill_null("(unnamed)")).sort("name", "ts")
    return _shape(frame, PORTFOLIO_VALUE_SCHEMA)


# -- delegation map -----------------------------------------------------------------------
def _delegation(portfolios: pl.DataFrame, tokens: pl.DataFrame
                ) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Portfolios, tokens and applications, each in node order with its ``node``.

    A portfolio is named by its row in ``portfolios`` (the last), else by its first
    token's ``portfolio_name``, else by its short id."""
    _require(portfolios, ("portfolio_id", "name"), "portfolios")
    _require(tokens, ("portfolio_id", "portfolio_name", "token_id", "token_name",
                      "application", "scopes", "status"), "tokens")
    known = portfolios.filter(pl.col("portfolio_id").is_not_null())
    toks = tokens.filter(pl.col("token_id").is_not_null(), pl.col("portfolio_id").is_not_null())
    short = _short(pl.col("portfolio_id"))

    def name(frame: pl.DataFrame, column: str, keep: Literal["first", "last"]) -> pl.DataFrame:
        rows = frame.unique("portfolio_id", keep=keep, maintain_order=True)
        return rows.select("portfolio_id", pl.when(_blank(pl.col(column))).then(short)
                           .otherwise(pl.col(column)).alias(column))

    ports = (name(toks, "portfolio_name", "first")
             .join(name(known, "name", "last"), on="portfolio_id", how="full", coalesce=True)
             .select("portfolio_id", name=pl.coalesce("name", "portfolio_name"))
             .join(toks.group_by("portfolio_id").agg(tokens=pl.len()), on="portfolio_id", how="left")
             .with_columns(pl.col("tokens").fill_null(0))
             .sort("name", "portfolio_id").with_row_index("node", offset=1))
    toks = (toks.with_columns(pl.col("application").fill_null("unknown"),
                              pl.col("token_name").fill_null(""))
            .join(ports.select("portfolio_id", portfolio_node="node"), on="portfolio_id")
            .sort("portfolio_node", "token_name", "token_id")
            .with_row_index("node", offset=1 + ports.height))
    apps = (toks.group_by("application").agg(tokens=pl.len()).sort("application")
            .with_row_index("node", offset=1 + ports.height + toks.height))
    toks = toks.join(apps.select("application", application_node="node"), on="application",
                     maintain_order="left")
    return ports, toks, apps


def _scope_text(scopes: pl.Expr) -> pl.Expr:
    """Scopes without their prefix (``SCOPE_PREFIX``), comma separated; ``none`` if none."""
    text = scopes.list.eval(pl.element().str.strip_prefix(SCOPE_PREFIX)).list.join(", ")
    return pl.when(_blank(text)).then(pl.lit("none")).otherwise(text)


def delegation_nodes(portfolios: pl.DataFrame, tokens: pl.DataFrame, *,
                     owner: str = "owner") -> pl.DataFrame:
    """The Sankey's nodes (``DELEGATION_NODES_SCHEMA``) from ``frames.portfolios(...)`` and
    ``frames.tokens(...)``: tokens of portfolios missing from ``portfolios`` (revoked with
    a deleted portfolio) are kept, under their portfolio; no rows when there is neither
    a portfolio nor a token."""
    ports, toks, apps = _delegation(portfolios, tokens)
    if ports.is_empty():
        return DELEGATION_NODES_SCHEMA.to_frame()
    head = pl.DataFrame({"node": [0], "kind": ["owner"], "key": [owner], "label": [owner],
                         "detail": [f"{ports.height} agent portfolio(s), {toks.height} token(s)"]})
    token_name = pl.when(pl.col("token_name") == "").then(_short(pl.col("token_id")))
    nodes = [
        head,
        ports.select("node", kind=pl.lit("portfolio"), key="portfolio_id", label="name",
                     detail=pl.format("portfolio {}<br>tokens: {}", _short(pl.col("portfolio_id")),
                                      "tokens")),
        toks.select("node", kind=pl.lit("token"), key="token_id",
                    label=pl.format("{} ({})", token_name.otherwise("token_name"), "status"),
                    status="status", detail=pl.format("token {}<br>scopes: {}",
                                                      _short(pl.col("token_id")),
                                                      _scope_text(pl.col("scopes")))),
        apps.select("node", kind=pl.lit("application"), key="application", label="application",
                    detail=pl.format("application<br>tokens: {}", "tokens")),
    ]
    return _shape(pl.concat(nodes, how="diagonal_relaxed"), DELEGATION_NODES_SCHEMA)


def delegation_links(portfolios: pl.DataFrame, tokens: pl.DataFrame) -> pl.DataFrame:
    """The Sankey's links (``DELEGATION_LINKS_SCHEMA``) between ``delegation_nodes`` of the
    same frames."""
    ports, toks, _ = _delegation(portfolios, tokens)
    scopes = pl.format("scopes: {}", _scope_text(pl.col("scopes")))
    links = [
        ports.select(source=pl.lit(0), target="node", portfolio_id="portfolio_id",
                     value=pl.when(pl.col("tokens") > 0).then(pl.col("tokens").cast(pl.Float64))
                     .otherwise(pl.lit(THIN_LINK)),
                     detail=pl.when(pl.col("tokens") > 0).then(pl.format("tokens: {}", "tokens"))
                     .otherwise(pl.lit("no tokens"))),
        toks.select(source="portfolio_node", target="node", value=pl.lit(1.0), status="status",
                    detail=scopes),
        toks.select(source="node", target="application_node", value=pl.lit(1.0), status="status",
                    detail=pl.format("{}<br>status: {}", scopes, "status")),
    ]
    return _shape(pl.concat(links, how="diagonal_relaxed"), DELEGATION_LINKS_SCHEMA)


# -- the rebalancer's run -----------------------------------------------------------------
def _weights(weights: pl.DataFrame) -> pl.DataFrame:
    _require(weights, WEIGHTS_SCHEMA, "weights", " (use weights_frame())")
    return _as_utc(weights, ["at"], "weights").with_columns(
        order=pl.when(pl.col("phase") == "before").then(0).otherwise(1))


def rebalance_weights_frame(weights: pl.DataFrame) -> pl.DataFrame:
    """A ``Rebalancer.weights_frame()`` in drawing order (``REBALANCE_WEIGHTS_SCHEMA``)."""
    frame = _weights(weights)
    series = (frame.group_by("instrument").agg(pl.col("instrument_id").first())
              .sort(pl.col("instrument_id").is_null(), "instrument_id", "instrument")
              .with_row_index("series")
              .with_columns(slot=pl.when(pl.col("instrument_id").is_not_null())
                            .then(pl.col("instrument_id").is_not_null().cast(pl.Int64).cum_sum() - 1)))
    frame = (frame.drop("instrument_id").join(series, on="instrument")
             .sort("series", "step", "order")
             .with_columns(target=pl.when(pl.col("instrument_id").is_not_null())
                           .then(pl.col("target").drop_nulls().first().over("series"))))
    return _shape(frame, REBALANCE_WEIGHTS_SCHEMA)


def rebalance_gaps_frame(weights: pl.DataFrame) -> pl.DataFrame:
    """The largest gap to a target per step and phase of a ``Rebalancer.weights_frame()``
    (``REBALANCE_GAPS_SCHEMA``); cash, which has no target, does not count."""
    gaps = (_weights(weights).filter(pl.col("target").is_not_null())
            .group_by("step", "at", "phase", "order")
            .agg(gap=(pl.col("weight") - pl.col("target")).abs().max())
            .sort("step", "order"))
    return _shape(gaps, REBALANCE_GAPS_SCHEMA)


def rebalance_events_frame(steps: pl.DataFrame) -> pl.DataFrame:
    """The refused and stopped steps of a ``Rebalancer.steps_frame()``
    (``REBALANCE_EVENTS_SCHEMA``)."""
    _require(steps, ("step", "at", "outcome"), "steps", " (use steps_frame())")
    event = pl.col("outcome").str.extract(r"^(refused|stopped)")
    frame = _as_utc(steps, ["at"], "steps").with_columns(event=event).filter(
        pl.col("event").is_not_null()).sort("step", maintain_order=True)
    return _shape(frame, REBALANCE_EVENTS_SCHEMA)


# -- risk boundaries ----------------------------------------------------------------------
_BOOK_EVENTS = ("order_booked", "book_reconciled", "policy_refused", "session_stopped")


def _agent_events(events: pl.DataFrame, portfolio: str | None) -> pl.DataFrame:
    """A ``frames.policy_events`` frame, checked, narrowed to one portfolio (the only one
    it holds, when none is named), in time order."""
    _require(events, POLICY_EVENTS_SCHEMA, "policy_events", " (use frames.policy_events())")
    frame = _as_utc(events, ["ts"], "policy_events")
    if portfolio is None:
        found = frame["portfolio_id"].drop_nulls().unique().sort().to_list()
        if len(found) > 1:
            raise ValueError(f"policy_events holds {len(found)} agent portfolios "
                             f"({', '.join(found)}): name one with portfolio=")
        if not found:
            return frame.clear()
        portfolio = found[0]
    return frame.filter(pl.col("portfolio_id") == portfolio).sort("ts", maintain_order=True)


def exposure_frame(events: pl.DataFrame, *, portfolio: str | None = None) -> pl.DataFrame:
    """The book's figures over time (``EXPOSURE_SCHEMA``) from a ``frames.policy_events``
    frame; ``portfolio`` picks one when it holds several."""
    book = _agent_events(events, portfolio).filter(pl.col("kind").is_in(_BOOK_EVENTS),
                                                   pl.col("gross_exposure_usd").is_not_null())
    realized = pl.col("realized_pnl_today_usd")
    loss = pl.when(realized.is_not_null()).then(pl.max_horizontal(-realized, pl.lit(0.0)))
    values = {"gross exposure": pl.col("gross_exposure_usd"),
              "exposure limit": pl.col("exposure_limit_usd"), "daily loss": loss,
              "loss limit": pl.col("loss_limit_usd")}
    parts = [book.select("ts", panel=pl.lit(1 if i < 2 else 2), series=pl.lit(name),
                         value_usd=value.cast(pl.Float64), event="kind")
             for i, (name, value) in enumerate(values.items())]
    frame = pl.concat(parts).filter(pl.col("value_usd").is_not_null())
    return _shape(frame.with_row_index("order").sort("panel", pl.col("series").cast(
        pl.Enum(EXPOSURE_SERIES)), "order"), EXPOSURE_SCHEMA)


def exposure_marks_frame(events: pl.DataFrame, *, portfolio: str | None = None) -> pl.DataFrame:
    """Refusals, pauses, resumes, policy versions and stops (``EXPOSURE_MARKS_SCHEMA``)
    from a ``frames.policy_events`` frame."""
    frame = _agent_events(events, portfolio)
    book = (frame.filter(pl.col("gross_exposure_usd").is_not_null())
            .select("ts", last_exposure=pl.col("gross_exposure_usd")))
    frame = frame.join_asof(book, on="ts", strategy="backward")
    kind, rule = pl.col("kind"), pl.col("rule")
    loss_rule = rule == "max_daily_loss_usd"
    mark = (pl.when(kind == "policy_refused").then(pl.lit("refused locally"))
            .when(kind == "server_refused").then(pl.lit("refused by the server"))
            .when(kind == "agent_paused").then(pl.lit("paused"))
            .when(kind == "agent_resumed").then(pl.lit("resumed"))
            .when((kind == "policy_set") & pl.col("phase").ne_missing("failed"))
            .then(pl.lit("policy set"))
            .when(kind == "session_stopped").then(pl.lit("stopped")))
    panel = (pl.when(kind == "policy_refused").then(pl.when(loss_rule).then(2).otherwise(1))
             .when(kind == "server_refused").then(1).otherwise(0))
    value = (pl.when(kind == "policy_refused")
             .then(pl.when(loss_rule).then(pl.col("attempted_value"))
                   .otherwise(pl.col("gross_exposure_usd")))
             .when(kind == "server_refused").then(pl.col("last_exposure")))
    loosened = pl.col("loosens").list.join("; ")
    text = (pl.when(kind == "policy_refused")
            .then(pl.format("refused locally: {} (limit {}, attempted {})", rule,
                            pl.col("limit").fill_null("none"), pl.col("attempted").fill_null("none")))
            .when(kind == "server_refused")
            .then(pl.format("refused by the server: {} {} ({})", pl.col("status"),
                            pl.col("error_code").fill_null("no errorCode"), pl.col("operation")))
            .when(kind == "policy_set")
            .then(pl.format("policy v{}{}", pl.col("policy_version"),
                            pl.when(loosened.fill_null("") != "")
                            .then(pl.format(": loosens {} (consent: {})", loosened,
                                            pl.col("consent").fill_null("none")))
                            .otherwise(pl.lit(""))))
            .otherwise(pl.col("reason").fill_null("")))
    marks = (frame.with_columns(mark=mark, panel=panel, value_usd=value.cast(pl.Float64),
                                text=text)
             .filter(pl.col("mark").is_not_null()))
    return _shape(marks, EXPOSURE_MARKS_SCHEMA)


__all__ = [
    "ACTIVITY_SCHEMA", "ACTIVITY_TICKS_SCHEMA", "BUCKET_STEPS", "DELEGATION_LINKS_SCHEMA",
    "DELEGATION_NODES_SCHEMA", "EXPOSURE_MARKS_SCHEMA", "EXPOSURE_SCHEMA", "MAX_BUCKETS",
    "MAX_TICKS", "PORTFOLIO_VALUE_SCHEMA", "REBALANCE_EVENTS_SCHEMA", "REBALANCE_GAPS_SCHEMA",
    "REBALANCE_WEIGHTS_SCHEMA", "SCOPE_STATES", "SCOPE_USAGE_SCHEMA", "THIN_LINK",
    "TOKEN_LIFETIMES_SCHEMA", "activity_frame", "activity_ticks", "activity_window",
    "bucket_freq", "delegation_links", "delegation_nodes", "exposure_frame",
    "exposure_marks_frame", "portfolio_value_frame", "rebalance_events_frame",
    "rebalance_gaps_frame", "rebalance_weights_frame", "scope_usage_frame",
    "token_lifetimes_frame",
]
