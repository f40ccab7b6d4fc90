"""The agent session's own book: what its account holds, kept from the answers to its own
orders, so checking an order needs no read.

Between reads the book is an *upper bound* of the exposure and the open positions: an
order whose outcome is unknown counts as placed, and what the server may do on its own
(a stop loss or take profit closing a position, a pending order filling) can only lower
the figures. The realised P&L of a close is not in its answer, so until the next read the
book assumes the worst: a closed share lost all of its margin (no position loses more).
``reconcile`` replaces all of it with what one portfolio read shows.

Partial closes follow the sandbox's rules, which model eToro's (``docs/sandbox.md``): the
margin released is the closed share of the amount, rounded to the cent, and a close that
would leave less than 0.000001 units or a cent closes the whole position.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from etoro_nb.models import Portfolio

HOUR = timedelta(hours=1)
UNITS_DECIMALS = 6
MONEY_DECIMALS = 2


@dataclass(frozen=True)
class Holding:
    """An open position, or an order that is (or may be) placed: what it holds at cost."""

    instrument: int | str
    is_buy: bool
    amount_usd: float
    leverage: int
    position_id: int | None = None
    order_id: int | None = None
    units: float | None = None
    pending: bool = False
    """An order waiting for its trigger rate (the server fills it on its own)."""
    triggers: bool = False
    """A stop loss or take profit is set: the server may close it on its own."""

    @property
    def exposure_usd(self) -> float:
        return self.amount_usd * self.leverage

    @property
    def exposure_cents(self) -> int:
        return round(self.amount_usd * 100) * self.leverage


@dataclass(frozen=True)
class BookView:
    """The book at one moment (``AgentSession.book``)."""

    at: datetime
    gross_exposure_usd: float
    open_positions: int
    realized_pnl_today_usd: float | None
    """Net realised P&L of the UTC day as of the last read (None: not read yet today)."""
    worst_realized_pnl_today_usd: float | None
    """The same, assuming every close since that read lost its whole released margin."""
    orders_today: int
    orders_last_hour: int
    read_at: datetime | None
    orders_since_read: int


class Book:
    """Holdings keyed ``("position", id)`` once a read has shown them, ``("order", id)``
    before; daily counters; realised P&L. Not thread-safe: the session serialises."""

    def __init__(self) -> None:
        self._holdings: dict[tuple[str, int], Holding] = {}
        self._exposure_cents = 0  # kept as holdings change: no sum per order
        self.realized_today_usd: float | None = None
        self.released_since_read = 0.0
        self.equity_at_cost: float | None = None
        self.read_at: datetime | None = None
        self.day: date | None = None
        self.orders_since_read = 0
        self.order_times: list[datetime] = []  # sorted
        self.unplaced = False  # a close or cancel of something the book does not hold
        self.unknown_outcome = False  # an order may or may not have been placed
        self._provisional = 0

    # -- holdings --------------------------------------------------------------------------
    @property
    def holdings(self) -> dict[tuple[str, int], Holding]:
        """Read only: change them through the methods below."""
        return self._holdings

    def _put(self, key: tuple[str, int], holding: Holding) -> None:
        self._drop(key)
        self._holdings[key] = holding
        self._exposure_cents += holding.exposure_cents

    def _drop(self, key: tuple[str, int]) -> Holding | None:
        gone = self._holdings.pop(key, None)
        if gone is not None:
            self._exposure_cents -= gone.exposure_cents
        return gone

    # -- figures ---------------------------------------------------------------------------
    @property
    def gross_exposure_usd(self) -> float:
        return self._exposure_cents / 100

    @property
    def open_positions(self) -> int:
        return len(self._holdings)

    @property
    def worst_realized_usd(self) -> float | None:
        if self.realized_today_usd is None:
            return None
        return round(self.realized_today_usd - self.released_since_read, MONEY_DECIMALS)

    def may_overstate(self) -> bool:
        """Whether a read could show less exposure or fewer positions than the book."""
        return self.unplaced or self.unknown_outcome or any(
            h.pending or h.triggers for h in self._holdings.values())

    def loss_uncertain(self) -> bool:
        """Whether a read could show a smaller realised loss than the book assumes."""
        return self.realized_today_usd is None or self.released_since_read > 0

    def orders_today(self, now: datetime) -> int:
        times = self.order_times
        return bisect_right(times, now) - bisect_left(times, _day_start(now))

    def orders_last_hour(self, now: datetime) -> int:
        times = self.order_times
        return bisect_right(times, now) - bisect_right(times, now - HOUR)

    def view(self, now: datetime) -> BookView:
        return BookView(now, self.gross_exposure_usd,
                        self.open_positions, self.realized_today_usd, self.worst_realized_usd,
                        self.orders_today(now), self.orders_last_hour(now), self.read_at,
                        self.orders_since_read)

    # -- the day ---------------------------------------------------------------------------
    def roll(self, now: datetime) -> None:
        """Start a new UTC day: the realised P&L of the new day is unknown until a read."""
        today = now.date()
        if self.day != today:
            if self.day is not None:
                self.realized_today_usd = None
            self.day = today
        keep_from = min(_day_start(now), now - HOUR)
        del self.order_times[:bisect_left(self.order_times, keep_from)]

    def count_orders(self, times: list[datetime]) -> None:
        """Orders placed before this session (from the ledger)."""
        self.order_times = sorted([*times, *self.order_times])

    # -- the session's own orders ----------------------------------------------------------
    def placed(self, now: datetime) -> None:
        """An order was sent (opens and closes count towards the order limits)."""
        insort(self.order_times, now)
        self.orders_since_read += 1

    def opened(self, order_id: int | None, holding: Holding) -> None:
        """An opening order was placed (``order_id`` None: its outcome is unknown)."""
        if order_id is None:
            self._provisional -= 1  # a key no server id takes
            self.unknown_outcome = True
            self._put(("order", self._provisional), holding)
        else:
            self._put(("order", order_id), replace(holding, order_id=order_id))

    def closed(self, position_id: int, units: float | None) -> float:
        """A close was placed; returns the margin it released (0 if the book did not hold
        the position: it then may overstate until the next read)."""
        key = ("position", position_id)
        held = self._holdings.get(key)
        if held is None or held.units is None:
            self.unplaced = True
            return 0.0
        if units is None:
            released = held.amount_usd
            self._drop(key)
        else:
            share = held.amount_usd * round(units, UNITS_DECIMALS) / held.units
            released = round(share, MONEY_DECIMALS)
            left_units = round(held.units - round(units, UNITS_DECIMALS), UNITS_DECIMALS)
            left_amount = round(held.amount_usd - released, MONEY_DECIMALS)
            if left_units <= 0 or left_amount <= 0:
                released = held.amount_usd
                self._drop(key)
            else:
                self._put(key, replace(held, units=left_units, amount_usd=left_amount))
        self.released_since_read = round(self.released_since_read + released, MONEY_DECIMALS)
        return released

    def cancelled(self, order_id: int) -> None:
        if self._drop(("order", order_id)) is None:
            self.unplaced = True

    def position_of(self, position_id: int) -> Holding | None:
        return self._holdings.get(("position", position_id))

    # -- reads -----------------------------------------------------------------------------
    def reconcile(self, portfolio: Portfolio, now: datetime,
                  realized_today_usd: float | None = None) -> None:
        """Take the account as a read shows it. ``realized_today_usd`` is the day's net
        realised P&L when it was read too; otherwise it moves by what the account's value
        at cost (credit plus the amounts of its positions and pending orders) moved since
        the last read on the same day: only realised P&L moves that."""
        self.roll(now)
        held: dict[tuple[str, int], Holding] = {}
        for p in portfolio.positions:
            held[("position", p.position_id)] = Holding(
                p.instrument_id, p.is_buy, p.amount, p.leverage, position_id=p.position_id,
                order_id=p.order_id, units=p.units,
                triggers=bool(p.stop_loss_rate or p.take_profit_rate))
        for o in portfolio.orders:
            held[("order", o.order_id)] = Holding(o.instrument_id, o.is_buy, o.amount,
                                                  int(o.leverage), order_id=o.order_id,
                                                  pending=True)
        equity = round(portfolio.credit + sum(h.amount_usd for h in held.values()),
                       MONEY_DECIMALS)
        if realized_today_usd is not None:
            self.realized_today_usd = round(realized_today_usd, MONEY_DECIMALS)
        elif (self.realized_today_usd is not None and self.equity_at_cost is not None
              and self.read_at is not None and self.read_at.date() == now.date()):
            self.realized_today_usd = round(self.realized_today_usd + equity
                                            - self.equity_at_cost, MONEY_DECIMALS)
        else:
            self.realized_today_usd = None
        self._holdings = held
        self._exposure_cents = sum(h.exposure_cents for h in held.values())
        self.equity_at_cost = equity
        self.read_at = now
        self.released_since_read = 0.0
        self.orders_since_read = 0
        self.unplaced = self.unknown_outcome = False


def _day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)
