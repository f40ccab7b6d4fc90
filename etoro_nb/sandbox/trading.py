"""Orders, positions, portfolios, P&L and trade history, and the copy mirror.

Money model (docs/sandbox.md): a position's ``amount`` is the margin taken from the
account's credit; its exposure is ``amount x leverage``; units = exposure / open rate.
Buys open at the ask and close at the bid, sells the other way round, so P&L is
``units x (close - open)`` for a buy and the negative for a sell, and a position never
loses more than its amount. No fees. Every instrument is quoted in USD.

Precision: money (credits, amounts, realised P&L, mirror cash) is booked in whole cents
and units on a 0.000001 grid, so every balance is a sum of cents and adds up exactly.
No open position ever holds 0 units or 0 cents: a copy that would is not opened, and a
close that would leave less than that open closes the whole position.

What an agent portfolio's account opens or closes on the **real** endpoints is copied
into each open mirror of it at ``investment / virtual balance`` of the size, into the
owner's real account. Pending market-if-touched orders and stop-loss / take-profit
levels are checked against the current price at the start of every trading request.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from etoro_nb.sandbox.delegation import Delegation
from etoro_nb.sandbox.errors import ApiError, not_found, validation
from etoro_nb.sandbox.market import BY_ID, CURRENCY, Instrument, PriceSimulator
from etoro_nb.sandbox.store import Store
from etoro_nb.sandbox.validation import iso

Mode = Literal["real", "demo"]
MIN_ORDER_AMOUNT = 10.0
EPS = 1e-9
ORDER_TYPE_ID = {"mkt": 17, "mit": 1}
STATUS = {"pending": (1, "Pending"), "executed": (3, "Executed"),
          "cancelled": (4, "Cancelled"), "rejected": (2, "Rejected")}
POSITION_ROUND = 6  # units are kept to 6 decimals
MONEY_ROUND = 2  # money is kept in cents


@dataclass(frozen=True)
class OrderRequest:
    """A validated request to open a position."""

    instrument: Instrument
    is_buy: bool
    leverage: int
    settlement: str
    amount: float | None
    units: float | None
    order_type: str
    trigger_rate: float | None
    stop_loss: float
    take_profit: float
    is_tsl: bool
    api: str


class Trading:
    """The trading engine over the store, priced by the simulator."""

    def __init__(self, store: Store, delegation: Delegation, prices: PriceSimulator) -> None:
        self.store = store
        self.delegation = delegation
        self.prices = prices

    @property
    def conn(self) -> sqlite3.Connection:
        return self.store.conn

    # -- helpers ----------------------------------------------------------------------
    def _credit(self, cid: int) -> float:
        return self.delegation.credit(cid)

    def _add_credit(self, cid: int, delta: float) -> None:
        self.conn.execute("UPDATE accounts SET credit = round(credit + ?, 2) WHERE cid = ?",
                          (delta, cid))

    def open_rate(self, instrument_id: int, is_buy: bool, now: datetime) -> float:
        bid, ask = self.prices.quote(instrument_id, now)
        return ask if is_buy else bid

    def close_rate(self, instrument_id: int, is_buy: bool, now: datetime) -> float:
        bid, ask = self.prices.quote(instrument_id, now)
        return bid if is_buy else ask

    @staticmethod
    def pnl(row: sqlite3.Row | dict[str, Any], units: float, close_rate: float) -> float:
        direction = 1.0 if row["is_buy"] else -1.0
        return float(units * (close_rate - row["open_rate"]) * direction)

    # -- validation ---------------------------------------------------------------------
    def check_order(
        self, instrument: Instrument, is_buy: bool, leverage: int | None,
        settlement: str | None, stop_loss: float | None, take_profit: float | None,
        now: datetime,
    ) -> tuple[int, str]:
        """Leverage and settlement for an order, after checking them and its stops."""
        lev = 1 if leverage is None else leverage
        max_lev = instrument.kind.max_leverage
        if not 1 <= lev <= max_lev:
            raise validation(
                f"leverage must be between 1 and {max_lev} for {instrument.symbol}, got {lev}"
            )
        if settlement is None:
            real_ok = is_buy and lev == 1 and instrument.kind is not CURRENCY
            settlement = "real" if real_ok else "cfd"
        if settlement not in ("cfd", "real"):
            raise validation(f"settlementType {settlement!r} is not offered for {instrument.symbol}")
        if settlement == "real" and (not is_buy or lev != 1 or instrument.kind is CURRENCY):
            raise validation(
                "settlementType 'real' needs a buy at leverage 1 of a stock, ETF or crypto"
            )
        rate = self.open_rate(instrument.instrument_id, is_buy, now)
        if stop_loss and (stop_loss < 0 or (is_buy and stop_loss >= rate)
                          or (not is_buy and stop_loss <= rate)):
            side = "below" if is_buy else "above"
            raise validation(f"stopLossRate must be {side} the current rate {rate} "
                             f"for a {'buy' if is_buy else 'sell'}")
        if take_profit and (take_profit < 0 or (is_buy and take_profit <= rate) or (
            not is_buy and take_profit >= rate
        )):
            side = "above" if is_buy else "below"
            raise validation(f"takeProfitRate must be {side} the current rate {rate} "
                             f"for a {'buy' if is_buy else 'sell'}")
        return lev, settlement

    # -- settling pending work ------------------------------------------------------------
    def settle(self, now: datetime) -> None:
        """Fill touched market-if-touched orders and close positions past SL or TP."""
        for order in self.conn.execute(
            "SELECT * FROM orders WHERE status = 'pending' ORDER BY order_id"
        ).fetchall():
            bid, ask = self.prices.quote(order["instrument_id"], now)
            rate = ask if order["is_buy"] else bid
            trigger = order["trigger_rate"]
            rising = order["trigger_direction"] == "up"
            if (rising and rate >= trigger) or (not rising and rate <= trigger):
                self._execute(order, now)
        for pos in self.conn.execute(
            "SELECT * FROM positions WHERE closed_at IS NULL AND mirror_id = 0 "
            "AND (stop_loss > 0 OR take_profit > 0) ORDER BY position_id"
        ).fetchall():
            rate = self.close_rate(pos["instrument_id"], bool(pos["is_buy"]), now)
            buy = bool(pos["is_buy"])
            hit_sl = pos["stop_loss"] > 0 and (rate <= pos["stop_loss"] if buy
                                               else rate >= pos["stop_loss"])
            hit_tp = pos["take_profit"] > 0 and (rate >= pos["take_profit"] if buy
                                                 else rate <= pos["take_profit"])
            if hit_sl or hit_tp:
                self._close(pos, pos["units"], rate, pos["order_id"], now)

    # -- opening ----------------------------------------------------------------------
    def place(
        self, cid: int, req: OrderRequest, token: str, reference_id: str, now: datetime
    ) -> sqlite3.Row:
        """Record an order and, for a market order, execute it at once.

        ``reference_id`` is the x-request-id the order was placed with, as the contract's
        lookup by ``referenceId`` expects.
        """
        rate_now = self.open_rate(req.instrument.instrument_id, req.is_buy, now)
        basis = req.trigger_rate if req.order_type == "mit" else rate_now
        assert basis is not None
        amount = req.amount if req.amount is not None else (req.units or 0) * basis / req.leverage
        amount = round(amount, 2)
        if amount < MIN_ORDER_AMOUNT:
            raise validation(
                f"The order's amount is {amount:.2f} USD; the minimum is {MIN_ORDER_AMOUNT:g} USD"
            )
        credit = self._credit(cid)
        if amount > credit + EPS:
            raise ApiError(400, "InsufficientFunds",
                           f"The order needs {amount:.2f} USD but the account's available "
                           f"credit is {credit:.2f} USD")
        order_id = self.store.next_id("order")
        direction = None
        if req.order_type == "mit":
            assert req.trigger_rate is not None
            direction = "up" if req.trigger_rate >= rate_now else "down"
        self.conn.execute(
            "INSERT INTO orders (order_id, cid, reference_id, token, api, order_type, status, "
            "instrument_id, is_buy, leverage, settlement, amount, units, trigger_rate, stop_loss, "
            "take_profit, is_tsl, created_at, updated_at, trigger_direction) "
            "VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (order_id, cid, reference_id, token, req.api, req.order_type,
             req.instrument.instrument_id, req.is_buy, req.leverage, req.settlement,
             amount, req.units, req.trigger_rate, req.stop_loss, req.take_profit, req.is_tsl,
             iso(now), iso(now), direction),
        )
        # The amount is frozen while the order waits, and becomes the position's margin.
        self._add_credit(cid, -amount)
        order = self.order(cid, order_id)
        if req.order_type == "mkt":
            self._execute(order, now)
        return self.order(cid, order_id)

    def _execute(self, order: sqlite3.Row, now: datetime) -> None:
        rate = self.open_rate(order["instrument_id"], bool(order["is_buy"]), now)
        units = round(order["amount"] * order["leverage"] / rate, POSITION_ROUND)
        position_id = self._insert_position(
            order["cid"], order["order_id"], order, units, order["amount"], rate, now,
            mirror_id=0, parent_position_id=0,
        )
        self.conn.execute(
            "UPDATE orders SET status = 'executed', position_id = ?, updated_at = ? "
            "WHERE order_id = ?",
            (position_id, iso(now), order["order_id"]),
        )
        for mirror, ratio in self._mirrors_of(order["cid"]):
            copy_amount = round(min(order["amount"] * ratio, mirror["available_amount"]),
                                MONEY_ROUND)
            copy_units = round(units * copy_amount / order["amount"], POSITION_ROUND)
            if copy_amount <= 0 or copy_units <= 0:
                continue  # too small to hold at the sandbox's precision: the cash stays put
            self._insert_position(
                mirror["cid"], order["order_id"], order, copy_units, copy_amount, rate, now,
                mirror_id=mirror["mirror_id"], parent_position_id=position_id,
            )
            self.conn.execute(
                "UPDATE mirrors SET available_amount = round(available_amount - ?, 2) "
                "WHERE mirror_id = ?",
                (copy_amount, mirror["mirror_id"]),
            )

    def _insert_position(
        self, cid: int, order_id: int, order: sqlite3.Row, units: float, amount: float,
        rate: float, now: datetime, *, mirror_id: int, parent_position_id: int,
    ) -> int:
        position_id = self.store.next_id("position")
        self.conn.execute(
            "INSERT INTO positions (position_id, cid, order_id, instrument_id, is_buy, leverage, "
            "settlement, units, initial_units, amount, initial_amount, open_rate, opened_at, "
            "stop_loss, take_profit, is_tsl, mirror_id, parent_position_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (position_id, cid, order_id, order["instrument_id"], order["is_buy"],
             order["leverage"], order["settlement"], units, units, round(amount, MONEY_ROUND),
             round(amount, MONEY_ROUND), rate, iso(now), order["stop_loss"] or 0.0,
             order["take_profit"] or 0.0, order["is_tsl"], mirror_id, parent_position_id),
        )
        return position_id

    def _mirrors_of(self, parent_cid: int) -> list[tuple[sqlite3.Row, float]]:
        rows = self.conn.execute(
            "SELECT m.*, p.virtual_balance FROM mirrors m JOIN portfolios p "
            "ON p.id = m.portfolio_id WHERE m.parent_cid = ? AND m.closed_at IS NULL",
            (parent_cid,),
        ).fetchall()
        return [(r, r["initial_investment"] / r["virtual_balance"]) for r in rows]

    # -- closing ----------------------------------------------------------------------
    def close_position(
        self, cid: int, position_id: int, instrument_id: int, units: float | None,
        token: str, now: datetime,
    ) -> dict[str, Any]:
        pos = self.conn.execute(
            "SELECT * FROM positions WHERE position_id = ? AND cid = ? AND closed_at IS NULL",
            (position_id, cid),
        ).fetchone()
        if pos is None:
            raise not_found(f"Position {position_id} not found among this account's open positions")
        if pos["mirror_id"]:
            raise validation(
                f"Position {position_id} is a copy in mirror {pos['mirror_id']}; it closes when "
                "the agent portfolio closes its own position"
            )
        if instrument_id != pos["instrument_id"]:
            raise validation(
                f"InstrumentId {instrument_id} does not match position {position_id}'s "
                f"instrument {pos['instrument_id']}"
            )
        # Units are held to 6 decimals, so that is the precision a deduction is taken at.
        deduct = None if units is None else round(units, POSITION_ROUND)
        if deduct is not None and (deduct <= 0 or deduct > pos["units"] + EPS):
            raise validation(
                f"UnitsToDeduct must be at least 0.000001 (units are kept to 6 decimals) and "
                f"at most the position's {pos['units']} units, got {units}"
            )
        order_id = self.store.next_id("order")
        rate = self.close_rate(pos["instrument_id"], bool(pos["is_buy"]), now)
        to_close = self._close(pos, pos["units"] if deduct is None else deduct, rate, order_id, now)
        self.conn.execute(
            "INSERT INTO close_orders (order_id, cid, position_id, instrument_id, units, token, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (order_id, cid, position_id, pos["instrument_id"], to_close, token, iso(now)),
        )
        return {"order_id": order_id, "units": to_close, "position": pos}

    def _close(
        self, pos: sqlite3.Row, units: float, rate: float, order_id: int, now: datetime
    ) -> float:
        """Close ``units`` of a position (and the same share of its copies) at ``rate``.

        A close that would leave less than 0.000001 units or less than a cent open closes
        the whole position instead, so an open position never holds 0 units or 0 amount
        (closing a share of one would divide by zero). Returns the units closed.
        """
        held = float(pos["units"])
        amount = float(pos["amount"])
        units = round(min(units, held), POSITION_ROUND)
        # held > 0 for every position this code opened; a 0 left by older versions closes whole.
        share = amount * units / held if held > 0 else amount
        released = round(share, MONEY_ROUND)
        left_units = round(held - units, POSITION_ROUND)
        left_amount = round(amount - released, MONEY_ROUND)
        full = left_units <= 0 or left_amount <= 0
        if full:
            units, share, released = held, amount, amount
        # The proceeds (margin share plus P&L, never below 0) are rounded to the cent as a
        # whole, as close to their exact value as cents allow; the P&L is what they add to
        # the released margin.
        proceeds = round(max(share + self.pnl(pos, units, rate), 0.0), MONEY_ROUND)
        profit = round(proceeds - released, MONEY_ROUND)
        self._add_credit_or_mirror(pos, released, profit)
        self.conn.execute(
            "INSERT INTO trades (cid, position_id, order_id, instrument_id, is_buy, leverage, "
            "units, open_rate, close_rate, opened_at, closed_at, investment, initial_investment, "
            "net_profit, stop_loss, take_profit, is_tsl, parent_position_id, mirror_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (pos["cid"], pos["position_id"], order_id, pos["instrument_id"], pos["is_buy"],
             pos["leverage"], units, pos["open_rate"], rate,
             pos["opened_at"], iso(now), released, pos["initial_amount"],
             profit, pos["stop_loss"], pos["take_profit"], pos["is_tsl"],
             pos["parent_position_id"], pos["mirror_id"]),
        )
        if full:
            self.conn.execute(
                "UPDATE positions SET units = 0, amount = 0, closed_at = ? WHERE position_id = ?",
                (iso(now), pos["position_id"]),
            )
        else:
            self.conn.execute(
                "UPDATE positions SET units = ?, amount = ? WHERE position_id = ?",
                (left_units, left_amount, pos["position_id"]),
            )
        for child in self.conn.execute(
            "SELECT * FROM positions WHERE parent_position_id = ? AND closed_at IS NULL",
            (pos["position_id"],),
        ).fetchall():
            if full:
                self._close(child, child["units"], rate, order_id, now)
                continue
            # A copy's share below the unit grid is left as it is: nothing of it can close
            # at that precision, and it closes with the rest of its parent.
            child_units = round(child["units"] * units / held, POSITION_ROUND)
            if child_units > 0:
                self._close(child, child_units, rate, order_id, now)
        return units

    def _add_credit_or_mirror(self, pos: sqlite3.Row, released: float, profit: float) -> None:
        """Return a closed share's value to its account, or to its mirror for a copy."""
        if pos["mirror_id"]:
            self.conn.execute(
                "UPDATE mirrors SET available_amount = round(available_amount + ?, 2), "
                "closed_net_profit = round(closed_net_profit + ?, 2) WHERE mirror_id = ?",
                (released + profit, profit, pos["mirror_id"]),
            )
        else:
            self._add_credit(pos["cid"], released + profit)

    # -- mirrors --------------------------------------------------------------------------
    def close_mirror(self, mirror_id: int, now: datetime) -> float:
        """Close every copy in a mirror and credit its whole value back to the owner."""
        for pos in self.conn.execute(
            "SELECT * FROM positions WHERE mirror_id = ? AND closed_at IS NULL", (mirror_id,)
        ).fetchall():
            rate = self.close_rate(pos["instrument_id"], bool(pos["is_buy"]), now)
            order_id = self.store.next_id("order")
            self._close(pos, pos["units"], rate, order_id, now)
        mirror = self.conn.execute(
            "SELECT * FROM mirrors WHERE mirror_id = ?", (mirror_id,)
        ).fetchone()
        value = round(float(mirror["available_amount"]), MONEY_ROUND)
        self.conn.execute(
            "UPDATE mirrors SET closed_at = ?, closed_value = ?, available_amount = 0 "
            "WHERE mirror_id = ?",
            (iso(now), value, mirror_id),
        )
        self._add_credit(mirror["cid"], value)
        return value

    # -- reading ----------------------------------------------------------------------
    def order(self, cid: int, order_id: int) -> sqlite3.Row:
        row = self.conn.execute(
            "SELECT * FROM orders WHERE order_id = ? AND cid = ?", (order_id, cid)
        ).fetchone()
        if row is None:
            raise not_found(f"Order {order_id} not found for this account")
        return row  # type: ignore[no-any-return]

    def order_by_reference(self, cid: int, reference_id: str) -> sqlite3.Row:
        row = self.conn.execute(
            "SELECT * FROM orders WHERE reference_id = ? AND cid = ? ORDER BY order_id LIMIT 1",
            (reference_id, cid),
        ).fetchone()
        if row is None:
            raise not_found(f"Order with referenceId {reference_id} not found for this account")
        return row  # type: ignore[no-any-return]

    def cancel(self, cid: int, order_id: int, now: datetime) -> sqlite3.Row:
        """Cancel a pending order and unfreeze its amount; a no-op once it is final."""
        order = self.order(cid, order_id)
        if order["status"] == "pending":
            self.conn.execute(
                "UPDATE orders SET status = 'cancelled', updated_at = ? WHERE order_id = ?",
                (iso(now), order_id),
            )
            self._add_credit(cid, order["amount"])
        return self.order(cid, order_id)

    def positions(self, cid: int, *, mirror_id: int = 0) -> list[sqlite3.Row]:
        return self.conn.execute(
            "SELECT * FROM positions WHERE cid = ? AND mirror_id = ? AND closed_at IS NULL "
            "ORDER BY position_id",
            (cid, mirror_id),
        ).fetchall()

    def mirrors(self, cid: int) -> list[sqlite3.Row]:
        return self.conn.execute(
            "SELECT * FROM mirrors WHERE cid = ? AND closed_at IS NULL ORDER BY mirror_id", (cid,)
        ).fetchall()

    def pending_orders(self, cid: int) -> list[sqlite3.Row]:
        return self.conn.execute(
            "SELECT * FROM orders WHERE cid = ? AND status = 'pending' ORDER BY order_id", (cid,)
        ).fetchall()

    def unrealized(self, pos: sqlite3.Row, now: datetime) -> tuple[float, float]:
        """(P&L, close rate) of an open position at the current price."""
        rate = self.close_rate(pos["instrument_id"], bool(pos["is_buy"]), now)
        return max(self.pnl(pos, pos["units"], rate), -pos["amount"]), rate

    def history(
        self, cid: int, min_date: date, page: int, page_size: int
    ) -> list[sqlite3.Row]:
        return self.conn.execute(
            "SELECT * FROM trades WHERE cid = ? AND closed_at >= ? "
            "ORDER BY closed_at, trade_id LIMIT ? OFFSET ?",
            (cid, min_date.isoformat(), page_size, (page - 1) * page_size),
        ).fetchall()

    def mirror_value(self, mirror: sqlite3.Row, now: datetime) -> float:
        """Cash plus the current value of every copy: what deleting would credit back."""
        total = mirror["available_amount"]
        for pos in self.positions(mirror["cid"], mirror_id=mirror["mirror_id"]):
            total += pos["amount"] + self.unrealized(pos, now)[0]
        return float(total)


def instrument_of(instrument_id: int) -> Instrument:
    inst = BY_ID.get(instrument_id)
    if inst is None:
        raise validation(f"instrumentId {instrument_id} is not a known instrument")
    return inst
