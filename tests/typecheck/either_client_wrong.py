"""Checked by mypy (``tests/test_typing_either_client.py``), never run: each line marked
``# error`` must be an error, so the overloads are not merely ``Any``."""

from __future__ import annotations

import polars as pl

from etoro_nb import frames
from etoro_nb.agent import AgentSession
from etoro_nb.client import AsyncEtoroClient, EtoroClient


async def mixed_up(client: EtoroClient, async_client: AsyncEtoroClient) -> None:
    not_awaited: pl.DataFrame = frames.portfolios(async_client)  # error
    not_awaitable = await frames.portfolios(client)  # error
    frames.tokens(client, expiring=3)  # error
    frames.trades(client, mode="paper")  # error
    AgentSession(async_client)  # error
    del not_awaited, not_awaitable
