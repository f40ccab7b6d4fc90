"""Loaders that read a ledger (or frames) only: usage, requests, lifecycle, unfinished
changes, tokens and grants from the lifecycle, least privilege. Nothing here imports an
HTTP client: auditing a ledger file needs none."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, Protocol

import polars as pl

from etoro_nb import scopes
from etoro_nb.frames.common import (
    LEAST_PRIVILEGE_SCHEMA,
    LIFECYCLE_SCHEMA,
    POLICY_EVENTS_SCHEMA,
    SCOPES,
    TOKENS_SCHEMA,
    USAGE_SCHEMA,
    _schema,
    _token_row,
    _utc,
    frame_of,
    grants,
)
from etoro_nb.frames.replay import expirations, replay
from etoro_nb.ledger.tables import AGENT_KINDS, DELEGATION_KINDS


class EventSource(Protocol):
    """What the loaders read: a ``Ledger``, or a ``dataset.Dataset`` of many ledgers (its
    ``scan`` has the same surface and adds a ``ledger_id`` column)."""

    def scan(self, table: str, *, since: datetime | date | None = None,
             until: datetime | date | None = None, **equal: str | int | None) -> pl.LazyFrame: ...


def _us_to_utc(column: str | pl.Expr, name: str) -> pl.Expr:
    values = pl.col(column) if isinstance(column, str) else column
    return values.cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias(name)


def usage(ledger: EventSource, *, since: datetime | date | None = None,
          until: datetime | date | None = None, portfolio: str | None = None,
          token: str | None = None, phase: Literal["intent", "outcome"] | None = None,
          lazy: bool = False,
          schema_overrides: Mapping[str, Any] | None = None) -> pl.DataFrame | pl.LazyFrame:
    """The usage events, in ledger order: for every request attempt an ``intent`` row
    (written before it was sent) and an ``outcome`` row (status, error code, latency);
    an intent without an outcome is a request whose answer was never recorded.

    Filters: ``since`` (inclusive) and ``until`` (exclusive) on the timestamp, ``portfolio``
    and ``token`` ids, ``phase``. ``lazy=True`` returns the LazyFrame unevaluated.
    See ``requests()`` for one row per attempt.
    """
    frame = ledger.scan("usage_events", since=_utc(since), until=_utc(until),
                        portfolio_id=portfolio, token_id=token, phase=phase)
    result = (frame.with_columns(_us_to_utc("ts_us", "ts")).select(list(USAGE_SCHEMA))
              .cast(_schema(USAGE_SCHEMA, schema_overrides)))
    return result if lazy else result.collect()


def requests(ledger: EventSource, **filters: Any) -> pl.DataFrame:
    """One row per request attempt: its outcome, or its intent when no outcome was recorded
    (``status`` null: the process died, or the answer never came). Takes ``usage()``'s
    filters."""
    events = usage(ledger, lazy=True, **filters)
    assert isinstance(events, pl.LazyFrame)
    outcomes = events.filter(pl.col("phase") == "outcome")
    unanswered = events.filter(pl.col("phase") == "intent").join(
        outcomes.select("request_id", "attempt"), on=["request_id", "attempt"], how="anti")
    return pl.concat([outcomes, unanswered]).sort("seq").collect()


def _lifecycle_rows(ledger: EventSource, **filters: Any) -> pl.DataFrame:
    """Every stored lifecycle row (``Ledger.scan``'s ``filters``), decoded, with its
    ``phase`` (null: recorded after the fact, before phases existed)."""
    return (ledger.scan("lifecycle_events", **filters).collect()
            .with_columns(_us_to_utc("ts_us", "ts"), _us_to_utc("expires_at_us", "expires_at"),
                          pl.col("scopes").str.json_decode(SCOPES),
                          pl.col("ips_whitelist").str.json_decode(SCOPES)))


def lifecycle(ledger: EventSource, *, now: datetime | None = None,
              schema_overrides: Mapping[str, Any] | None = None) -> pl.DataFrame:
    """Delegation changes made, with ``token_expired`` derived for each token whose latest
    expiry has passed (at ``now``, default the current UTC time) without an earlier
    revocation. Every event of a token carries the name it was minted with; an update's
    changes are in ``detail``. Risk-boundary events (policies, pauses, an agent session's
    refusals and book) are not delegation changes: they are in ``policy_events()``.

    Only changes known to be made are here: the client records an *intent* before each
    change's request and its *outcome* after; an intent whose outcome was never recorded
    is in ``unfinished_changes()``, and a change the server refused is in neither."""
    now = _utc(now) or datetime.now(UTC)
    frame = (_lifecycle_rows(ledger)
             .filter(pl.col("phase").is_null() | (pl.col("phase") == "outcome"),
                     pl.col("kind").is_in(DELEGATION_KINDS))  # not policy_events' kinds
             .with_columns(pl.col("token_name").fill_null(
                 pl.col("token_name").drop_nulls().first().over("token_id")))
             .select(list(LIFECYCLE_SCHEMA)))
    derived = _expirations(frame, now)
    out = pl.concat([frame, derived]) if not derived.is_empty() else frame
    return out.sort("ts", "seq", nulls_last=True).cast(_schema(LIFECYCLE_SCHEMA,
                                                                schema_overrides))


def unfinished_changes(ledger: EventSource, *,
                       schema_overrides: Mapping[str, Any] | None = None) -> pl.DataFrame:
    """Delegation changes begun but never recorded as ended: intents with no outcome (and
    no ``failed`` row) under the same ``request_id``, in ledger order (``LIFECYCLE_SCHEMA``;
    ``kind`` is the change intended, the token columns what was asked for).

    Each one may or may not have happened: its answer was lost, the process died, or the
    ledger refused the outcome (the caller was warned). Compare with the API (e.g. a token
    minted that nobody holds the secret of: revoke it), or with ``usage()`` by
    ``request_id``.

    Examples
    --------
    >>> enb.frames.unfinished_changes(client.ledger)        # doctest: +SKIP
    """
    rows = _lifecycle_rows(ledger)
    ended = rows.filter(pl.col("phase").is_in(["outcome", "failed"])).select("request_id")
    return (rows.filter(pl.col("phase") == "intent")
            .join(ended, on="request_id", how="anti", nulls_equal=False)
            .select(list(LIFECYCLE_SCHEMA)).sort("seq")
            .cast(_schema(LIFECYCLE_SCHEMA, schema_overrides)))


def _expirations(events: pl.DataFrame, now: datetime) -> pl.DataFrame:
    derived = expirations(replay(events), now)
    return frame_of([{**dict.fromkeys(LIFECYCLE_SCHEMA), **row} for row in derived],
                    LIFECYCLE_SCHEMA, None)


def _first_granted(column: str) -> pl.Expr:
    """A token's first grant row's ``column``, on all its rows (null without a token id)."""
    return (pl.when(pl.col("token_id").is_not_null())
            .then(pl.col(column).filter(pl.col("granted").is_not_null()).first().over("token_id")))


# least_privilege's expressions, made once: making them costs about as much as running them
# on the small frames a panel shows, where each eager step also costs more than its data.
_AGENT_OUTCOMES = (pl.col("phase") == "outcome", pl.col("principal") == "agent",
                   pl.col("token_id").is_not_null(),
                   pl.col("scope_required").str.starts_with(scopes.PREFIX))
_COUNTS = {"used": pl.col("status").is_between(200, 299).sum().cast(pl.Int64),
           "refused": (pl.col("status") == 403).sum().cast(pl.Int64)}
_USED = pl.col("used").fill_null(0)
_LEAST_PRIVILEGE_COLUMNS = {
    "portfolio_id": _first_granted("portfolio_id"), "token_id": pl.col("token_id"),
    "token_name": _first_granted("token_name"), "scope": pl.col("scope"),
    "granted": pl.col("granted").fill_null(False), "used": _USED,
    "refused": pl.col("refused").fill_null(0),
    "verdict": pl.when(_USED > 0).then(pl.lit("needed"))
    .when(pl.col("granted")).then(pl.lit("unused")).otherwise(pl.lit("missing")),
    "suggested_scopes": pl.col("scope").filter(_USED > 0).sort()
    .over("token_id", mapping_strategy="join").fill_null(pl.lit([], dtype=SCOPES)),
}
_LEAST_PRIVILEGE_SELECT = [_LEAST_PRIVILEGE_COLUMNS[name].alias(name) for name in LEAST_PRIVILEGE_SCHEMA]


def least_privilege(grants: pl.DataFrame, usage_frame: pl.DataFrame, *,
                    since: datetime | date | None = None,
                    until: datetime | date | None = None) -> pl.DataFrame:
    """Per token and scope over a window: granted, used (answered 2xx), refused (403), and
    a verdict: ``needed`` (used), ``unused`` (granted, never used: narrow the grant) or
    ``missing`` (refused without the grant). ``suggested_scopes`` is the narrower grant
    that would have sufficed: the scopes the token used."""
    keep = list(_AGENT_OUTCOMES)
    start, end = _utc(since), _utc(until)
    if start is not None:
        keep.append(pl.col("ts") >= start)
    if end is not None:
        keep.append(pl.col("ts") < end)
    counted = (usage_frame.filter(keep).group_by("token_id", scope=pl.col("scope_required"))
               .agg(**_COUNTS))
    # Every grant row (duplicates too), in the grants' order, and every pair counted without
    # a grant (``granted`` null): a token's name (its first grant row's) and suggested scopes
    # are windows over its rows.
    joined = (grants.select("portfolio_id", "token_id", "token_name", "scope", granted=pl.lit(True))
              .join(counted, on=["token_id", "scope"], how="full", coalesce=True, maintain_order="left"))
    out = joined.select(_LEAST_PRIVILEGE_SELECT)
    if out.schema != LEAST_PRIVILEGE_SCHEMA:  # a cast per column costs more than these frames
        out = out.cast(LEAST_PRIVILEGE_SCHEMA)
    return out.sort("token_id", "scope")


def tokens_from_ledger(ledger: EventSource, *, now: datetime | date | None = None,
                       until: datetime | date | None = None,
                       expiring_within: timedelta = timedelta(days=7),
                       schema_overrides: Mapping[str, Any] | None = None) -> pl.DataFrame:
    """One row per token the ledger saw minted, from its lifecycle events alone (no API
    call): the same columns as ``tokens(client)``, for auditing any ledger file.

    Each token's ``scopes``, ``ips_whitelist`` and ``expires_at`` are the last ones it was
    given (minted, then each ``token_updated`` that changed them); ``revoked_at`` is its
    revocation or its portfolio's deletion, whichever came first; ``portfolio_name`` comes
    from the ``portfolio_created`` event (null if the ledger did not see it);
    ``application`` and ``client_id`` are null (the ledger does not record them).

    ``until`` (exclusive) ignores later events: the tokens as they stood then. ``status``
    and ``days_to_expiry`` are taken at ``now`` (default: ``until``, else the current UTC
    time), as in ``tokens()``. Tokens minted outside this ledger are not known to it, and
    only changes known to be made count (``lifecycle()``): ``unfinished_changes()`` lists
    the ones begun whose outcome was never recorded.
    """
    end = _utc(until)
    at = _utc(now) or end or datetime.now(UTC)
    events = lifecycle(ledger, now=at).filter(pl.col("seq").is_not_null())  # stored rows only
    if end is not None:
        events = events.filter(pl.col("ts") < end)
    rows = [_token_row(t.portfolio_id, t.portfolio_name, t.token_id, t.token_name,
                       None, None, t.scopes, t.ips_whitelist, t.minted_at, t.expires_at,
                       t.ended_at, at, expiring_within)
            for t in replay(events).values()]
    rows.sort(key=lambda r: (r["created_at"], r["token_id"]))
    return frame_of(rows, TOKENS_SCHEMA, schema_overrides)


def grants_from_ledger(ledger: EventSource, *, now: datetime | date | None = None,
                       until: datetime | date | None = None,
                       expiring_within: timedelta = timedelta(days=7),
                       schema_overrides: Mapping[str, Any] | None = None) -> pl.DataFrame:
    """One row per token and granted scope, from the ledger's lifecycle alone: the
    ``scope_grants(client)`` frame (``GRANTS_SCHEMA``) without calling the API, so
    ``least_privilege(grants_from_ledger(ledger), usage(ledger))`` audits any ledger file.

    The scopes are each token's last grant (minted or updated); revoked and expired tokens
    are included with their ``status``. Takes ``tokens_from_ledger()``'s options.

    Examples
    --------
    >>> ledger = Ledger("team-ledger.sqlite")                      # doctest: +SKIP
    >>> least_privilege(grants_from_ledger(ledger), usage(ledger, phase="outcome"))
    ...                                                            # doctest: +SKIP
    """
    return grants(tokens_from_ledger(ledger, now=now, until=until,
                                     expiring_within=expiring_within),
                  schema_overrides=schema_overrides)


_FROM_DETAIL = {
    "operation": pl.String, "rule": pl.String, "limit": pl.String, "attempted": pl.String,
    "policy_version": pl.Int64, "policy": pl.String, "consent": pl.String, "reason": pl.String,
    "gross_exposure_usd": pl.Float64, "exposure_limit_usd": pl.Float64,
    "realized_pnl_today_usd": pl.Float64, "loss_limit_usd": pl.Float64,
    "open_positions": pl.Int64, "orders_today": pl.Int64,
}


def policy_events(ledger: EventSource, *, portfolio: str | None = None,
                  since: datetime | date | None = None, server_refusals: bool = True,
                  schema_overrides: Mapping[str, Any] | None = None) -> pl.DataFrame:
    """The audit of risk boundaries (``POLICY_EVENTS_SCHEMA``), in time order: the owner's
    policy versions, pauses and resumes, each agent session's local refusals (nothing was
    sent), its book after each order and read, and its stop; with ``server_refusals`` also
    the trading orders the server refused, so the two kinds of refusal sit side by side.
    ``portfolio`` and ``since`` (inclusive) filter.

    Examples
    --------
    >>> enb.frames.policy_events(client.ledger).filter(kind="policy_refused")  # doctest: +SKIP
    """
    start = _utc(since)
    # An order of a batch is never later than its batch's row: filtering rows by ``since``
    # keeps every order at or after it (the orders before it go below).
    rows = _booked_orders(_lifecycle_rows(ledger, since=start, portfolio_id=portfolio)
                          .filter(pl.col("kind").is_in(AGENT_KINDS))
                          # before a batch of orders is split: its application is the batch's
                          .with_columns(application=pl.col("detail")
                                        .str.json_path_match("$.application")))
    owner = ("policy_set", "agent_paused", "agent_resumed")
    local = rows.with_columns(
        source=pl.when(pl.col("kind").is_in(owner)).then(pl.lit("owner")).otherwise(pl.lit("agent")),
        loosens=pl.col("detail").str.json_path_match("$.loosens").str.json_decode(SCOPES),
        # A session stopped by the server's 401/403 keeps that answer in its detail.
        status=pl.col("detail").str.json_path_match("$.status").cast(pl.Int64, strict=False),
        error_code=pl.col("detail").str.json_path_match("$.error_code"),
        **{name: pl.col("detail").str.json_path_match(f"$.{name}").cast(dtype, strict=False)
           for name, dtype in _FROM_DETAIL.items()})
    parts = [local.with_columns(_numbers()).select(list(POLICY_EVENTS_SCHEMA))]
    if server_refusals:
        parts.append(_server_refusals(ledger, portfolio, start))
    out = pl.concat(parts).cast(POLICY_EVENTS_SCHEMA)
    if portfolio is not None:
        out = out.filter(pl.col("portfolio_id") == portfolio)
    if start is not None:
        out = out.filter(pl.col("ts") >= start)
    # Ledger order within one instant (a simulated clock stands still); server rows after.
    return out.sort("ts", maintain_order=True).cast(_schema(POLICY_EVENTS_SCHEMA,
                                                             schema_overrides))


_BOOKED_ORDER = pl.Struct({
    "ts_us": pl.Int64, "request_id": pl.String, "operation": pl.String, "outcome": pl.String,
    "order_id": pl.Int64, "position_id": pl.Int64, "units": pl.Float64,
    "released_usd": pl.Float64, "instrument_id": pl.Int64, "symbol": pl.String,
    "amount_usd": pl.Float64, "leverage": pl.Int64, "gross_exposure_usd": pl.Float64,
    "exposure_limit_usd": pl.Float64, "realized_pnl_today_usd": pl.Float64,
    "loss_limit_usd": pl.Float64, "open_positions": pl.Int64, "orders_today": pl.Int64,
})
"""One order of an ``order_booked`` batch (``agent.events.BookLog``)."""


def _booked_orders(rows: pl.DataFrame) -> pl.DataFrame:
    """``order_booked`` rows hold a batch of orders (``detail.orders``): one row per order,
    with its own time, request id and detail."""
    batch = pl.col("kind") == "order_booked"
    order = pl.col("order")
    orders = (rows.filter(batch)
              .with_columns(order=pl.col("detail").str.json_path_match("$.orders")
                            .str.json_decode(pl.List(_BOOKED_ORDER)))
              .explode("order")
              .with_columns(ts=pl.coalesce(_us_to_utc(order.struct.field("ts_us"), "ts"),
                                           pl.col("ts")),
                            request_id=pl.coalesce(order.struct.field("request_id"),
                                                   pl.col("request_id")),
                            detail=pl.coalesce(order.struct.json_encode(), pl.col("detail")))
              .drop("order"))
    return pl.concat([rows.filter(~batch), orders]).sort("seq", maintain_order=True)


def _numbers() -> list[pl.Expr]:
    return [pl.col("limit").cast(pl.Float64, strict=False).alias("limit_value"),
            pl.col("attempted").cast(pl.Float64, strict=False).alias("attempted_value")]


def _server_refusals(ledger: EventSource, portfolio: str | None,
                     since: datetime | None) -> pl.DataFrame:
    """Agents' trading orders the server answered with a 4xx (one row per request)."""
    from etoro_nb.operations import trade_operations

    events = usage(ledger, phase="outcome", portfolio=portfolio, since=since, lazy=True)
    assert isinstance(events, pl.LazyFrame)
    refused = (events.filter(pl.col("principal") == "agent",
                             pl.col("operation_id").is_in(sorted(trade_operations())),
                             pl.col("status").is_between(400, 499))
               .unique("request_id", keep="last", maintain_order=True).collect())
    taken: dict[str, pl.Expr] = {
        "ts": pl.col("ts"), "kind": pl.lit("server_refused"), "phase": pl.col("phase"),
        "source": pl.lit("server"), "portfolio_id": pl.col("portfolio_id"),
        "token_id": pl.col("token_id"), "request_id": pl.col("request_id"),
        "operation": pl.col("operation_id"), "rule": pl.col("error_code"),
        "attempted": pl.col("operation_id"), "status": pl.col("status"),
        "error_code": pl.col("error_code"), "application": pl.col("application")}
    return refused.select([taken.get(name, pl.lit(None, dtype)).alias(name)
                           for name, dtype in POLICY_EVENTS_SCHEMA.items()])
