"""What every loader shares: the declared schemas (``*_SCHEMA``), building a frame of one,
token status, and a tokens frame as grants."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl

from etoro_nb.ledger.tables import LIFECYCLE, USAGE

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
# The raw ledger columns as frames show them, from the table specs: microsecond stamps as
# UTC datetimes, JSON lists as lists.
USAGE_SCHEMA = USAGE.frame_schema({"ts_us": ("ts", UTC_US)})
LIFECYCLE_SCHEMA = LIFECYCLE.frame_schema(
    {"ts_us": ("ts", UTC_US), "expires_at_us": ("expires_at", UTC_US),
     "scopes": ("scopes", SCOPES), "ips_whitelist": ("ips_whitelist", SCOPES)},
    drop=("phase",))
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
    "application": pl.String,
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
the day. ``phase`` is ``failed`` for a policy change refused for want of consent.
``application`` is the application of the client that made an agent session's event or a
server-refused request (``ClientConfig.application``, e.g. ``mcp:<client name>``), null
when it had none or was recorded before it was kept."""


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


def _token_row(portfolio_id: str | None, portfolio_name: str | None, token_id: str,
               name: str | None, application: str | None, client_id: str | None, scopes: list[str],
               ips: list[str], created: datetime | None, expires: datetime | None,
               revoked: Any, now: datetime, expiring_within: timedelta) -> dict[str, Any]:
    status = token_status(expires, revoked, now, expiring_within)
    days = None if expires is None else (expires - now).total_seconds() / 86400
    return {"portfolio_id": portfolio_id, "portfolio_name": portfolio_name,
            "token_id": token_id, "token_name": name, "application": application,
            "client_id": client_id, "scopes": scopes, "ips_whitelist": ips,
            "created_at": created, "expires_at": expires, "revoked_at": revoked,
            "status": status, "days_to_expiry": days}

def grants(tokens_frame: pl.DataFrame, *, schema_overrides: Mapping[str, Any] | None = None
           ) -> pl.DataFrame:
    """A ``tokens`` frame (from the API or the ledger) as one row per token and granted
    scope (``GRANTS_SCHEMA``): what ``least_privilege`` takes."""
    exploded = tokens_frame.select("portfolio_id", "portfolio_name", "token_id", "token_name",
                                   pl.col("scopes").alias("scope"), "status").explode("scope")
    # Null scopes (what no or empty lists explode to, too) dropped and dtypes cast only when
    # needed: on small frames each eager step costs more than its data.
    if exploded.get_column("scope").has_nulls():
        exploded = exploded.drop_nulls("scope")
    schema = _schema(GRANTS_SCHEMA, schema_overrides)
    return exploded if exploded.schema == schema else exploded.cast(schema)
