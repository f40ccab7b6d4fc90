"""Loaders that call the API with a client: portfolios, tokens, scope grants, trades,
positions, accounting and value snapshots.

Each is written once, as work composed from the resources' flows (``etoro_nb._runner``),
and takes either client: ``frames.portfolios(client)`` is a frame with an ``EtoroClient``
and an awaitable of the same frame with an ``AsyncEtoroClient``
(``await frames.portfolios(async_client)``), where its ledger reads run in a worker
thread. mypy knows which (``client_api.Loader``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from etoro_nb._runner import Work, blocking, via
from etoro_nb.client_api import Loader
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
from etoro_nb.progress import Progress, reporter

# The resources' flows are imported where they run: they import httpx, and an audit of a
# ledger file (``frames.ledger``, through this package) must not.
if TYPE_CHECKING:
    from etoro_nb._base import Flow
    from etoro_nb.client_api import AnyClient, ClientState
    from etoro_nb.models import AgentPortfolio, Mirror, Portfolio, Position


def _account(mode: str, *, pnl: bool) -> Flow[Portfolio]:
    """One read of an account (``pnl``: with unrealised P&L)."""
    from etoro_nb.resources.trading import Paths, _check_mode, portfolio_flow

    return portfolio_flow(Paths(_check_mode(mode)), pnl=pnl)


def _portfolios_flow() -> Flow[list[AgentPortfolio]]:
    from etoro_nb.resources.agent_portfolios import list_flow

    return list_flow()


@Loader
def portfolios(client: ClientState, *, schema_overrides: Mapping[str, Any] | None = None
               ) -> Work[pl.DataFrame]:
    """One row per agent portfolio, with the owner's investment and mirror cash."""
    mirrors = {m.mirror_id: m for m in (yield from _account("real", pnl=False)).mirrors}
    rows = []
    for p in (yield from _portfolios_flow()):
        mirror = mirrors.get(p.mirror_id)
        rows.append({"portfolio_id": p.id, "name": p.name, "gcid": p.gcid,
                     "virtual_balance": p.virtual_balance, "mirror_id": p.mirror_id,
                     "created_at": p.created_at, "token_count": len(p.tokens),
                     "investment_usd": mirror.initial_investment if mirror else None,
                     "mirror_available_usd": mirror.available_amount if mirror else None})
    return frame_of(rows, PORTFOLIOS_SCHEMA, schema_overrides)


@Loader
def tokens(client: ClientState, *, now: datetime | None = None,
           expiring_within: timedelta = timedelta(days=7),
           schema_overrides: Mapping[str, Any] | None = None) -> Work[pl.DataFrame]:
    """One row per token: live ones from the API, revoked ones from the client's ledger.

    ``status`` is ``active``, ``expiring`` (within ``expiring_within``), ``expired`` or
    ``revoked``; ``days_to_expiry`` is null for tokens that never expire.
    """
    from etoro_nb.resources.agent_portfolios import now_flow

    now = _utc(now) or (yield from now_flow(client.environment))
    rows: list[dict[str, Any]] = []
    live_ids = set()
    for p in (yield from _portfolios_flow()):
        for t in p.tokens:
            live_ids.add(t.id)
            rows.append(_token_row(p.id, p.name, t.id, t.name, t.application, t.client_id,
                                   list(t.scopes), list(t.ips_whitelist), t.created_at,
                                   t.expires_at, None, now, expiring_within))
    frame = frame_of(rows, TOKENS_SCHEMA, schema_overrides)
    ledger = client.ledger
    if ledger is None:
        return frame
    # Revoked tokens are gone from the API: the ledger knows them, with their last grant.
    from_ledger = yield from blocking(lambda: tokens_from_ledger(
        ledger, now=now, expiring_within=expiring_within, schema_overrides=schema_overrides))
    gone = from_ledger.filter((pl.col("status") == "revoked")
                              & ~pl.col("token_id").is_in(list(live_ids)))
    return pl.concat([frame, gone])


@Loader
def scope_grants(client: ClientState, *, schema_overrides: Mapping[str, Any] | None = None
                 ) -> Work[pl.DataFrame]:
    """One row per token and granted scope (revoked tokens included, with their status)."""
    return grants((yield from tokens.work(client)), schema_overrides=schema_overrides)


