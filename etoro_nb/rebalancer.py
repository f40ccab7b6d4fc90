"""A target-weight rebalancing agent that runs under a delegated token.

``plan_orders`` is the pure part: from the account's positions (valued in USD), its cash
and target weights, the closes and buys that move it toward the targets. ``Rebalancer``
is the agent: each ``step()`` reads its account through the agent client, plans, places
the orders and records what happened. A 403 (the owner removed the write scope) is
recorded as ``refused`` and the agent keeps monitoring; a 401 (the token was revoked or
expired) is recorded as ``stopped`` and the agent makes no further request.

Weights are shares of the account's equity: cash plus every position's amount and
unrealised P&L, as the server values them (``trading(mode).pnl()``). Instruments held but
absent from the targets have a target of 0. ``charts.rebalance_weights`` draws the frames.

Examples
--------
>>> agent = client.as_agent(bot.token)                                    # doctest: +SKIP
>>> rebalancer = Rebalancer(agent, "demo", {"AAPL": 0.4, "GLD": 0.3, "BTC": 0.3})
...                                                                       # doctest: +SKIP
>>> rebalancer.run(8, between=lambda record: None)                        # doctest: +SKIP
>>> enb.charts.rebalance_weights(rebalancer.weights_frame(), rebalancer.steps_frame())
...                                                                       # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from etoro_nb import rules
from etoro_nb.errors import APIError, AuthenticationError, InvalidInputError, PermissionDeniedError
from etoro_nb.frames import UTC_US, frame_of
from etoro_nb.models import Portfolio

if TYPE_CHECKING:
    from etoro_nb.client_api import ClientAPI

WEIGHT_TOLERANCE = 1e-3
"""How far the target weights may sum from 1 (they are then scaled to sum to exactly 1)."""
MIN_TRADE_USD = 25.0
UNITS_DECIMALS = 6  # the precision positions are kept in

Targets = Mapping[str, float] | Mapping[int, float] | Mapping[str | int, float]
"""Target weights by symbol (``"AAPL"``) or instrument id (``1001``)."""

_STEPS: dict[str, Any] = {
    "step": pl.Int64, "at": UTC_US, "outcome": pl.String, "status": pl.Int64,
    "error_code": pl.String, "request_id": pl.String, "equity_usd": pl.Float64,
    "drift_before": pl.Float64, "drift_after": pl.Float64, "orders_planned": pl.Int64,
    "orders_placed": pl.Int64, "bought_usd": pl.Float64, "sold_usd": pl.Float64,
    "actions": pl.List(pl.String),
}
STEPS_SCHEMA = pl.Schema(_STEPS)
"""``steps_frame()``: one row per step. ``drift_*`` is the largest absolute gap between an
instrument's weight and its target; ``status``, ``error_code`` and ``request_id`` are the
refused or failed request's; ``actions`` the orders placed, in words."""
_WEIGHTS: dict[str, Any] = {
    "step": pl.Int64, "at": UTC_US, "phase": pl.String, "instrument": pl.String,
    "instrument_id": pl.Int64, "target": pl.Float64, "weight": pl.Float64,
    "value_usd": pl.Float64,
}
WEIGHTS_SCHEMA = pl.Schema(_WEIGHTS)
"""``weights_frame()``: one row per step, phase (``before`` / ``after`` its orders) and
instrument, plus ``cash`` (no instrument id, no target). A step whose account could not be
read has no rows."""


# -- the pure part ------------------------------------------------------------------------
@dataclass(frozen=True)
class Holding:
    """An open position, valued in USD (its amount plus unrealised P&L)."""

    position_id: int
    instrument_id: int
    units: float
    value_usd: float


@dataclass(frozen=True)
class Order:
    """A planned order. ``buy`` spends ``amount_usd``; ``close`` releases about
    ``amount_usd`` by closing ``units`` of a position (``units=None``: all of it)."""

    action: Literal["buy", "close"]
    instrument_id: int
    amount_usd: float
    position_id: int | None = None
    units: float | None = None


def validate_targets(targets: Targets) -> dict[str | int, float]:
    """Target weights checked and scaled to sum to exactly 1; keys are symbols or ids.

    Raises ``InvalidInputError`` naming the field (``targets`` or ``targets['AAPL']``) and
    the rule: at least one instrument, each a symbol or a positive id given once, each
    weight a positive number, the weights summing to 1 within ``WEIGHT_TOLERANCE``.
    """
    if not isinstance(targets, Mapping) or not targets:
        raise InvalidInputError("targets", "give at least one instrument and its weight, such as "
                                         "{'AAPL': 0.6, 'GLD': 0.4}")
    seen: set[str | int] = set()
    out: dict[str | int, float] = {}
    for key, weight in targets.items():
        where = f"targets[{key!r}]"
        if isinstance(key, str) and key.strip():
            norm: str | int = key.strip().upper()
        elif isinstance(key, int) and not isinstance(key, bool) and key > 0:
            norm = key
        else:
            raise InvalidInputError(where, "an instrument is a symbol such as 'AAPL' or a positive "
                                         "instrument id")
        if norm in seen:
            raise InvalidInputError(where, "each instrument is given once")
        seen.add(norm)
        out[norm] = rules.positive(weight, where)
    total = math.fsum(out.values())
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        raise InvalidInputError("targets", f"the weights must sum to 1 (within {WEIGHT_TOLERANCE:g}), "
                                         f"got {total:g}")
    return {k: w / total for k, w in out.items()}


