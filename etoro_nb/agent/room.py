"""``Room``: how large an opening order may be now, and which rule says so, so that an agent
(the ``Rebalancer``) sizes its orders to the policy instead of being refused.

``amount_room`` is the pure part: the limits on one order's amount (the largest amount per
order, and what the gross exposure caps leave at a leverage). The session adds the rules
that allow an order or not at all (``SessionCore._room``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from etoro_nb.agent.book import BookView
from etoro_nb.agent.policy import RiskPolicy


@dataclass(frozen=True)
class Room:
    """The largest amount (USD, margin) an opening order may take now.

    ``usd`` is 0 when no opening order may be placed, ``inf`` when nothing limits the
    amount. ``rule`` is the policy rule that sets it (a ``RiskPolicy`` field, or ``scope``,
    ``paused``), with its ``limit`` and ``source`` (``owner`` or ``session``); None when no
    rule limits it. ``closes`` is False when closing is refused too (no write scope,
    paused, or a policy expired). ``message`` says why, in words."""

    usd: float
    rule: str | None = None
    limit: Any = None
    source: str | None = None
    closes: bool = True
    message: str | None = None

    @property
    def blocked(self) -> bool:
        """No opening order may be placed now."""
        return self.usd <= 0


def _cents_down(usd: float) -> float:
    return max(0.0, math.floor(usd * 100 + 1e-6) / 100)


def amount_room(policies: Iterable[tuple[str, RiskPolicy]], view: BookView,
                base_usd: float | None, leverage: int) -> Room:
    """The tightest of each policy's largest amount per order and what its gross exposure
    caps (in USD, and as a share of ``base_usd``) leave at ``leverage``, whole cents down."""
    room = Room(math.inf)
    for source, policy in policies:
        caps: list[tuple[str, Any, float]] = []
        if policy.max_order_amount_usd is not None:
            caps.append(("max_order_amount_usd", policy.max_order_amount_usd,
                         policy.max_order_amount_usd))
        if policy.max_gross_exposure_usd is not None:
            caps.append(("max_gross_exposure_usd", policy.max_gross_exposure_usd,
                         (policy.max_gross_exposure_usd - view.gross_exposure_usd) / leverage))
        share = policy.max_gross_exposure_share
        if share is not None and base_usd:
            caps.append(("max_gross_exposure_share", share,
                         (share * base_usd - view.gross_exposure_usd) / leverage))
        for rule, limit, usd in caps:
            usd = _cents_down(usd)
            if usd < room.usd:
                room = Room(usd, rule, limit, source, message=_said(rule, limit, usd, view))
    return room


def _said(rule: str, limit: Any, usd: float, view: BookView) -> str:
    if rule == "max_order_amount_usd":
        return f"at most {limit:,.2f} USD per order"
    held = f"gross exposure {view.gross_exposure_usd:,.2f} USD"
    if rule == "max_gross_exposure_share":
        return f"{held}, the limit is {limit:g} of the virtual balance: {usd:,.2f} USD left"
    return f"{held} of at most {limit:,.2f} USD: {usd:,.2f} USD left"


__all__ = ["Room", "amount_room"]
