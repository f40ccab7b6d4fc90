"""polars loaders: portfolios, tokens, scope grants, usage, lifecycle (and unfinished
changes), least privilege, trades, positions, per-portfolio accounting, and the events of
risk boundaries (``policy_events``).

Every loader has keyword-only options and a declared schema (``*_SCHEMA`` below):
datetimes are ``Datetime("us", "UTC")``, scopes and whitelists ``List(String)``. Loaders
that take a client call the API; loaders that take a ledger read it (live SQLite rows
and sealed Parquet segments as one lazy frame) and never touch the network.

Examples
--------
>>> import etoro_nb as enb
>>> client = enb.connect()                                   # doctest: +SKIP
>>> enb.frames.tokens(client).filter(status="expiring")      # doctest: +SKIP
>>> enb.frames.usage(client.ledger, since=datetime(2026, 3, 1, tzinfo=UTC))  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from etoro_nb.ledger import Ledger
from etoro_nb.ledger.schema import AGENT_KINDS, DELEGATION_KINDS, LIFECYCLE_COLUMNS, USAGE_COLUMNS
from etoro_nb.ledger.sealing import STORED
from etoro_nb.progress import Progress

if TYPE_CHECKING:
    from etoro_nb.client import Client
    from etoro_nb.models import AgentPortfolio, Mirror, Position

UTC_US = pl.Datetime("us", "UTC")


def _declare(columns: dict[str, Any]) -> pl.Schema:
    return pl.Schema(columns)


SCOPES = pl.List(pl.String)

PORTFOLIOS_SCHEMA = _declare({
    "portfolio_id": pl.String, "name": pl.String, "gcid": pl.Int64,
    "virtual_balance": pl.Float64, "mirror_id": pl.Int64, "created_at": UTC_US,
    "token_count": pl.Int64, "investment_usd": pl.Float64, "mirror_available_usd": pl.Float64,
})
TOKENS_SCHEMA = _declare({
    "portfolio_id": pl.String, "portfolio_name": pl.String, "token_id": pl.String,
    "token_name": pl.String, "application": pl.String, "client_id": pl.String,
    "scopes": SCOPES, "ips_whitelist": SCOPES, "created_at": UTC_US, "expires_at": UTC_US,
    "revoked_at": UTC_US, "status": pl.String, "days_to_expiry": pl.Float64,
})
GRANTS_SCHEMA = _declare({
    "portfolio_id": pl.String, "portfolio_name": pl.String, "token_id": pl.String,
    "token_name": pl.String, "scope": pl.String, "status": pl.String,
})
USAGE_SCHEMA = _declare({
    "seq": pl.Int64, "ts": UTC_US, "phase": pl.String, "request_id": pl.String,
    "attempt": pl.Int64, "principal": pl.String, "portfolio_id": pl.String,
    "token_id": pl.String, "token_fingerprint": pl.String, "environment": pl.String,
    "method": pl.String, "route": pl.String, "operation_id": pl.String,
    "scope_required": pl.String, "status": pl.Int64, "error_code": pl.String,
    "latency_ms": pl.Float64,
})
LIFECYCLE_SCHEMA = _declare({
    "seq": pl.Int64, "ts": UTC_US, "request_id": pl.String, "kind": pl.String,
    "portfolio_id": pl.String, "token_id": pl.String, "token_name": pl.String,
    "scopes": SCOPES, "ips_whitelist": SCOPES, "expires_at": UTC_US, "detail": pl.String,
})
LEAST_PRIVILEGE_SCHEMA = _declare({
    "portfolio_id": pl.String, "token_id": pl.String, "token_name": pl.String,
    "scope": pl.String, "granted": pl.Boolean, "used": pl.Int64, "refused": pl.Int64,
    "verdict": pl.String, "suggested_scopes": SCOPES,
})
TRADES_SCHEMA = _declare({
    "position_id": pl.Int64, "instrument_id": pl.Int64, "is_buy": pl.Boolean,
    "leverage": pl.Int64, "units": pl.Float64, "open_rate": pl.Float64,
    "close_rate": pl.Float64, "opened_at": UTC_US, "closed_at": UTC_US,
    "net_profit": pl.Float64, "investment": pl.Float64, "order_id": pl.Int64,
    "parent_position_id": pl.Int64, "mirror_id": pl.Int64,
})
VALUE_HISTORY_SCHEMA = _declare({
    "ts": UTC_US, "name": pl.String, "agent_value_usd": pl.Float64,
    "mirror_value_usd": pl.Float64, "pnl_usd": pl.Float64,
})
"""One row per agent portfolio (by its unique name) and snapshot time: ``value_snapshot``
rows, the input of ``charts.portfolio_value``."""
POSITIONS_SCHEMA = _declare({
    "position_id": pl.Int64, "instrument_id": pl.Int64, "is_buy": pl.Boolean,
    "leverage": pl.Int64, "units": pl.Float64, "amount": pl.Float64,
    "open_rate": pl.Float64, "opened_at": UTC_US, "stop_loss_rate": pl.Float64,
    "take_profit_rate": pl.Float64, "unrealized_pnl": pl.Float64, "mirror_id": pl.Int64,
    "parent_position_id": pl.Int64,
})
ACCOUNTING_SCHEMA = _declare({
    "portfolio_id": pl.String, "name": pl.String, "mirror_id": pl.Int64,
    "investment_usd": pl.Float64, "mirror_value_usd": pl.Float64,
    "realized_pnl_usd": pl.Float64, "unrealized_pnl_usd": pl.Float64,
    "open_positions": pl.Int64, "trade_count": pl.Int64,
})


def _schema(base: pl.Schema, overrides: Mapping[str, Any] | None) -> pl.Schema:
    return pl.Schema({**dict(base), **dict(overrides or {})})


def frame_of(rows: list[dict[str, Any]], schema: pl.Schema,
             overrides: Mapping[str, Any] | None = None) -> pl.DataFrame:
    """Row dicts as a frame of exactly ``schema`` (with ``overrides``), rows or none."""
    full = _schema(schema, overrides)
    return pl.DataFrame(rows, schema=full, orient="row") if rows else pl.DataFrame(schema=full)


def _utc(value: datetime | date | None) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# -- from the API -------------------------------------------------------------------------
def portfolios(client: Client, *, schema_overrides: Mapping[str, Any] | None = None
               ) -> pl.DataFrame:
    """One row per agent portfolio, with the owner's investment and mirror cash."""
    mirrors = {m.mirror_id: m for m in client.trading("real").portfolio().mirrors}
    rows = []
    for p in client.agent_portfolios.list():
        mirror = mirrors.get(p.mirror_id)
        rows.append({"portfolio_id": p.id, "name": p.name, "gcid": p.gcid,
                     "virtual_balance": p.virtual_balance, "mirror_id": p.mirror_id,
                     "created_at": p.created_at, "token_count": len(p.tokens),
                     "investment_usd": mirror.initial_investment if mirror else None,
                     "mirror_available_usd": mirror.available_amount if mirror else None})
    return frame_of(rows, PORTFOLIOS_SCHEMA, schema_overrides)


