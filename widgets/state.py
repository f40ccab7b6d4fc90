"""CockpitState: the one model every view of a client reads (portfolios, tokens, policies,
the selected portfolio, the last refresh), loaded once per refresh and shared.

Views observe it; they never fetch on their own. An action in any view refreshes the
state, and every view built on it redraws from the new data (``revision``). Views built
from the same client share one state (``CockpitState.of(client)``), so panels shown in
separate cells stay in step with each other and with a ``Cockpit``.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl
import traitlets

from etoro_nb import frames
from etoro_nb.agent.controls import Controls, controls_from
from etoro_nb.client import EtoroClient
from etoro_nb.errors import EtoroError
from etoro_nb.models import AgentPortfolio

READS_PER_REFRESH = 6
"""Reads one refresh makes: the portfolio list three times (for the models, the accounting
and the token frame), the real account's P&L and trade history (one page), and the
clock (on a sandbox, its status). The auto-refresh budgets its quota with this."""


@dataclass(frozen=True)
class Snapshot:
    """What one refresh loaded."""

    portfolios: tuple[AgentPortfolio, ...] = ()
    accounting: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(
        schema=frames.ACCOUNTING_SCHEMA))
    tokens: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=frames.TOKENS_SCHEMA))
    controls: dict[str, Controls] = field(default_factory=dict)
    at: datetime | None = None

    def names(self) -> dict[str, str]:
        """Portfolio id -> name."""
        return {p.id: p.name for p in self.portfolios}

    def portfolio(self, portfolio_id: str | None) -> AgentPortfolio | None:
        return next((p for p in self.portfolios if p.id == portfolio_id), None)


_SHARED: weakref.WeakKeyDictionary[EtoroClient, CockpitState] = weakref.WeakKeyDictionary()


class CockpitState(traitlets.HasTraits):
    """The shared model. Observe ``revision`` (new data), ``selected`` (the portfolio the
    views follow), ``action`` (a view started an action: earlier messages are stale) and
    ``error`` (the last refresh failed: the data is the previous refresh's)."""

    selected = traitlets.Unicode(None, allow_none=True)
    revision = traitlets.Int(0)
    action = traitlets.Int(0)
    error = traitlets.Unicode("")

    def __init__(self, client: EtoroClient) -> None:
        super().__init__()
        self.client = client
        self.data = Snapshot()
        self._loaded = False

    @classmethod
    def of(cls, client: EtoroClient) -> CockpitState:
        """The state every view of this client shares (made on first use)."""
        state = _SHARED.get(client)
        if state is None:
            state = _SHARED[client] = cls(client)
        return state

    def ensure(self) -> None:
        """Load once: the first view built triggers the load, later ones reuse it."""
        if not self._loaded:
            self.refresh()

    def refresh(self) -> bool:
        """Reload everything from the API and the ledger; every view redraws. On failure
        the previous data stays and ``error`` says why; returns whether it loaded."""
        try:
            data = self._load()
        except EtoroError as exc:
            from widgets._common import error_text

            self.error = error_text(exc)
            return False
        self.data, self._loaded, self.error = data, True, ""
        self.revision += 1
        if self.selected is not None and data.portfolio(self.selected) is None:
            self.selected = None  # deleted
        return True

    def _load(self) -> Snapshot:
        client = self.client
        now = client.now()
        portfolios = tuple(client.agent_portfolios.list())
        accounting = frames.accounting(client)
        tokens = frames.tokens(client, now=now)
        controls: dict[str, Controls] = {}
        if client.ledger is not None and portfolios:
            events = frames.policy_events(client.ledger, server_refusals=False)
            assert isinstance(events, pl.DataFrame)
            controls = {p.id: controls_from(events, p.id) for p in portfolios}
        return Snapshot(portfolios, accounting, tokens, controls, now)

    def current(self) -> str | None:
        """The portfolio the views show: the selected one, else the first (None: none)."""
        if self.data.portfolio(self.selected) is not None:
            return self.selected
        return self.data.portfolios[0].id if self.data.portfolios else None

    def select(self, portfolio_id: str | None) -> None:
        """Make ``portfolio_id`` the portfolio every view follows (None: none)."""
        if portfolio_id is not None and self.data.portfolio(portfolio_id) is None:
            raise ValueError(f"no agent portfolio {portfolio_id!r} in the cockpit")
        self.selected = portfolio_id

    def begin_action(self) -> None:
        """A view starts an action: every view clears the messages of earlier ones."""
        self.action += 1
