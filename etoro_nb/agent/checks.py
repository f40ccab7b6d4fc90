"""The rules an order is checked against, one function per group, in the order the session
applies them: scope; pause and expiry; instruments; size; the book (positions, exposure);
pace (orders per day and hour); the day's loss; timing (hours, stop loss).

Each rule takes one policy and what it needs to know, and returns the ``PolicyViolation``
to raise, or None. They are pure: the session gathers the facts (and re-reads the account
when the book may overstate), records refusals and raises. An order *exactly at* a limit
passes; a limit is crossed only by going over it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from etoro_nb.agent.book import BookView
from etoro_nb.agent.policy import RiskPolicy, asset_class_key, instrument_key
from etoro_nb.errors import PolicyViolation

CENT = 0.005  # half a cent: money is compared at the cent it is booked at
Kind = Literal["open", "close", "cancel"]


@dataclass(frozen=True)
class Instrument:
    """What the session knows of an instrument (from the market data search)."""

    instrument_id: int | None
    symbol: str | None
    asset_class_id: int | None = None
    asset_class: str | None = None

    def ids(self) -> set[int | str]:
        return {k for k in (self.instrument_id,
                            None if self.symbol is None else instrument_key(self.symbol))
                if k is not None}

    def classes(self) -> set[int | str]:
        return {k for k in (self.asset_class_id,
                            None if self.asset_class is None else asset_class_key(self.asset_class))
                if k is not None}

    def label(self) -> str:
        return str(self.symbol or self.instrument_id)


@dataclass(frozen=True)
class Order:
    """An order as the rules see it. A close or cancel carries only its kind."""

    kind: Kind
    instrument: Instrument | None = None
    amount_usd: float = 0.0
    leverage: int = 1
    stop_loss: float | None = None

    @property
    def exposure_usd(self) -> float:
        return self.amount_usd * self.leverage


def _over(value: float, limit: float) -> bool:
    return value > limit + CENT


def scope(scopes: frozenset[str], required: str) -> PolicyViolation | None:
    if required in scopes:
        return None
    return PolicyViolation("scope", sorted(scopes), required, figures=False,
                           message=f"the token's scopes ({', '.join(sorted(scopes)) or 'none'}) "
                                   f"do not include {required}")


def expiry(policy: RiskPolicy, now: datetime) -> PolicyViolation | None:
    if policy.expires_at is None or now < policy.expires_at:
        return None
    return PolicyViolation("expires_at", policy.expires_at.isoformat(), now.isoformat(),
                           message=f"the policy expired at {policy.expires_at.isoformat()}")


def instruments(policy: RiskPolicy, order: Order) -> PolicyViolation | None:
    inst = order.instrument
    if inst is None:  # sizing without an instrument (``AgentSession.room_usd``)
        return None
    keys = inst.ids()
    if policy.allowed_instruments is not None and not keys & set(policy.allowed_instruments):
        return PolicyViolation("allowed_instruments", list(policy.allowed_instruments),
                               inst.label())
    if policy.denied_instruments is not None and keys & set(policy.denied_instruments):
        return PolicyViolation("denied_instruments", list(policy.denied_instruments),
                               inst.label(), message=f"{inst.label()} is on the deny list")
    if policy.allowed_asset_classes is not None and not inst.classes() & set(
            policy.allowed_asset_classes):
        return PolicyViolation("allowed_asset_classes", list(policy.allowed_asset_classes),
                               inst.asset_class or inst.asset_class_id or "unknown")
    return None


def size(policy: RiskPolicy, order: Order) -> PolicyViolation | None:
    if policy.max_order_amount_usd is not None and _over(order.amount_usd,
                                                          policy.max_order_amount_usd):
        return PolicyViolation("max_order_amount_usd", policy.max_order_amount_usd,
                               order.amount_usd)
    if policy.max_leverage is not None and order.leverage > policy.max_leverage:
        return PolicyViolation("max_leverage", policy.max_leverage, order.leverage)
    return None


def book(policy: RiskPolicy, order: Order, view: BookView,
         base_usd: float | None) -> PolicyViolation | None:
    """Open positions and gross exposure after the order; the exposure share needs the
    portfolio's virtual balance (``base_usd``): without one it cannot hold, and refuses."""
    if policy.max_open_positions is not None and view.open_positions + 1 > policy.max_open_positions:
        return PolicyViolation("max_open_positions", policy.max_open_positions,
                               view.open_positions + 1)
    after = round(view.gross_exposure_usd + order.exposure_usd, 2)
    if policy.max_gross_exposure_usd is not None and _over(after, policy.max_gross_exposure_usd):
        return PolicyViolation("max_gross_exposure_usd", policy.max_gross_exposure_usd, after)
    share = policy.max_gross_exposure_share
    if share is not None:
        if not base_usd:
            return PolicyViolation("max_gross_exposure_share", share, None,
                                   message="the portfolio's virtual balance is unknown, so "
                                           "the exposure share cannot be held")
        if _over(after, share * base_usd):
            return PolicyViolation("max_gross_exposure_share", share, round(after / base_usd, 6),
                                   message=f"gross exposure would be {after:,.2f} USD, "
                                           f"{after / base_usd:.4g} of the virtual balance "
                                           f"{base_usd:,.2f} USD; the limit is {share:g}")
    return None


def pace(policy: RiskPolicy, view: BookView) -> PolicyViolation | None:
    if policy.max_orders_per_day is not None and view.orders_today + 1 > policy.max_orders_per_day:
        return PolicyViolation("max_orders_per_day", policy.max_orders_per_day,
                               view.orders_today + 1)
    if policy.max_orders_per_hour is not None and \
            view.orders_last_hour + 1 > policy.max_orders_per_hour:
        return PolicyViolation("max_orders_per_hour", policy.max_orders_per_hour,
                               view.orders_last_hour + 1)
    return None


def loss(policy: RiskPolicy, view: BookView) -> PolicyViolation | None:
    """The day's net realised loss, the worst case since the last read included; reached
    (at or over the limit) stops opening orders. Unknown (not read today) refuses."""
    limit = policy.max_daily_loss_usd
    if limit is None:
        return None
    worst = view.worst_realized_pnl_today_usd
    if worst is None:
        return PolicyViolation("max_daily_loss_usd", limit, None,
                               message="the day's realised P&L is not known yet")
    lost = round(-worst, 2)
    if lost + CENT >= limit:
        return PolicyViolation("max_daily_loss_usd", limit, lost,
                               message=f"the day's realised loss is {lost:,.2f} USD and the limit "
                                       f"is {limit:,.2f} USD: no opening order until the next "
                                       "UTC day (closing is allowed)")
    return None


def timing(policy: RiskPolicy, order: Order, now: datetime) -> PolicyViolation | None:
    if not policy.in_hours(now):
        assert policy.trading_hours_utc is not None
        start, end = policy.trading_hours_utc
        return PolicyViolation("trading_hours_utc", f"{start:%H:%M}-{end:%H:%M} UTC",
                               f"{now:%H:%M} UTC")
    if policy.require_stop_loss and order.stop_loss is None:
        return PolicyViolation("require_stop_loss", True, None,
                               message="an opening order must carry a stop loss")
    return None