def tokens(client: Client, *, now: datetime | None = None,
           expiring_within: timedelta = timedelta(days=7),
           schema_overrides: Mapping[str, Any] | None = None) -> pl.DataFrame:
    """One row per token: live ones from the API, revoked ones from the client's ledger.

    ``status`` is ``active``, ``expiring`` (within ``expiring_within``), ``expired`` or
    ``revoked``; ``days_to_expiry`` is null for tokens that never expire.
    """
    now = _utc(now) or client.now()
    rows: list[dict[str, Any]] = []
    live_ids = set()
    for p in client.agent_portfolios.list():
        for t in p.tokens:
            live_ids.add(t.id)
            rows.append(_token_row(p.id, p.name, t.id, t.name, t.application, t.client_id,
                                   list(t.scopes), list(t.ips_whitelist), t.created_at,
                                   t.expires_at, None, now, expiring_within))
    frame = frame_of(rows, TOKENS_SCHEMA, schema_overrides)
    if client.ledger is None:
        return frame
    # Revoked tokens are gone from the API: the ledger knows them, with their last grant.
    gone = tokens_from_ledger(client.ledger, now=now, expiring_within=expiring_within,
                              schema_overrides=schema_overrides).filter(
        (pl.col("status") == "revoked") & ~pl.col("token_id").is_in(list(live_ids)))
    return pl.concat([frame, gone])


