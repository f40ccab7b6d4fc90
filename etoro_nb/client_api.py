"""``ClientAPI``: the client surface that frames' client loaders and the rebalancer use.

One typed protocol, so they depend on what they call rather than on ``EtoroClient`` itself
(and ``etoro_nb.frames`` imports nothing of ``etoro_nb.client``). It is synchronous on
purpose: the loaders and ``Rebalancer.step`` return frames and records, not awaitables,
so they take a ``EtoroClient`` (or anything with its synchronous surface, such as a test
double). From asyncio code, run them on a ``EtoroClient`` in a worker thread
(``await asyncio.to_thread(frames.portfolios, client)``) rather than on an
``AsyncEtoroClient``: async twins of every loader would double the code for no new result.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from etoro_nb.config import Environment
    from etoro_nb.ledger import Ledger
    from etoro_nb.resources.agent_portfolios import AgentPortfolios
    from etoro_nb.resources.market import Market
    from etoro_nb.resources.trading import Trading


class ClientAPI(Protocol):
    """What ``EtoroClient`` offers that the loaders and the rebalancer call."""

    @property
    def environment(self) -> Environment: ...

    @property
    def ledger(self) -> Ledger | None:
        """Where the client records its requests (the token loader reads revocations)."""
        ...

    @property
    def agent_portfolios(self) -> AgentPortfolios: ...

    @property
    def market(self) -> Market: ...

    def trading(self, mode: str = "demo") -> Trading: ...

    def now(self) -> datetime: ...

    def recorded_now(self) -> datetime: ...

    def ensure_real_allowed(self, real_money: bool = True) -> None: ...


__all__ = ["ClientAPI"]
