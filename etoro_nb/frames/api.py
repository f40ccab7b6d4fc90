"""Loaders that call the API with a client: portfolios, tokens, scope grants, trades,
positions, accounting and value snapshots."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from etoro_nb.frames.common import (
    ACCOUNTING_SCHEMA,
    PORTFOLIOS_SCHEMA,
    POSITIONS_SCHEMA,
    TOKENS_SCHEMA,
    TRADES_SCHEMA,
    VALUE_HISTORY_SCHEMA,
    _token_row,
    _utc,
    frame_of,
    grants,
)
from etoro_nb.frames.ledger import tokens_from_ledger
from etoro_nb.progress import Progress

if TYPE_CHECKING:
    from etoro_nb.client_api import ClientAPI  # the sync surface the loaders call
    from etoro_nb.models import AgentPortfolio, Mirror, Position


def portfolios(client: ClientAPI, *, schema_overrides: Mapping[str, Any] | None = None
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


def tokens(client: ClientAPI, *, now: datetime | None = None,
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

def scope_grants(client: ClientAPI, *, schema_overrides: Mapping[str, Any] | None = None
                 ) -> pl.DataFrame:
    """One row per token and granted scope (revoked tokens included, with their status)."""
    return grants(tokens(client), schema_overrides=schema_overrides)

def trades(agent: ClientAPI, *, mode: Literal["demo", "real"] = "real",
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


def positions(agent: ClientAPI, *, mode: Literal["demo", "real"] = "real",
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


def _mirrored(client: ClientAPI) -> list[tuple[AgentPortfolio, Mirror]]:
    """Each agent portfolio with its copy mirror in the owner's real account (those without
    one, being deleted, are left out)."""
    mirrors = {m.mirror_id: m for m in client.trading("real").pnl().mirrors}
    return [(p, mirrors[p.mirror_id]) for p in client.agent_portfolios.list()
            if p.mirror_id in mirrors]


def accounting(client: ClientAPI, *, since: date | datetime = date(2000, 1, 1),
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


def value_snapshot(client: ClientAPI, *, agents: Mapping[str, ClientAPI] | None = None,
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