def token_status(expires_at: datetime | None, revoked_at: datetime | None, now: datetime,
                 expiring_within: timedelta = timedelta(days=7)) -> str:
    """``revoked``, ``expired``, ``expiring`` (within ``expiring_within``) or ``active``,
    at ``now``."""
    if revoked_at is not None:
        return "revoked"
    if expires_at is not None and expires_at <= now:
        return "expired"
    if expires_at is not None and expires_at - now <= expiring_within:
        return "expiring"
    return "active"


def _token_row(portfolio_id: str, portfolio_name: str | None, token_id: str, name: str,
               application: str | None, client_id: str | None, scopes: list[str],
               ips: list[str], created: datetime | None, expires: datetime | None,
               revoked: Any, now: datetime, expiring_within: timedelta) -> dict[str, Any]:
    status = token_status(expires, revoked, now, expiring_within)
    days = None if expires is None else (expires - now).total_seconds() / 86400
    return {"portfolio_id": portfolio_id, "portfolio_name": portfolio_name,
            "token_id": token_id, "token_name": name, "application": application,
            "client_id": client_id, "scopes": scopes, "ips_whitelist": ips,
            "created_at": created, "expires_at": expires, "revoked_at": revoked,
            "status": status, "days_to_expiry": days}


def scope_grants(client: Client, *, schema_overrides: Mapping[str, Any] | None = None
                 ) -> pl.DataFrame:
    """One row per token and granted scope (revoked tokens included, with their status)."""
    return grants(tokens(client), schema_overrides=schema_overrides)


def grants(tokens_frame: pl.DataFrame, *, schema_overrides: Mapping[str, Any] | None = None
           ) -> pl.DataFrame:
    """A ``tokens`` frame (from the API or the ledger) as one row per token and granted
    scope (``GRANTS_SCHEMA``): what ``least_privilege`` takes."""
    exploded = (tokens_frame.select("portfolio_id", "portfolio_name", "token_id", "token_name",
                                    "scopes", "status")
                .explode("scopes").rename({"scopes": "scope"})
                .drop_nulls("scope"))
    return exploded.select(list(GRANTS_SCHEMA)).cast(_schema(GRANTS_SCHEMA, schema_overrides))


def trades(agent: Client, *, mode: Literal["demo", "real"] = "real",
           since: date | datetime = date(2000, 1, 1),
           progress: bool | Progress | None = None,
           schema_overrides: Mapping[str, Any] | None = None) -> pl.DataFrame:
    """Every closed trade of the account (all pages, with progress)."""
    rows = [{"position_id": t.position_id, "instrument_id": t.instrument_id,
             "is_buy": t.is_buy, "leverage": t.leverage, "units": t.units,
             "open_rate": t.open_rate, "close_rate": t.close_rate, "opened_at": t.opened_at,
             "closed_at": t.closed_at, "net_profit": t.net_profit, "investment": t.investment,
             "order_id": t.order_id, "parent_position_id": t.parent_position_id,
             "mirror_id": t.social_trade_id}
            for t in agent.trading(mode).history(since, progress=progress)]
    return frame_of(rows, TRADES_SCHEMA, schema_overrides)


def _position_rows(positions: tuple[Position, ...]) -> list[dict[str, Any]]:
    return [{"position_id": p.position_id, "instrument_id": p.instrument_id,
             "is_buy": p.is_buy, "leverage": p.leverage, "units": p.units, "amount": p.amount,
             "open_rate": p.open_rate, "opened_at": p.opened_at,
             "stop_loss_rate": p.stop_loss_rate, "take_profit_rate": p.take_profit_rate,
             "unrealized_pnl": p.unrealized.pnl if p.unrealized else None,
             "mirror_id": p.mirror_id, "parent_position_id": p.parent_position_id}
            for p in positions]


def positions(agent: Client, *, mode: Literal["demo", "real"] = "real",
              schema_overrides: Mapping[str, Any] | None = None) -> pl.DataFrame:
    """Open positions with unrealised P&L (an owner's copies included, by mirror)."""
    book = agent.trading(mode).pnl()
    rows = _position_rows(book.positions)
    for mirror in book.mirrors:
        rows += _position_rows(mirror.positions)
    return frame_of(rows, POSITIONS_SCHEMA, schema_overrides)