@Loader
def trades(agent: ClientState, *, mode: Literal["demo", "real"] = "real",
           since: date | datetime = date(2000, 1, 1),
           progress: bool | Progress | None = None,
           schema_overrides: Mapping[str, Any] | None = None) -> Work[pl.DataFrame]:
    """Every closed trade of the account (all pages, with progress)."""
    from etoro_nb.resources.trading import PAGE_SIZE, Paths, _check_mode, history_flow

    paths = Paths(_check_mode(mode))
    day = since.date() if isinstance(since, datetime) else since
    with reporter(progress, f"{mode} trade history") as report:
        history = yield from history_flow(paths, day, PAGE_SIZE, report)
    rows = [{"position_id": t.position_id, "instrument_id": t.instrument_id,
             "is_buy": t.is_buy, "leverage": t.leverage, "units": t.units,
             "open_rate": t.open_rate, "close_rate": t.close_rate, "opened_at": t.opened_at,
             "closed_at": t.closed_at, "net_profit": t.net_profit, "investment": t.investment,
             "order_id": t.order_id, "parent_position_id": t.parent_position_id,
             "mirror_id": t.social_trade_id}
            for t in history]
    return frame_of(rows, TRADES_SCHEMA, schema_overrides)


def _position_rows(positions: tuple[Position, ...]) -> list[dict[str, Any]]:
    return [{"position_id": p.position_id, "instrument_id": p.instrument_id,
             "is_buy": p.is_buy, "leverage": p.leverage, "units": p.units, "amount": p.amount,
             "open_rate": p.open_rate, "opened_at": p.opened_at,
             "stop_loss_rate": p.stop_loss_rate, "take_profit_rate": p.take_profit_rate,
             "unrealized_pnl": p.unrealized.pnl if p.unrealized else None,
             "mirror_id": p.mirror_id, "parent_position_id": p.parent_position_id}
            for p in positions]


@Loader
def positions(agent: ClientState, *, mode: Literal["demo", "real"] = "real",
              schema_overrides: Mapping[str, Any] | None = None) -> Work[pl.DataFrame]:
    """Open positions with unrealised P&L (an owner's copies included, by mirror)."""
    book = yield from _account(mode, pnl=True)
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


def _mirrored() -> Work[list[tuple[AgentPortfolio, Mirror]]]:
    """Each agent portfolio with its copy mirror in the owner's real account (those without
    one, being deleted, are left out)."""
    mirrors = {m.mirror_id: m for m in (yield from _account("real", pnl=True)).mirrors}
    return [(p, mirrors[p.mirror_id]) for p in (yield from _portfolios_flow())
            if p.mirror_id in mirrors]


@Loader
def accounting(client: ClientState, *, since: date | datetime = date(2000, 1, 1),
               schema_overrides: Mapping[str, Any] | None = None) -> Work[pl.DataFrame]:
    """Per agent portfolio, from the owner's side: investment, the mirror's current value,
    realised and unrealised P&L, open copied positions and closed copied trades."""
    closed = yield from trades.work(client, mode="real", since=since)
    counts = dict(closed.group_by("mirror_id").len().iter_rows())
    rows = []
    for p, m in (yield from _mirrored()):
        value, unrealized = _valued(m.available_amount, m.positions)
        rows.append({"portfolio_id": p.id, "name": p.name, "mirror_id": p.mirror_id,
                     "investment_usd": m.initial_investment, "mirror_value_usd": value,
                     "realized_pnl_usd": m.closed_positions_net_profit,
                     "unrealized_pnl_usd": unrealized, "open_positions": len(m.positions),
                     "trade_count": counts.get(p.mirror_id, 0)})
    return frame_of(rows, ACCOUNTING_SCHEMA, schema_overrides)


@Loader
def value_snapshot(client: ClientState, *, agents: Mapping[str, AnyClient] | None = None,
                   schema_overrides: Mapping[str, Any] | None = None) -> Work[pl.DataFrame]:
    """Each agent portfolio's value at this moment (the server's now), one row each, in
    ``VALUE_HISTORY_SCHEMA``: collect snapshots over time (or append each to a Parquet log)
    and chart them with ``charts.portfolio_value``.

    ``mirror_value_usd`` is the owner's copy mirror at market and ``pnl_usd`` its gain over
    the investment, both from the owner's side. ``agent_value_usd`` is the agent account's
    own value (credit plus open positions at market), read with that portfolio's agent
    client when ``agents`` maps its portfolio id to one (of the same kind as ``client``:
    all synchronous or all asyncio), else null: the owner cannot read an agent's account
    without a token for it.
    """
    from etoro_nb.resources.agent_portfolios import now_flow

    now = yield from now_flow(client.environment)
    rows = []
    for p, m in (yield from _mirrored()):
        value, _ = _valued(m.available_amount, m.positions)
        agent = (agents or {}).get(p.id)
        own = None if agent is None else (yield from via(agent, _account("real", pnl=True)))
        rows.append({"ts": now, "name": p.name,
                     "agent_value_usd": None if own is None else _valued(own.credit,
                                                                        own.positions)[0],
                     "mirror_value_usd": value, "pnl_usd": value - m.initial_investment})
    return frame_of(rows, VALUE_HISTORY_SCHEMA, schema_overrides)
