"""A target-weight rebalancing agent that trades through an ``AgentSession``, under its
owner's risk policy.

``plan_orders`` is the pure part: from the account's positions (valued in USD), its cash
and target weights, the closes and buys that move it toward the targets. ``Rebalancer``
is the agent: each ``step()`` reads its account through its session, plans, *sizes* each
buy to what the policies allow (``AgentSession.room``: the amount per order, the gross
exposure left, allowed instruments, the order budget per hour and day, the daily loss,
trading hours, a required stop loss), places the orders and records what happened,
including every buy the policy cut down or held back and why (``StepRecord.sizing``). So
the session never refuses an order the rebalancer sized itself.

Outcomes. ``rebalanced`` (orders placed), ``in balance`` (nothing to do), ``refused:
<rule>`` (the policy held back every order: paused, no room, no budget left; the agent
keeps monitoring), ``stopped: <errorCode>`` (the server refused the token with 401 or 403,
the owner revoked or narrowed it, so the session stopped: the agent makes no further
request), ``failed: <errorCode>`` (another API error; it tries again next step).

Both clients. ``Rebalancer`` trades through an ``AgentSession`` on an ``EtoroClient``;
``AsyncRebalancer`` through an ``AsyncAgentSession`` on an ``AsyncEtoroClient``, every
method awaited. The step is written once (``RebalancerCore``), as work on the session.

Weights are shares of the account's equity: cash plus every position's amount and
unrealised P&L, as the server values them (``trading(mode).pnl()``). Instruments held but
absent from the targets have a target of 0. ``charts.rebalance_weights`` draws the frames.

Examples
--------
>>> agent = client.as_agent(bot.token)                                    # doctest: +SKIP
>>> rebalancer = Rebalancer(agent, "demo", {"AAPL": 0.4, "GLD": 0.3, "BTC": 0.3},
...                         policy=RiskPolicy(max_order_amount_usd=1500))  # doctest: +SKIP
>>> rebalancer.run(8, between=lambda record: None)                        # doctest: +SKIP
>>> enb.charts.rebalance_weights(rebalancer.weights_frame(), rebalancer.steps_frame())
...                                                                       # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from etoro_nb import rules
from etoro_nb.errors import APIError, InvalidInputError, PolicyViolation, SessionStopped
from etoro_nb.frames.common import UTC_US, frame_of

# The session (and the HTTP stack under it) is imported where a rebalancer is made:
# ``charts`` reads this module's schemas and must not pull it in.
if TYPE_CHECKING:
    from etoro_nb._runner import Work
    from etoro_nb.agent.async_session import AsyncAgentSession
    from etoro_nb.agent.policy import RiskPolicy
    from etoro_nb.agent.session import AgentSession, SessionCore
    from etoro_nb.client_api import AsyncClientAPI, ClientAPI
    from etoro_nb.models import Portfolio

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
    "actions": pl.List(pl.String), "orders_cut": pl.Int64, "orders_held": pl.Int64,
    "sizing": pl.List(pl.String),
}
STEPS_SCHEMA = pl.Schema(_STEPS)
"""``steps_frame()``: one row per step. ``drift_*`` is the largest absolute gap between an
instrument's weight and its target; ``status``, ``error_code`` and ``request_id`` are the
refused or failed request's; ``actions`` the orders placed, in words; ``orders_cut`` and
``orders_held`` the buys the policy cut down or held back, and ``sizing`` why, in words."""
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
class Sizing:
    """A planned order the policies cut down (``amount_usd`` below the plan's) or held back
    (``amount_usd`` 0), with the rule that did (``rule``, ``limit``) and why, in words."""

    order: Order
    amount_usd: float
    rule: str | None
    limit: Any
    reason: str

    @property
    def held(self) -> bool:
        return self.amount_usd <= 0


@dataclass(frozen=True)
class StepRecord:
    """What one step did (see the module's docstring for ``outcome``). Weights are by
    instrument id; ``None`` keys the cash. ``placed`` holds the orders as placed (a buy
    cut down by the policy with its placed amount); ``sizing`` each order the policy cut
    down or held back, and why."""

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
    sizing: tuple[Sizing, ...] = ()


def _values(holdings: list[Holding], cash: float) -> dict[int | None, float]:
    out: dict[int | None, float] = {None: cash}
    for h in holdings:
        out[h.instrument_id] = out.get(h.instrument_id, 0.0) + h.value_usd
    return out


def _weights(values: Mapping[int | None, float]) -> dict[int | None, float]:
    total = math.fsum(values.values())
    return {k: v / total for k, v in values.items()} if total > 0 else {}


@dataclass
class _Step:
    """What a step has done so far (kept when it ends early)."""

    n: int
    at: datetime
    before: dict[int | None, float] = field(default_factory=dict)
    after: dict[int | None, float] = field(default_factory=dict)
    planned: list[Order] = field(default_factory=list)
    placed: list[Order] = field(default_factory=list)
    sizing: list[Sizing] = field(default_factory=list)


class RebalancerCore:
    """What ``Rebalancer`` and ``AsyncRebalancer`` share: the targets, the records, the
    frames, and the work of a step on the session (driven by each its own way)."""

    session: SessionCore

    def __init__(self, session: SessionCore, targets: Mapping[str | int, float], *,
                 min_trade_usd: float, stop_loss_pct: float | None,
                 clock: Callable[[], datetime] | None, owns_session: bool) -> None:
        self.session = session
        self.mode = session.account
        self.min_trade_usd = min_trade_usd
        self.stop_loss_pct = stop_loss_pct
        self._weights = dict(targets)
        self._clock = clock or session.now
        self._owns_session = owns_session
        self.symbols: dict[int, str] = {}
        self.targets: dict[int, float] = {}
        self.records: list[StepRecord] = []
        self.stopped: StepRecord | None = None

    def __repr__(self) -> str:
        targets = ", ".join(f"{self.symbols[i]}: {w:g}" for i, w in self.targets.items())
        state = f"stopped at step {self.stopped.step}" if self.stopped else f"{len(self.records)} steps"
        return f"{type(self).__name__}(mode={self.mode!r}, targets={{{targets}}}, {state})"

    # -- the work --------------------------------------------------------------------------
    def _resolve(self) -> Work[None]:
        """Look the targets up with the agent's key (market data): ids and symbols."""
        from etoro_nb.resources.market import instrument_flow

        fields = ("instrumentId", "internalSymbolFull")
        for key, weight in self._weights.items():
            found = yield from instrument_flow(key, fields, symbol_field="internalSymbolFull")
            if found is None:
                kind = "symbol" if isinstance(key, str) else "instrument id"
                raise InvalidInputError(f"targets[{key!r}]", f"no instrument has this {kind} "
                                                           f"({self.session._agent.environment})")
            iid, symbol = int(found["instrumentId"]), str(found.get("internalSymbolFull") or key)
            if iid in self.targets:
                raise InvalidInputError(f"targets[{key!r}]", f"is {self.symbols[iid]} again "
                                                           f"(instrument {iid}); give each once")
            self.targets[iid], self.symbols[iid] = weight, symbol

    def _read(self) -> Work[tuple[list[Holding], float]]:
        book = yield from self.session._read_account("pnl")  # and the session's book with it
        return holdings_of(book), book.credit

    def _size(self, order: Order) -> Work[Sizing | None]:
        """The buy as the policies allow it now (None: in full)."""
        room = yield from self.session._room(order.instrument_id, 1,
                                             stop_loss=self.stop_loss_pct is not None)
        if room.usd >= order.amount_usd:
            return None
        why = room.message or "no room"
        amount = room.usd
        if amount < self.min_trade_usd:
            if amount > 0:
                why = f"{why}; {amount:,.2f} USD is below min_trade_usd"
            amount = 0.0
        return Sizing(order, amount, room.rule, room.limit, why)

    def _orders(self, step: _Step) -> Work[None]:
        """Place the planned orders, each buy sized to the policies first. When closes are
        refused too (paused, no write scope, a policy expired) every order is held back."""
        session = self.session
        gate = yield from session._room(None, 1)
        if not gate.closes:
            step.sizing += [Sizing(o, 0.0, gate.rule, gate.limit, gate.message or "held")
                            for o in step.planned]
            return
        stops = yield from self._stops([o.instrument_id for o in step.planned if o.action == "buy"])
        for order in step.planned:
            if order.action == "close":
                assert order.position_id is not None
                yield from session._close(order.position_id, order.instrument_id, order.units,
                                          None)[1]
                step.placed.append(order)
                continue
            sized = yield from self._size(order)
            if sized is not None:
                step.sizing.append(sized)
                if sized.held:
                    continue
                order = Order("buy", order.instrument_id, sized.amount_usd)
            yield from session._open(order.instrument_id, "buy", order.amount_usd, 1,
                                     stops.get(order.instrument_id), None, False, None, None)[1]
            step.placed.append(order)

    def _stops(self, buys: list[int]) -> Work[dict[int, float]]:
        """With ``stop_loss_pct``, each buy's stop loss: that share below the ask now (one
        read of the rates)."""
        if self.stop_loss_pct is None or not buys:
            return {}
        from etoro_nb.resources.market import rates_flow

        rates = yield from self.session._guarded(
            "retrieveCurrentMarketRatesPricingInformation", rates_flow(sorted(set(buys))))
        keep = 1.0 - self.stop_loss_pct
        return {r.instrument_id: float(f"{r.ask * keep:.6g}") for r in rates}

    def _step(self, step: _Step) -> Work[StepRecord]:
        """Read the account, plan, size and place the orders; the record of what happened."""
        try:
            holdings, cash = yield from self._read()
            step.before = _values(holdings, cash)
            step.planned = plan_orders(holdings, self.targets, cash,
                                       min_trade_usd=self.min_trade_usd)
            if step.planned:
                yield from self._orders(step)
            step.after = _values(*(yield from self._read())) if step.placed else step.before
        except SessionStopped as exc:
            return self._stopped(step, exc)
        except PolicyViolation as exc:  # a read the token's scopes do not allow
            return self._record(step, f"refused: {exc.rule}", None)
        except APIError as exc:
            return self._record(step, f"failed: {exc.error_code or exc.status}", exc)
        if step.placed:
            return self._record(step, "rebalanced", None)
        if step.sizing:
            return self._record(step, f"refused: {step.sizing[0].rule}", None)
        return self._record(step, "in balance", None)

    def _stopped(self, step: _Step, exc: SessionStopped) -> StepRecord:
        """The session stopped: the server refused the token (its error is the cause), or
        it was closed. The rebalancer stops with it."""
        cause = exc.cause if isinstance(exc.cause, APIError) else None
        what = (cause.error_code or str(cause.status)) if cause else exc.reason
        self.stopped = self._record(step, f"stopped: {what}", cause)
        return self.stopped

    def _next(self) -> _Step:
        if self.stopped is not None:
            raise RuntimeError(f"this rebalancer stopped at step {self.stopped.step} "
                               f"({self.stopped.outcome}); it makes no further requests")
        return _Step(len(self.records) + 1, self._clock())

    def _record(self, step: _Step, outcome: str, exc: APIError | None) -> StepRecord:
        # Nothing placed: the account is as it was read. Else unknown until read again.
        before = step.before
        after = step.after or (before if not step.placed else {})
        values = after or before
        record = StepRecord(
            step=step.n, at=step.at, outcome=outcome,
            equity_usd=math.fsum(values.values()) if values else None,
            weights_before=_weights(before), weights_after=_weights(after),
            values_before=before, values_after=after, planned=tuple(step.planned),
            placed=tuple(step.placed), status=exc.status if exc else None,
            error_code=exc.error_code if exc else None,
            request_id=exc.request_id if exc else None, sizing=tuple(step.sizing))
        self.records.append(record)
        return record

    # -- frames -------------------------------------------------------------------------
    def label(self, instrument_id: int | None) -> str:
        """An instrument's symbol (``cash`` for None, ``#id`` for one not in the targets)."""
        if instrument_id is None:
            return "cash"
        return self.symbols.get(instrument_id, f"#{instrument_id}")

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

    def describe_sizing(self, sized: Sizing) -> str:
        """A cut or held order in words: ``buy AAPL 4,000.00 -> 1,500.00 USD
        (max_order_amount_usd: at most 1,500.00 USD per order)``."""
        planned = self.describe(sized.order)
        done = "held back" if sized.held else f"-> {sized.amount_usd:,.2f} USD"
        return f"{planned} {done} ({sized.rule or 'policy'}: {sized.reason})"

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
            "orders_cut": sum(not s.held for s in r.sizing),
            "orders_held": sum(s.held for s in r.sizing),
            "sizing": [self.describe_sizing(s) for s in r.sizing],
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


def _stop_loss(pct: float | None) -> float | None:
    if pct is None:
        return None
    if rules.positive(pct, "stop_loss_pct") >= 1:
        raise InvalidInputError("stop_loss_pct", f"is a share of the price below 1 (0.1: 10% "
                                                 f"below), got {pct!r}")
    return float(pct)


def _arguments(targets: Targets, mode: str | None, min_trade_usd: float, account: str | None,
               policy: object) -> tuple[dict[str | int, float], float, Literal["demo", "real"]]:
    """The arguments checked before any request (``InvalidInputError`` naming the field)."""
    from etoro_nb.resources.trading import _check_mode  # the trading resource's own check

    weights = validate_targets(targets)
    min_trade = rules.positive(min_trade_usd, "min_trade_usd")
    if account is not None:  # given a session: it says which account
        if mode is not None and mode != account:
            raise InvalidInputError("mode", f"the session trades the {account} account, not {mode!r}")
        if policy is not None:
            raise InvalidInputError("policy", "the session given holds its own policy: give "
                                              "policy= to the session, or an agent client here")
        return weights, min_trade, _check_mode(account)
    if mode is None:
        raise InvalidInputError("mode", "is 'demo' or 'real' (the account the agent trades)")
    return weights, min_trade, _check_mode(mode)


class Rebalancer(RebalancerCore):
    """An agent that rebalances its own account toward ``targets`` (symbol or instrument
    id -> weight), trading through an ``AgentSession``: ``agent`` is that session, or the
    agent's client (``client.as_agent(token)``), for which one is opened on the ``mode``
    account (``"demo"`` or ``"real"``) with ``policy`` (the owner's, in the ledger, holds
    too) and ``portfolio_id`` if the ledger does not know the token's.

    ``stop_loss_pct`` (0.1: 10%) gives each buy a stop loss that share below the price, read
    when the step buys (else its buys carry none, and a policy that requires one holds
    them back). The arguments are checked at once (``InvalidInputError``), then the session
    starts and the symbols are looked up with the agent's key. ``clock`` gives each step's time
    without a request; by default the session's (a sandbox's simulated clock, else UTC
    now). ``close()`` closes the session if the rebalancer opened it.
    """

    session: AgentSession

    def __init__(self, agent: ClientAPI | AgentSession, mode: str | None, targets: Targets, *,
                 policy: RiskPolicy | None = None, portfolio_id: str | None = None,
                 min_trade_usd: float = MIN_TRADE_USD, stop_loss_pct: float | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        from etoro_nb.agent.session import AgentSession

        stop_loss = _stop_loss(stop_loss_pct)
        weights, min_trade, account = _arguments(
            targets, mode, min_trade_usd, agent.account if isinstance(agent, AgentSession) else None,
            policy)
        # A real account's opt-in is the session's first check, before it reads anything.
        session = agent if isinstance(agent, AgentSession) else AgentSession(
            agent, policy, account=account, portfolio_id=portfolio_id)
        super().__init__(session, weights, min_trade_usd=min_trade, stop_loss_pct=stop_loss,
                         clock=clock, owns_session=session is not agent)
        try:
            session._run("resolve", self._resolve())
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Rebalancer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def step(self) -> StepRecord:
        """Read the account, plan, size and place the orders; record and return what
        happened. After a step ended ``stopped``, raises ``RuntimeError`` without any request."""
        step = self._next()
        try:
            return self.session._run("rebalance", self._step(step))
        except SessionStopped as exc:  # stopped before the step began (closed, or killed)
            return self._stopped(step, exc)

    def run(self, steps: int, *, between: Callable[[StepRecord], Any] | None = None
            ) -> list[StepRecord]:
        """Up to ``steps`` steps, calling ``between(record)`` after each but the last;
        ends early at the first ``stopped`` step. Returns this run's records."""
        _check_steps(steps)
        done: list[StepRecord] = []
        for i in range(steps):
            done.append(self.step())
            if self.stopped is not None:
                break
            if between is not None and i + 1 < steps:
                between(done[-1])
        return done

    def close(self) -> None:
        """Close the session if this rebalancer opened it (a session given stays open)."""
        if self._owns_session:
            self.session.close()


def _check_steps(steps: int) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InvalidInputError("steps", f"must be a whole number >= 1, got {steps!r}")


class AsyncRebalancer(RebalancerCore):
    """``Rebalancer`` on an ``AsyncEtoroClient``: open it with ``await
    AsyncRebalancer.open(agent_or_session, mode, targets, ...)`` (the arguments of
    ``Rebalancer``; the session an ``AsyncAgentSession``), then ``await step()`` /
    ``await run(...)`` (``between`` may be a coroutine function) and ``await aclose()``."""

    session: AsyncAgentSession

    @classmethod
    async def open(cls, agent: AsyncClientAPI | AsyncAgentSession, mode: str | None,
                   targets: Targets, *, policy: RiskPolicy | None = None,
                   portfolio_id: str | None = None, min_trade_usd: float = MIN_TRADE_USD,
                   stop_loss_pct: float | None = None,
                   clock: Callable[[], datetime] | None = None) -> AsyncRebalancer:
        from etoro_nb.agent.async_session import AsyncAgentSession

        stop_loss = _stop_loss(stop_loss_pct)
        weights, min_trade, account = _arguments(
            targets, mode, min_trade_usd,
            agent.account if isinstance(agent, AsyncAgentSession) else None, policy)
        session = agent if isinstance(agent, AsyncAgentSession) else await AsyncAgentSession.open(
            agent, policy, account=account, portfolio_id=portfolio_id)
        self = cls(session, weights, min_trade_usd=min_trade, stop_loss_pct=stop_loss, clock=clock,
                   owns_session=session is not agent)
        try:
            await session._run("resolve", self._resolve())
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aenter__(self) -> AsyncRebalancer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def step(self) -> StepRecord:
        """``Rebalancer.step``, awaited."""
        step = self._next()
        try:
            return await self.session._run("rebalance", self._step(step))
        except SessionStopped as exc:
            return self._stopped(step, exc)

    async def run(self, steps: int, *,
                  between: Callable[[StepRecord], Any] | None = None) -> list[StepRecord]:
        """``Rebalancer.run``, awaited; ``between`` may return an awaitable (awaited)."""
        _check_steps(steps)
        done: list[StepRecord] = []
        for i in range(steps):
            done.append(await self.step())
            if self.stopped is not None:
                break
            if between is not None and i + 1 < steps:
                result = between(done[-1])
                if inspect.isawaitable(result):
                    await result
        return done

    async def aclose(self) -> None:
        if self._owns_session:
            await self.session.aclose()


__all__ = ["MIN_TRADE_USD", "STEPS_SCHEMA", "WEIGHTS_SCHEMA", "AsyncRebalancer", "Holding", "Order",
           "Rebalancer", "RebalancerCore", "Sizing", "StepRecord", "holdings_of", "plan_orders",
           "validate_targets"]