def _valued(cash: float, positions: Iterable[Position]) -> tuple[float, float]:
    """An account's (or a mirror's) value at market, and its unrealised P&L: cash plus each
    open position's amount and P&L."""
    held = list(positions)
    unrealized = sum(x.unrealized.pnl for x in held if x.unrealized)
    return cash + sum(x.amount for x in held) + unrealized, unrealized


def _mirrored(client: Client) -> list[tuple[AgentPortfolio, Mirror]]:
    """Each agent portfolio with its copy mirror in the owner's real account (those without
    one, being deleted, are left out)."""
    mirrors = {m.mirror_id: m for m in client.trading("real").pnl().mirrors}
    return [(p, mirrors[p.mirror_id]) for p in client.agent_portfolios.list()
            if p.mirror_id in mirrors]


def accounting(client: Client, *, since: date | datetime = date(2000, 1, 1),
               schema_overrides: Mapping[str, Any] | None = None) -> pl.DataFrame:
    """Per agent portfolio, from the owner's side: investment, the mirror's current value,
    realised and unrealised P&L, open copied positions and closed copied trades."""
    closed = trades(client, mode="real", since=since)
    counts = dict(closed.group_by("mirror_id").len().iter_rows())
    rows = []
    for p, m in _mirrored(client):
        value, unrealized = _valued(m.available_amount, m.positions)
        rows.append({"portfolio_id": p.id, "name": p.name, "mirror_id": p.mirror_id,
                     "investment_usd": m.initial_investment, "mirror_value_usd": value,
                     "realized_pnl_usd": m.closed_positions_net_profit,
                     "unrealized_pnl_usd": unrealized, "open_positions": len(m.positions),
                     "trade_count": counts.get(p.mirror_id, 0)})
    return frame_of(rows, ACCOUNTING_SCHEMA, schema_overrides)


def value_snapshot(client: Client, *, agents: Mapping[str, Client] | None = None,
                   schema_overrides: Mapping[str, Any] | None = None) -> pl.DataFrame:
    """Each agent portfolio's value at this moment (``client.now()``), one row each, in
    ``VALUE_HISTORY_SCHEMA``: collect snapshots over time (or append each to a Parquet log)
    and chart them with ``charts.portfolio_value``.

    ``mirror_value_usd`` is the owner's copy mirror at market and ``pnl_usd`` its gain over
    the investment, both from the owner's side. ``agent_value_usd`` is the agent account's
    own value (credit plus open positions at market), read with that portfolio's agent
    client when ``agents`` maps its portfolio id to one, else null: the owner cannot read
    an agent's account without a token for it.
    """
    now = client.now()
    rows = []
    for p, m in _mirrored(client):
        value, _ = _valued(m.available_amount, m.positions)
        agent = (agents or {}).get(p.id)
        own = None if agent is None else agent.trading("real").pnl()
        rows.append({"ts": now, "name": p.name,
                     "agent_value_usd": None if own is None else _valued(own.credit,
                                                                        own.positions)[0],
                     "mirror_value_usd": value, "pnl_usd": value - m.initial_investment})
    return frame_of(rows, VALUE_HISTORY_SCHEMA, schema_overrides)


# -- from the ledger ----------------------------------------------------------------------
def _scan(ledger: Ledger, table: str) -> pl.LazyFrame:
    """Sealed segments and live rows of a ledger table as one lazy frame."""
    stored = STORED[table]
    columns = USAGE_COLUMNS if table == "usage_events" else LIFECYCLE_COLUMNS
    with ledger.snapshot() as conn:
        files = [ledger.segments_dir / row[0] for row in conn.execute(
            "SELECT file FROM segments WHERE table_name = ? ORDER BY seq", (table,))]
        live = conn.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY seq").fetchall()
    schema = {c: stored[c] for c in columns}
    # Segments sealed before a column was added lack it: it reads as null there.
    parts = [pl.scan_parquet(files, schema=dict(stored), missing_columns="insert")
             .select(list(columns))] if files else []
    parts.append(pl.DataFrame(live, schema=schema, orient="row").lazy())
    return pl.concat(parts, how="vertical")


def _us_to_utc(column: str | pl.Expr, name: str) -> pl.Expr:
    values = pl.col(column) if isinstance(column, str) else column
    return values.cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias(name)


