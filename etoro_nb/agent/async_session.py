"""``AsyncAgentSession``: ``AgentSession`` for an ``AsyncEtoroClient``, the same methods
awaited (an MCP server or any asyncio agent).

It runs the very same work as ``AgentSession`` (``session.SessionCore``); only the driving
differs: requests are awaited, and every ledger step (the token's portfolio and the
owner's controls when it opens, the watcher's look before each order, the day's counters,
the session's own events) runs in a worker thread, so the event loop never waits on SQLite.
Orders are serialised by an ``asyncio.Lock``.

>>> session = await AsyncAgentSession.open(agent, policy, account="demo")  # doctest: +SKIP
>>> async with session:                                                    # doctest: +SKIP
...     await session.open_order("AAPL", amount=await session.room_usd("AAPL"))
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import TYPE_CHECKING, TypeVar

from etoro_nb._runner import Work, adrive
from etoro_nb.agent.session import Account, SessionCore
from etoro_nb.errors import ConfigurationError

if TYPE_CHECKING:
    from etoro_nb.agent.book import BookView
    from etoro_nb.agent.policy import RiskPolicy
    from etoro_nb.agent.room import Room
    from etoro_nb.client_api import AsyncClientAPI
    from etoro_nb.models import ClosedOrder, OrderInfo, OrderPlaced, Portfolio, Trade

T = TypeVar("T")


class AsyncAgentSession(SessionCore):
    """An agent's trading under a policy, on an ``AsyncEtoroClient``.

    Open one with ``await AsyncAgentSession.open(agent, policy, ...)`` (the arguments of
    ``AgentSession``); end it with ``await session.aclose()`` or ``async with session``.
    """

    _agent: AsyncClientAPI

    def __init__(self, agent: AsyncClientAPI, policy: RiskPolicy | None = None, *,
                 account: Account = "demo", portfolio_id: str | None = None,
                 virtual_balance_usd: float | None = None) -> None:
        """Not started: use ``await AsyncAgentSession.open(...)``, which starts it."""
        super().__init__(agent, policy, account=account, portfolio_id=portfolio_id,
                         virtual_balance_usd=virtual_balance_usd)
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, agent: AsyncClientAPI, policy: RiskPolicy | None = None, *,
                   account: Account = "demo", portfolio_id: str | None = None,
                   virtual_balance_usd: float | None = None) -> AsyncAgentSession:
        """A started session: its ledger reads in a worker thread, then its start (the
        token's scopes, the account, the day's closed trades) awaited."""
        session = await asyncio.to_thread(cls, agent, policy, account=account,
                                          portfolio_id=portfolio_id,
                                          virtual_balance_usd=virtual_balance_usd)
        async with session._lock:
            try:
                await adrive(agent, session._start())
            except BaseException:
                session._failed_start()
                raise
        return session

    async def __aenter__(self) -> AsyncAgentSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _run(self, op: str, work: Work[T]) -> T:
        async with self._lock:
            if not self._started and self._stopped is None:
                raise ConfigurationError("this session was not started: make it with "
                                         "await AsyncAgentSession.open(...)")
            self._alive(op)
            return await adrive(self._agent, work)

    async def reconcile(self) -> BookView:
        """Read the account now and take the book from it."""
        return await self._run("reconcile", self._reconcile_asked())

    async def portfolio(self) -> Portfolio:
        """The account (one read), which also refreshes the book."""
        return await self._run("portfolio", self._read_account("portfolio"))

    async def pnl(self) -> Portfolio:
        """The account with unrealised P&L (one read), which also refreshes the book."""
        return await self._run("pnl", self._read_account("pnl"))

    async def history(self, since: date | datetime) -> list[Trade]:
        return await self._run("history", self._history(since))

    async def lookup_order(self, order_id: int | None = None, *,
                           reference_id: str | None = None) -> OrderInfo:
        return await self._run("lookup", self._lookup(order_id, reference_id))

    async def open_order(self, instrument: int | str, side: str = "buy", *, amount: float,
                         leverage: int = 1, stop_loss: float | None = None,
                         take_profit: float | None = None, trailing_stop: bool = False,
                         trigger_rate: float | None = None,
                         request_id: str | None = None) -> OrderPlaced:
        """``AgentSession.open_order``, awaited."""
        return await self._run(*self._open(instrument, side, amount, leverage, stop_loss,
                                           take_profit, trailing_stop, trigger_rate, request_id))

    async def close_position(self, position_id: int, instrument_id: int, *,
                             units: float | None = None,
                             request_id: str | None = None) -> ClosedOrder:
        """``AgentSession.close_position``, awaited."""
        return await self._run(*self._close(position_id, instrument_id, units, request_id))

    async def cancel_order(self, order_id: int) -> None:
        await self._run(*self._cancel(order_id))

    async def room_usd(self, instrument: int | str | None = None, *, leverage: int = 1) -> float:
        """``AgentSession.room_usd``, awaited."""
        return (await self._run("room", self._room(instrument, leverage))).usd

    async def room(self, instrument: int | str | None = None, *, leverage: int = 1,
                   stop_loss: bool = True) -> Room:
        """``AgentSession.room``, awaited."""
        return await self._run("room", self._room(instrument, leverage, stop_loss))

    async def stop(self, reason: str = "stopped by the agent") -> None:
        """Stop for good (no request after this); records ``session_stopped``."""
        async with self._lock:
            await adrive(self._agent, self._stop(reason, None))

    async def aclose(self) -> None:
        """End the session (``stop`` with reason ``closed``); the client stays open."""
        await self.stop("closed")


__all__ = ["AsyncAgentSession"]