def _check_ids(targets: Mapping[int, float]) -> dict[int, float]:
    weights = validate_targets(targets)
    if not all(isinstance(k, int) for k in weights):
        raise InvalidInputError("targets", "plan_orders takes instrument ids; resolve symbols first "
                                         "(Rebalancer does)")
    return {int(k): w for k, w in weights.items()}


def _floor(value: float, decimals: int) -> float:
    scale = 10.0 ** decimals
    return math.floor(value * scale + 1e-9) / scale


def plan_orders(holdings: Iterable[Holding], targets: Mapping[int, float], cash: float, *,
                min_trade_usd: float = MIN_TRADE_USD) -> list[Order]:
    """The orders that move the account toward ``targets`` (instrument id -> weight).

    An instrument whose value is within ``min_trade_usd`` of its target is left alone.
    Overweight instruments are sold first, by closing their largest positions (a partial
    close by units for the last one; a position is closed whole rather than leave less
    than ``min_trade_usd`` of it); underweight ones are then bought, in cents, with no
    more than the cash plus what the closes release (scaled down together when short).
    Every order only narrows its instrument's gap: no instrument ends further from its
    target. Closes come first, then buys, each in instrument id order.
    """
    weights = _check_ids(targets)
    cash = rules.not_negative(cash, "cash")
    min_trade = rules.positive(min_trade_usd, "min_trade_usd")
    held: dict[int, list[Holding]] = {}
    for h in holdings:
        rules.positive(h.units, f"holdings[{h.position_id}].units")
        if not math.isfinite(h.value_usd):
            raise InvalidInputError(f"holdings[{h.position_id}].value_usd", "must be a finite number")
        held.setdefault(h.instrument_id, []).append(h)
    value = {iid: math.fsum(h.value_usd for h in hs) for iid, hs in held.items()}
    total = cash + math.fsum(value.values())
    if total <= 0:
        return []
    orders: list[Order] = []
    released = 0.0
    for iid in sorted(held):
        excess = value[iid] - weights.get(iid, 0.0) * total
        if excess < min_trade:
            continue
        for h in sorted(held[iid], key=lambda h: (-h.value_usd, h.position_id)):
            if excess < min_trade or h.value_usd <= 0:
                break
            if h.value_usd - excess < min_trade:  # all of it: no dust left behind
                orders.append(Order("close", iid, h.value_usd, h.position_id))
                take = h.value_usd
            else:
                units = _floor(h.units * excess / h.value_usd, UNITS_DECIMALS)
                if units <= 0:
                    break
                take = h.value_usd * units / h.units
                orders.append(Order("close", iid, take, h.position_id, units))
            excess -= take
            released += take
    wants = {iid: w * total - value.get(iid, 0.0) for iid, w in sorted(weights.items())}
    wants = {iid: gap for iid, gap in wants.items() if gap >= min_trade}
    need = math.fsum(wants.values())
    scale = min(1.0, (cash + released) / need) if need > 0 else 0.0
    for iid, gap in wants.items():
        amount = _floor(gap * scale, 2)
        if amount >= min_trade:
            orders.append(Order("buy", iid, amount))
    return orders


def holdings_of(portfolio: Portfolio) -> list[Holding]:
    """The account's own positions (not copies in mirrors), valued at amount plus
    unrealised P&L (amount alone where the answer has no P&L)."""
    return [Holding(p.position_id, p.instrument_id, p.units,
                    p.amount + (p.unrealized.pnl if p.unrealized else 0.0))
            for p in portfolio.positions]


# -- the agent ----------------------------------------------------------------------------
@dataclass(frozen=True)
class StepRecord:
    """What one step did. ``outcome`` is ``rebalanced``, ``in balance``,
    ``refused: <errorCode>`` (403: the agent keeps monitoring), ``stopped: <errorCode>``
    (401: the agent makes no further request) or ``failed: <errorCode>`` (any other API
    error). Weights are by instrument id; ``None`` keys the cash."""

    step: int
    at: datetime
    outcome: str
    equity_usd: float | None = None
    weights_before: Mapping[int | None, float] = field(default_factory=dict)
    weights_after: Mapping[int | None, float] = field(default_factory=dict)
    values_before: Mapping[int | None, float] = field(default_factory=dict)
    values_after: Mapping[int | None, float] = field(default_factory=dict)
    planned: tuple[Order, ...] = ()
    placed: tuple[Order, ...] = ()
    status: int | None = None
    error_code: str | None = None
    request_id: str | None = None