def usage(ledger: Ledger, *, since: datetime | date | None = None,
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
    frame = _scan(ledger, "usage_events")
    start, end = _utc(since), _utc(until)
    if start is not None:
        frame = frame.filter(pl.col("ts_us") >= int(start.timestamp() * 1_000_000))
    if end is not None:
        frame = frame.filter(pl.col("ts_us") < int(end.timestamp() * 1_000_000))
    if portfolio is not None:
        frame = frame.filter(pl.col("portfolio_id") == portfolio)
    if token is not None:
        frame = frame.filter(pl.col("token_id") == token)
    if phase is not None:
        frame = frame.filter(pl.col("phase") == phase)
    result = (frame.with_columns(_us_to_utc("ts_us", "ts")).select(list(USAGE_SCHEMA))
              .cast(_schema(USAGE_SCHEMA, schema_overrides)))
    return result if lazy else result.collect()


def requests(ledger: Ledger, **filters: Any) -> pl.DataFrame:
    """One row per request attempt: its outcome, or its intent when no outcome was recorded
    (``status`` null: the process died, or the answer never came). Takes ``usage()``'s
    filters."""
    events = usage(ledger, lazy=True, **filters)
    assert isinstance(events, pl.LazyFrame)
    outcomes = events.filter(pl.col("phase") == "outcome")
    unanswered = events.filter(pl.col("phase") == "intent").join(
        outcomes.select("request_id", "attempt"), on=["request_id", "attempt"], how="anti")
    return pl.concat([outcomes, unanswered]).sort("seq").collect()


def _lifecycle_rows(ledger: Ledger) -> pl.DataFrame:
    """Every stored lifecycle row, decoded, with its ``phase`` (null: recorded after the
    fact, before phases existed)."""
    return (_scan(ledger, "lifecycle_events").collect()
            .with_columns(_us_to_utc("ts_us", "ts"), _us_to_utc("expires_at_us", "expires_at"),
                          pl.col("scopes").str.json_decode(SCOPES),
                          pl.col("ips_whitelist").str.json_decode(SCOPES)))


def lifecycle(ledger: Ledger, *, now: datetime | None = None,
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


def unfinished_changes(ledger: Ledger, *,
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
    expiry: dict[str, tuple[datetime | None, dict[str, Any]]] = {}
    ended: set[str] = set()
    deleted: set[str] = set()
    for e in events.iter_rows(named=True):
        detail = json.loads(e["detail"]) if e["detail"] else {}
        if e["kind"] == "token_minted":
            expiry[e["token_id"]] = (e["expires_at"], e)
        elif e["kind"] == "token_updated" and "expires_at" in detail:
            token_id = e["token_id"]
            if token_id in expiry:
                expiry[token_id] = (_absolute(detail["expires_at"], e["ts"]), expiry[token_id][1])
        elif e["kind"] == "token_revoked":
            ended.add(e["token_id"])
        elif e["kind"] == "portfolio_deleted":
            deleted.add(e["portfolio_id"])
    rows = []
    for token_id, (at, minted) in expiry.items():
        if at is None or at > now or token_id in ended or minted["portfolio_id"] in deleted:
            continue
        rows.append({**{k: None for k in LIFECYCLE_SCHEMA}, "ts": at, "kind": "token_expired",
                     "portfolio_id": minted["portfolio_id"], "token_id": token_id,
                     "token_name": minted["token_name"], "scopes": minted["scopes"],
                     "ips_whitelist": minted["ips_whitelist"], "expires_at": at,
                     "detail": json.dumps({"derived": True})})
    return frame_of(rows, LIFECYCLE_SCHEMA, None)


def _absolute(value: str | None, at: datetime) -> datetime | None:
    if value is None:
        return None
    if value.startswith("+") and value.endswith("s"):
        return at + timedelta(seconds=float(value[1:-1]))
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def least_privilege(grants: pl.DataFrame, usage_frame: pl.DataFrame, *,
                    since: datetime | date | None = None,
                    until: datetime | date | None = None) -> pl.DataFrame:
    """Per token and scope over a window: granted, used (answered 2xx), refused (403), and
    a verdict: ``needed`` (used), ``unused`` (granted, never used: narrow the grant) or
    ``missing`` (refused without the grant). ``suggested_scopes`` is the narrower grant
    that would have sufficed: the scopes the token used."""
    frame = usage_frame.filter(pl.col("phase") == "outcome", pl.col("principal") == "agent",
                               pl.col("token_id").is_not_null(),
                               pl.col("scope_required").str.starts_with("etoro-public:"))
    start, end = _utc(since), _utc(until)
    if start is not None:
        frame = frame.filter(pl.col("ts") >= start)
    if end is not None:
        frame = frame.filter(pl.col("ts") < end)
    counted = (frame.group_by("token_id", "scope_required")
               .agg(used=(pl.col("status").is_between(200, 299)).sum().cast(pl.Int64),
                    refused=(pl.col("status") == 403).sum().cast(pl.Int64))
               .rename({"scope_required": "scope"}))
    granted = grants.select("portfolio_id", "token_id", "token_name", "scope").with_columns(
        granted=pl.lit(True))
    joined = granted.join(counted, on=["token_id", "scope"], how="full", coalesce=True)
    names = grants.select("portfolio_id", "token_id", "token_name").unique("token_id")
    joined = (joined.drop("portfolio_id", "token_name").join(names, on="token_id", how="left")
              .with_columns(pl.col("granted").fill_null(False), pl.col("used").fill_null(0),
                            pl.col("refused").fill_null(0)))
    joined = joined.with_columns(
        verdict=pl.when(pl.col("used") > 0).then(pl.lit("needed"))
        .when(pl.col("granted")).then(pl.lit("unused"))
        .otherwise(pl.lit("missing")))
    suggested = (joined.filter(pl.col("used") > 0).group_by("token_id")
                 .agg(suggested_scopes=pl.col("scope").sort()))
    out = joined.join(suggested, on="token_id", how="left").with_columns(
        pl.col("suggested_scopes").fill_null(pl.lit([], dtype=SCOPES)))
    return (out.select(list(LEAST_PRIVILEGE_SCHEMA)).cast(LEAST_PRIVILEGE_SCHEMA)
            .sort("token_id", "scope"))


def tokens_from_ledger(ledger: Ledger, *, now: datetime | date | None = None,
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
    names: dict[str, str | None] = {}
    deleted: dict[str, datetime] = {}
    found: dict[str, dict[str, Any]] = {}
    for e in events.iter_rows(named=True):
        kind, token_id = e["kind"], e["token_id"]
        detail = json.loads(e["detail"]) if e["detail"] else {}
        if kind == "portfolio_created":
            names[e["portfolio_id"]] = detail.get("name")
        elif kind == "portfolio_deleted":
            deleted.setdefault(e["portfolio_id"], e["ts"])
        elif kind == "token_minted":
            found[token_id] = {"portfolio_id": e["portfolio_id"], "token_id": token_id,
                               "name": e["token_name"], "scopes": e["scopes"] or [],
                               "ips": e["ips_whitelist"] or [], "created": e["ts"],
                               "expires": e["expires_at"], "revoked": None}
        elif token_id not in found:
            continue  # a token this ledger never saw minted
        elif kind == "token_updated":
            token = found[token_id]
            if "scopes" in detail:
                token["scopes"] = list(detail["scopes"] or [])
            if "ips_whitelist" in detail:
                token["ips"] = list(detail["ips_whitelist"] or [])
            if "expires_at" in detail:
                token["expires"] = _absolute(detail["expires_at"], e["ts"])
        elif kind == "token_revoked":
            found[token_id]["revoked"] = found[token_id]["revoked"] or e["ts"]
        elif kind == "token_expired":  # recorded (not derived) expiry
            expires = found[token_id]["expires"]
            found[token_id]["expires"] = e["ts"] if expires is None else min(expires, e["ts"])
    rows = []
    for t in found.values():
        ends = [d for d in (t["revoked"], deleted.get(t["portfolio_id"])) if d is not None]
        rows.append(_token_row(t["portfolio_id"], names.get(t["portfolio_id"]), t["token_id"],
                               t["name"], None, None, t["scopes"], t["ips"], t["created"],
                               t["expires"], min(ends) if ends else None, at,
                               expiring_within))
    rows.sort(key=lambda r: (r["created_at"], r["token_id"]))
    return frame_of(rows, TOKENS_SCHEMA, schema_overrides)


def grants_from_ledger(ledger: Ledger, *, now: datetime | date | None = None,
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


POLICY_EVENTS_SCHEMA = _declare({
    "seq": pl.Int64, "ts": UTC_US, "kind": pl.String, "phase": pl.String, "source": pl.String,
    "portfolio_id": pl.String, "token_id": pl.String, "request_id": pl.String,
    "operation": pl.String, "rule": pl.String, "limit": pl.String, "attempted": pl.String,
    "limit_value": pl.Float64, "attempted_value": pl.Float64, "status": pl.Int64,
    "error_code": pl.String, "policy_version": pl.Int64, "policy": pl.String,
    "loosens": SCOPES, "consent": pl.String, "reason": pl.String,
    "gross_exposure_usd": pl.Float64, "exposure_limit_usd": pl.Float64,
    "realized_pnl_today_usd": pl.Float64, "loss_limit_usd": pl.Float64,
    "open_positions": pl.Int64, "orders_today": pl.Int64, "detail": pl.String,
})
"""``policy_events()``: one row per event. ``source`` is ``owner`` (``policy_set``,
``agent_paused``, ``agent_resumed``), ``agent`` (an agent session's ``policy_refused``,
``order_booked``, ``book_reconciled``, ``session_stopped``) or ``server``
(``server_refused``: a trading order the server answered with a 4xx, from the usage
events). ``rule``, ``limit`` and ``attempted`` are a refusal's (the ``RiskPolicy`` field,
``scope``, ``paused``, ``stopped``; for the server, its ``errorCode``), as text, and as
numbers in ``limit_value`` / ``attempted_value`` when they are numbers. ``policy`` is a
version's limits as JSON; ``loosens`` what it loosened (with ``consent``). The book
columns are the session's figures when the event happened: gross exposure and the
tightest exposure limit in effect (USD), net realised P&L of the UTC day (assuming the
worst for closes since the last read) and the daily loss limit, open positions, orders in
the day. ``phase`` is ``failed`` for a policy change refused for want of consent."""

_FROM_DETAIL = {
    "operation": pl.String, "rule": pl.String, "limit": pl.String, "attempted": pl.String,
    "policy_version": pl.Int64, "policy": pl.String, "consent": pl.String, "reason": pl.String,
    "gross_exposure_usd": pl.Float64, "exposure_limit_usd": pl.Float64,
    "realized_pnl_today_usd": pl.Float64, "loss_limit_usd": pl.Float64,
    "open_positions": pl.Int64, "orders_today": pl.Int64,
}


def policy_events(ledger: Ledger, *, portfolio: str | None = None,
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
    rows = _booked_orders(_lifecycle_rows(ledger).filter(pl.col("kind").is_in(AGENT_KINDS)))
    owner = ("policy_set", "agent_paused", "agent_resumed")
    local = rows.with_columns(
        source=pl.when(pl.col("kind").is_in(owner)).then(pl.lit("owner")).otherwise(pl.lit("agent")),
        loosens=pl.col("detail").str.json_path_match("$.loosens").str.json_decode(SCOPES),
        status=pl.lit(None, pl.Int64), error_code=pl.lit(None, pl.String),
        **{name: pl.col("detail").str.json_path_match(f"$.{name}").cast(dtype, strict=False)
           for name, dtype in _FROM_DETAIL.items()})
    parts = [local.with_columns(_numbers()).select(list(POLICY_EVENTS_SCHEMA))]
    if server_refusals:
        parts.append(_server_refusals(ledger))
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


def _server_refusals(ledger: Ledger) -> pl.DataFrame:
    """Agents' trading orders the server answered with a 4xx (one row per request)."""
    from etoro_nb.operations import trade_operations

    events = usage(ledger, phase="outcome", lazy=True)
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
        "error_code": pl.col("error_code")}
    return refused.select([taken.get(name, pl.lit(None, dtype)).alias(name)
                           for name, dtype in POLICY_EVENTS_SCHEMA.items()])


__all__ = ["POLICY_EVENTS_SCHEMA", "VALUE_HISTORY_SCHEMA", "accounting", "grants",
           "grants_from_ledger", "least_privilege", "lifecycle", "policy_events", "portfolios",
           "positions", "requests", "scope_grants", "token_status", "tokens",
           "tokens_from_ledger", "trades", "unfinished_changes", "usage", "value_snapshot"]
