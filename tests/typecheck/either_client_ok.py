"""Checked by mypy (``tests/test_typing_either_client.py``), never run: with an
``EtoroClient`` the loaders, the session and the rebalancer give results, with an
``AsyncEtoroClient`` awaitables of the same results; each assignment holds only if the
overloads resolve to the right one."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import timedelta

import polars as pl

from etoro_nb import frames
from etoro_nb.agent import AgentSession, AsyncAgentSession, BookView, Room
from etoro_nb.client import AsyncEtoroClient, EtoroClient
from etoro_nb.models import OrderPlaced
from etoro_nb.rebalancer import AsyncRebalancer, Rebalancer, StepRecord


def with_a_sync_client(client: EtoroClient, agent: EtoroClient) -> None:
    portfolios: pl.DataFrame = frames.portfolios(client)
    tokens: pl.DataFrame = frames.tokens(client, expiring_within=timedelta(days=1))
    grants: pl.DataFrame = frames.scope_grants(client)
    accounting: pl.DataFrame = frames.accounting(client)
    values: pl.DataFrame = frames.value_snapshot(client, agents={"p": agent})
    trades: pl.DataFrame = frames.trades(agent, mode="demo")
    positions: pl.DataFrame = frames.positions(agent)
    session = AgentSession(agent, account="demo")
    placed: OrderPlaced = session.open_order("AAPL", amount=100)
    room: Room = session.room("AAPL")
    view: BookView = session.reconcile()
    record: StepRecord = Rebalancer(session, None, {"AAPL": 1.0}).step()
    del portfolios, tokens, grants, accounting, values, trades, positions, placed, room, view, record


async def with_an_async_client(client: AsyncEtoroClient, agent: AsyncEtoroClient) -> None:
    portfolios: pl.DataFrame = await frames.portfolios(client)
    pending: Awaitable[pl.DataFrame] = frames.tokens(client, expiring_within=timedelta(days=1))
    tokens: pl.DataFrame = await pending
    grants: pl.DataFrame = await frames.scope_grants(client)
    accounting: pl.DataFrame = await frames.accounting(client)
    values: pl.DataFrame = await frames.value_snapshot(client, agents={"p": agent})
    trades: pl.DataFrame = await frames.trades(agent, mode="demo")
    positions: pl.DataFrame = await frames.positions(agent)
    session = await AsyncAgentSession.open(agent, account="demo")
    placed: OrderPlaced = await session.open_order("AAPL", amount=100)
    room: Room = await session.room("AAPL")
    view: BookView = await session.reconcile()
    rebalancer = await AsyncRebalancer.open(session, None, {"AAPL": 1.0})
    record: StepRecord = await rebalancer.step()
    del portfolios, tokens, grants, accounting, values, trades, positions, placed, room, view, record
