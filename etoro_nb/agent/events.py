"""The lifecycle events of risk boundaries, as the ledger records them.

Owner controls (``controls``): ``policy_set`` (a policy version: its limits, what changed,
what loosened and the consent given; ``phase = 'failed'`` when a loosening was refused for
want of consent), ``agent_paused``, ``agent_resumed``. Agent sessions (``session``):
``policy_refused`` (a local refusal: rule, limit, attempted), ``order_booked`` (the book
after each order placed), ``book_reconciled`` (the book after each read),
``session_stopped`` (the reason). Each row names the agent portfolio; a session's rows
name its token too, and the application of the session's client when it has one
(``detail.application``, such as an MCP client's ``"mcp:<name>"``; absent in older rows).
``frames.policy_events`` reads them all back, one row per event.

The book after each order is kept in memory and written in batches (``BookLog``): one
``order_booked`` row holds up to ``BOOK_BATCH`` orders (``detail.orders``, each with its own
time and request id), written when the batch is full, ``BOOK_SECONDS`` after its first
order, and before any other event of the session (so the ledger keeps their order). A
ledger write per order would be the largest part of what a session adds to an order; the
order itself is in the usage events the moment it is sent, so a process killed before a
batch is written loses only the book figures of its last orders.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from etoro_nb.errors import LedgerError
from etoro_nb.ledger import Ledger
from etoro_nb.ledger.schema import AGENT_KINDS

log = logging.getLogger("etoro_nb.agent")

POLICY_SET, PAUSED, RESUMED, REFUSED, BOOKED, RECONCILED, STOPPED = AGENT_KINDS
CONTROL_KINDS = (POLICY_SET, PAUSED, RESUMED)
"""The owner's kinds: what an agent session watches for before each order."""


def us(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000)


def record(ledger: Ledger, kind: str, at: datetime, *, portfolio_id: str | None,
           detail: Mapping[str, Any], token_id: str | None = None,
           request_id: str | None = None, phase: str = "outcome") -> int:
    """Append one event; a ``LedgerError`` means it was not recorded."""
    if kind not in AGENT_KINDS:
        raise ValueError(f"{kind!r} is not a risk-boundary event ({', '.join(AGENT_KINDS)})")
    return ledger.append_lifecycle(kind=kind, ts_us=us(at), portfolio_id=portfolio_id,
                                   token_id=token_id, request_id=request_id or str(uuid.uuid4()),
                                   detail=dict(detail), phase=phase)


BOOK_BATCH = 50
BOOK_SECONDS = 5.0


class BookLog:
    """An agent session's ``order_booked`` rows, batched (see the module's docstring)."""

    def __init__(self, ledger: Ledger | None, portfolio_id: str | None,
                 token_id: str | None, application: str | None = None) -> None:
        self.ledger = ledger
        self.portfolio_id = portfolio_id
        self.token_id = token_id
        self.application = application
        self.orders: list[dict[str, Any]] = []
        self._first = 0.0

    def add(self, at: datetime, request_id: str | None, detail: Mapping[str, Any]) -> None:
        if self.ledger is None:
            return
        if not self.orders:
            self._first = time.monotonic()
        self.orders.append({"ts_us": us(at), "request_id": request_id, **detail})
        if len(self.orders) >= BOOK_BATCH or time.monotonic() - self._first >= BOOK_SECONDS:
            self.flush(at)

    def flush(self, at: datetime | None = None) -> None:
        """Write the batch (never raises: the orders were placed; a failure is logged)."""
        if not self.orders:
            return
        batch, self.orders = self.orders, []
        when = at or datetime.fromtimestamp(batch[-1]["ts_us"] / 1e6, UTC)
        detail: dict[str, Any] = {"orders": batch}
        if self.application is not None:
            detail["application"] = self.application  # one per batch: one session's orders
        record_after(self.ledger, BOOKED, when, portfolio_id=self.portfolio_id,
                     token_id=self.token_id, detail=detail)


def record_after(ledger: Ledger | None, kind: str, at: datetime, **fields: Any) -> None:
    """Record something that already happened: a ledger that refuses is logged, not
    raised (the order was placed, the refusal is raised anyway, the session stops anyway).
    """
    if ledger is None:
        return
    try:
        record(ledger, kind, at, **fields)
    except LedgerError as exc:
        log.error("could not record %s for portfolio %s: %s", kind, fields.get("portfolio_id"),
                  exc)