def _values(holdings: list[Holding], cash: float) -> dict[int | None, float]:
    out: dict[int | None, float] = {None: cash}
    for h in holdings:
        out[h.instrument_id] = out.get(h.instrument_id, 0.0) + h.value_usd
    return out


def _weights(values: Mapping[int | None, float]) -> dict[int | None, float]:
    total = math.fsum(values.values())
    return {k: v / total for k, v in values.items()} if total > 0 else {}


class Rebalancer:
    """An agent that rebalances its own account (``mode`` ``"demo"`` or ``"real"``) toward
    ``targets`` (symbol or instrument id -> weight), acting through ``agent``, a client
    from ``client.as_agent(token)``: a synchronous ``EtoroClient`` (``etoro_nb.client_api``
    says why; from asyncio, run ``step()`` in a worker thread).

    The targets are checked at once (``InvalidInputError``), then their symbols are looked
    up with the agent's key (market data). ``clock`` gives each step's time without a
    request; by default the client's own (a sandbox's simulated clock, else UTC now).
    """

    def __init__(self, agent: ClientAPI, mode: str, targets: Targets, *,
                 min_trade_usd: float = MIN_TRADE_USD,
                 clock: Callable[[], datetime] | None = None) -> None:
        weights = validate_targets(targets)
        self.min_trade_usd = rules.positive(min_trade_usd, "min_trade_usd")
        self.trading = agent.trading(mode)
        self.mode = self.trading.mode
        if self.mode == "real":
            agent.ensure_real_allowed()  # a live real account needs the opt-in: say so now
        self._agent = agent
        self._clock = clock or agent.recorded_now
        self.symbols: dict[int, str] = {}
        self.targets: dict[int, float] = {}
        for key, weight in weights.items():
            iid, symbol = self._resolve(key)
            if iid in self.targets:
                raise InvalidInputError(f"targets[{key!r}]", f"is {self.symbols[iid]} again "
                                                           f"(instrument {iid}); give each once")
            self.targets[iid], self.symbols[iid] = weight, symbol
        self.records: list[StepRecord] = []
        self.stopped: StepRecord | None = None

    def __repr__(self) -> str:
        targets = ", ".join(f"{self.symbols[i]}: {w:g}" for i, w in self.targets.items())
        state = f"stopped at step {self.stopped.step}" if self.stopped else f"{len(self.records)} steps"
        return f"Rebalancer(mode={self.mode!r}, targets={{{targets}}}, {state})"

    def _resolve(self, key: str | int) -> tuple[int, str]:
        fields = ("instrumentId", "internalSymbolFull")
        found = (self._agent.market.search(fields=fields, internalSymbolFull=key)
                 if isinstance(key, str) else self._agent.market.search(fields=fields, instrumentId=key))
        if not found:
            kind = "symbol" if isinstance(key, str) else "instrument id"
            raise InvalidInputError(f"targets[{key!r}]", f"no instrument has this {kind} "
                                                       f"({self._agent.environment})")
        return int(found[0]["instrumentId"]), str(found[0].get("internalSymbolFull") or key)

    def label(self, instrument_id: int | None) -> str:
        """An instrument's symbol (``cash`` for None, ``#id`` for one not in the targets)."""
        if instrument_id is None:
            return "cash"
        return self.symbols.get(instrument_id, f"#{instrument_id}")

    def _read(self) -> tuple[list[Holding], float]:
        book = self.trading.pnl()
        return holdings_of(book), book.credit

    def _place(self, order: Order) -> None:
        if order.action == "buy":
            self.trading.open_order(order.instrument_id, amount=order.amount_usd)
        else:
            assert order.position_id is not None
            self.trading.close_position(order.position_id, order.instrument_id, units=order.units)

    def step(self) -> StepRecord:
        """Read the account, plan, place the orders; record and return what happened.

        After a step ended ``stopped``, raises ``RuntimeError`` without any request."""
        if self.stopped is not None:
            raise RuntimeError(f"this rebalancer stopped at step {self.stopped.step} "
                               f"({self.stopped.outcome}); it makes no further requests")
        n, at = len(self.records) + 1, self._clock()
        before: dict[int | None, float] = {}
        after: dict[int | None, float] = {}
        planned: list[Order] = []
        placed: list[Order] = []
        try:
            holdings, cash = self._read()
            before = _values(holdings, cash)
            planned = plan_orders(holdings, self.targets, cash, min_trade_usd=self.min_trade_usd)
            for order in planned:
                self._place(order)
                placed.append(order)
            after = _values(*self._read()) if placed else before
        except APIError as exc:
            if isinstance(exc, AuthenticationError):
                verb = "stopped"
            elif isinstance(exc, PermissionDeniedError):
                verb = "refused"
            else:
                verb = "failed"
            # Nothing placed: the account is as it was read. Else unknown until read again.
            record = self._record(n, at, f"{verb}: {exc.error_code or exc.status}", before,
                                  before if not placed else {}, planned, placed, exc)
            if verb == "stopped":
                self.stopped = record
            return record
        return self._record(n, at, "rebalanced" if placed else "in balance", before, after,
                            planned, placed, None)

    def _record(self, n: int, at: datetime, outcome: str, before: dict[int | None, float],
                after: dict[int | None, float], planned: list[Order], placed: list[Order],
                exc: APIError | None) -> StepRecord:
        values = after or before
        record = StepRecord(
            step=n, at=at, outcome=outcome,
            equity_usd=math.fsum(values.values()) if values else None,
            weights_before=_weights(before), weights_after=_weights(after),
            values_before=before, values_after=after, planned=tuple(planned), placed=tuple(placed),
            status=exc.status if exc else None, error_code=exc.error_code if exc else None,
            request_id=exc.request_id if exc else None)
        self.records.append(record)
        return record

    def run(self, steps: int, *, between: Callable[[StepRecord], Any] | None = None
            ) -> list[StepRecord]:
        """Up to ``steps`` steps, calling ``between(record)`` after each but the last;
        ends early at the first ``stopped`` step. Returns this run's records."""
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise InvalidInputError("steps", f"must be a whole number >= 1, got {steps!r}")
        done: list[StepRecord] = []
        for i in range(steps):
            done.append(self.step())
            if self.stopped is not None:
                break
            if between is not None and i + 1 < steps:
                between(done[-1])
        return done

    # -- frames -------------------------------------------------------------------------
    def _drift(self, weights: Mapping[int | None, float]) -> float | None:
        if not weights:
            return None
        ids = set(self.targets) | {k for k in weights if k is not None}
        return max(abs(weights.get(i, 0.0) - self.targets.get(i, 0.0)) for i in ids)

    def describe(self, order: Order) -> str:
        """An order in words: ``buy AAPL 1,200.00 USD``, ``close BTC 0.01 units (~600.00 USD)``."""
        what = self.label(order.instrument_id)
        if order.action == "buy":
            return f"buy {what} {order.amount_usd:,.2f} USD"
        size = "all" if order.units is None else f"{order.units:g} units"
        return f"close {what} {size} (~{order.amount_usd:,.2f} USD)"

    def steps_frame(self) -> pl.DataFrame:
        """One row per step (``STEPS_SCHEMA``)."""
        rows = [{
            "step": r.step, "at": r.at, "outcome": r.outcome, "status": r.status,
            "error_code": r.error_code, "request_id": r.request_id, "equity_usd": r.equity_usd,
            "drift_before": self._drift(r.weights_before), "drift_after": self._drift(r.weights_after),
            "orders_planned": len(r.planned), "orders_placed": len(r.placed),
            "bought_usd": math.fsum(o.amount_usd for o in r.placed if o.action == "buy"),
            "sold_usd": math.fsum(o.amount_usd for o in r.placed if o.action == "close"),
            "actions": [self.describe(o) for o in r.placed],
        } for r in self.records]
        return frame_of(rows, STEPS_SCHEMA)

    def weights_frame(self) -> pl.DataFrame:
        """One row per step, phase and instrument (``WEIGHTS_SCHEMA``)."""
        rows = []
        for r in self.records:
            for phase, weights, values in (("before", r.weights_before, r.values_before),
                                           ("after", r.weights_after, r.values_after)):
                if not weights:  # the account was not read (or not read again)
                    continue
                keys = sorted(set(weights) | set(self.targets), key=lambda k: (k is None, k or 0))
                rows += [{"step": r.step, "at": r.at, "phase": phase, "instrument": self.label(k),
                          "instrument_id": k,
                          "target": None if k is None else self.targets.get(k, 0.0),
                          "weight": weights.get(k, 0.0), "value_usd": values.get(k, 0.0)}
                         for k in keys]
        return frame_of(rows, WEIGHTS_SCHEMA)


__all__ = ["MIN_TRADE_USD", "STEPS_SCHEMA", "WEIGHTS_SCHEMA", "Holding", "Order", "Rebalancer",
           "StepRecord", "holdings_of", "plan_orders", "validate_targets"]
