"""Trading on the demo or the real account: ``client.trading("demo" | "real")``.

Orders use the v2 unified endpoint (open by amount or units, buy or sell, leverage,
stop-loss and take-profit); closing uses the v1 market-close endpoint, the only one.
The request id of an order is its idempotency key: a retried order is placed once.
When an order's retries run out without a usable answer, it is looked up by that request
id, so the caller learns whether it was placed (see ``open_flow``).
On a live connection the real account's writes need ``allow_real``.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from pydantic import TypeAdapter

from etoro_nb import rules
from etoro_nb._base import AMBIGUOUS, Call, Flow, read
from etoro_nb.errors import (
    APIConnectionError,
    APIError,
    EtoroError,
    InvalidInputError,
    NotFoundError,
    OrderNotPlacedError,
    OrderOutcomeUnknownError,
)
from etoro_nb.models import ClosedOrder, OrderInfo, OrderPlaced, Portfolio, Trade
from etoro_nb.progress import Progress, reporter

if TYPE_CHECKING:
    from etoro_nb._runner import AsyncRunner, Runner, RunnerState

Mode = Literal["demo", "real"]


@cache
def trades_page() -> TypeAdapter[list[Trade]]:
    """A page of history: an array, not any iterable (its validator built on first use)."""
    return TypeAdapter(list[Trade])

PAGE_SIZE = 100


def _check_mode(mode: str) -> Mode:
    if mode not in ("demo", "real"):
        raise InvalidInputError("mode", f"trading mode is 'demo' or 'real', got {mode!r}")
    return "demo" if mode == "demo" else "real"


class Paths:
    """One mode's operations (the contract names them differently per mode); their
    methods and paths come from the catalogue (``Call.of``)."""

    def __init__(self, mode: Mode) -> None:
        demo = mode == "demo"
        self.mode = mode
        self.close_instrument_field = "InstrumentID" if demo else "InstrumentId"
        suffix = "Demo" if demo else ""
        self.ops = {
            "portfolio": "getPortfolioDemo" if demo else "getPortfolio",
            "pnl": "getDemoAccountPnl" if demo else "getRealAccountPnl",
            "history": "listTradingHistory" if demo else "listTradingHistory2",
            "open": "createDemoOrder" if demo else "createRealOrder",
            "cancel": "cancelDemoOrder" if demo else "cancelRealOrder",
            "lookup": "lookupDemoOrder" if demo else "lookupRealOrder",
            "close": f"closePositionByMarketRate{suffix}",
        }


def portfolio_flow(p: Paths, *, pnl: bool) -> Flow[Portfolio]:
    answer = yield Call.of(p.ops["pnl" if pnl else "portfolio"])
    return read(answer, lambda body: Portfolio.model_validate(body["clientPortfolio"]))


def history_flow(p: Paths, since: date, page_size: int,
                 progress: Progress | None) -> Flow[list[Trade]]:
    trades: list[Trade] = []
    page = 1
    while True:
        answer = yield Call.of(p.ops["history"],
                               params={"minDate": since.isoformat(), "page": page,
                                       "pageSize": page_size})
        batch = read(answer, trades_page().validate_python)
        trades.extend(batch)
        if progress is not None:
            progress(len(trades), page)
        if len(batch) < page_size:
            return trades
        page += 1


def order_body(instrument: int | str, side: str, amount: float | None, units: float | None,
               leverage: int, stop_loss: float | None, take_profit: float | None,
               trailing_stop: bool, trigger_rate: float | None) -> dict[str, Any]:
    if side not in ("buy", "sell"):
        raise InvalidInputError("side", f"is 'buy' or 'sell', got {side!r}")
    amount, units = rules.order_size(amount, units)
    if isinstance(leverage, bool) or not isinstance(leverage, int) or leverage < 1:
        raise InvalidInputError("leverage", f"is a whole number >= 1, got {leverage!r}")
    body: dict[str, Any] = {"action": "open", "transaction": side, "leverage": leverage,
                            "orderType": "mkt"}
    if isinstance(instrument, bool) or not isinstance(instrument, int | str) or instrument == "":
        raise InvalidInputError("instrument", "is an instrument id or a symbol")
    body["instrumentId" if isinstance(instrument, int) else "symbol"] = instrument
    if amount is not None:
        body["amount"] = amount
    else:
        body["units"] = units
    if stop_loss is not None:
        body["stopLossRate"] = rules.positive(stop_loss, "stop_loss")
        body["stopLossType"] = "trailing" if trailing_stop else "fixed"
    if take_profit is not None:
        body["takeProfitRate"] = rules.positive(take_profit, "take_profit")
    if trigger_rate is not None:
        body["orderType"] = "mit"
        body["triggerRate"] = rules.positive(trigger_rate, "trigger_rate")
    return body


def open_flow(p: Paths, body: dict[str, Any], request_id: str | None) -> Flow[OrderPlaced]:
    """Place an order. If every attempt failed in a way that may have placed it (no answer,
    or a 5xx), it is looked up by its request id: returned if the server has it;
    ``OrderNotPlacedError`` if the server confirms it has not; ``OrderOutcomeUnknownError``
    (naming the request id) if the lookup fails too."""
    rid = request_id or str(uuid.uuid4())  # known here, so the lookup can name it
    call = Call.of(p.ops["open"], json=body, request_id=rid)
    try:
        answer = yield call
    except EtoroError as exc:
        if not (isinstance(exc, AMBIGUOUS) or (isinstance(exc, APIError) and exc.ambiguous_before)):
            raise  # refused, or never sent: nothing was placed and the error says why
        failure = exc
    else:
        return read(answer, OrderPlaced.model_validate)
    return (yield from _placed_or_not(p, call.operation, rid, failure))


def _placed_or_not(p: Paths, operation: str, rid: str, failure: EtoroError) -> Flow[OrderPlaced]:
    """After an order's ambiguous failure: the order if it exists, else a clear error."""
    what = _summary(failure)
    try:
        found = yield from lookup_flow(p, None, rid)
    except NotFoundError as missing:
        if isinstance(failure, APIError) and not isinstance(failure, AMBIGUOUS):
            raise failure from None  # the last attempt was refused, and nothing was placed
        raise OrderNotPlacedError(
            failure=failure, status=missing.status, error_code="OrderNotPlaced",
            error_message=f"the order was NOT placed: it got no usable answer ({what}) and "
                          "the server has no order with its request id; placing it again "
                          "is safe", request_id=rid, operation=operation,
            body=missing.body) from None
    except EtoroError as lookup:
        raise OrderOutcomeUnknownError(
            f"the order's outcome is UNKNOWN: it got no usable answer ({what}) and looking "
            f"it up failed too ({_summary(lookup)}); look it up later with "
            f"lookup_order(reference_id={rid!r})", request_id=rid, operation=operation) from None
    return OrderPlaced.model_validate({"orderId": found.order_id, "referenceId": rid})


def _summary(exc: EtoroError) -> str:
    if isinstance(exc, APIError):
        return f"{exc.status} {exc.error_code or 'no errorCode'} after {exc.attempts} attempt(s)"
    if isinstance(exc, APIConnectionError):
        return exc.detail
    return type(exc).__name__


def close_flow(p: Paths, position_id: int, instrument_id: int, units: float | None,
               request_id: str | None) -> Flow[ClosedOrder]:
    body: dict[str, Any] = {p.close_instrument_field: instrument_id}
    if units is not None:
        body["UnitsToDeduct"] = rules.positive(units, "units")
    answer = yield Call.of(p.ops["close"], {"positionId": position_id}, json=body,
                           request_id=request_id)
    return read(answer, lambda body: ClosedOrder.model_validate(body["orderForClose"]))


def cancel_flow(p: Paths, order_id: int) -> Flow[None]:
    yield Call.of(p.ops["cancel"], {"orderId": order_id})


def lookup_flow(p: Paths, order_id: int | None, reference_id: str | None) -> Flow[OrderInfo]:
    if (order_id is None) == (reference_id is None):
        raise InvalidInputError("order_id/reference_id", "give exactly one of them")
    params = {"orderId": order_id} if order_id is not None else {"referenceId": reference_id}
    answer = yield Call.of(p.ops["lookup"], params=params)
    return read(answer, OrderInfo.from_api)


def _since(since: date | datetime) -> date:
    return since.date() if isinstance(since, datetime) else since


class _TradingBase:
    def __init__(self, client: RunnerState, mode: str) -> None:
        self._client = client
        self.mode: Mode = _check_mode(mode)
        self._paths = Paths(self.mode)

    def _guard(self) -> None:
        """Refuse at once, before any lookup a flow makes (sending enforces it too)."""
        self._client.ensure_real_allowed(self.mode == "real")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mode={self.mode!r}, environment={self._client.environment!r})"


class Trading(_TradingBase):
    """One account's trading: portfolio, P&L, history, orders and closing."""

    _client: Runner

    def portfolio(self) -> Portfolio:
        return self._client.run_flow(portfolio_flow(self._paths, pnl=False))

    def pnl(self) -> Portfolio:
        """The portfolio with unrealised P&L per position and in total."""
        return self._client.run_flow(portfolio_flow(self._paths, pnl=True))

    def history(self, since: date | datetime, *, page_size: int = PAGE_SIZE,
                progress: bool | Progress | None = None) -> list[Trade]:
        """Every closed trade since a date, all pages. ``progress`` is a callback
        ``(loaded, pages)`` called after each page, or ``True`` for a progress bar."""
        with reporter(progress, f"{self.mode} trade history") as report:
            return self._client.run_flow(history_flow(self._paths, _since(since), page_size,
                                                  report))

    def open_order(self, instrument: int | str, side: str = "buy", *,
                   amount: float | None = None, units: float | None = None, leverage: int = 1,
                   stop_loss: float | None = None, take_profit: float | None = None,
                   trailing_stop: bool = False, trigger_rate: float | None = None,
                   request_id: str | None = None) -> OrderPlaced:
        """Open a position by ``amount`` (USD) or ``units``; ``trigger_rate`` makes it a
        market-if-touched order. ``request_id`` is the idempotency key (one is made)."""
        body = order_body(instrument, side, amount, units, leverage, stop_loss, take_profit,
                          trailing_stop, trigger_rate)
        self._guard()
        return self._client.run_flow(open_flow(self._paths, body, request_id))

    def close_position(self, position_id: int, instrument_id: int, *, units: float | None = None,
                       request_id: str | None = None) -> ClosedOrder:
        """Close a position, or ``units`` of it."""
        self._guard()
        return self._client.run_flow(close_flow(self._paths, position_id, instrument_id, units,
                                            request_id))

    def cancel_order(self, order_id: int) -> None:
        self._guard()
        self._client.run_flow(cancel_flow(self._paths, order_id))

    def lookup_order(self, order_id: int | None = None, *,
                     reference_id: str | None = None) -> OrderInfo:
        return self._client.run_flow(lookup_flow(self._paths, order_id, reference_id))


class AsyncTrading(_TradingBase):
    """The ``AsyncEtoroClient`` twin of ``Trading``."""

    _client: AsyncRunner

    async def portfolio(self) -> Portfolio:
        return await self._client.run_flow(portfolio_flow(self._paths, pnl=False))

    async def pnl(self) -> Portfolio:
        return await self._client.run_flow(portfolio_flow(self._paths, pnl=True))

    async def history(self, since: date | datetime, *, page_size: int = PAGE_SIZE,
                      progress: bool | Progress | None = None) -> list[Trade]:
        with reporter(progress, f"{self.mode} trade history") as report:
            return await self._client.run_flow(history_flow(self._paths, _since(since), page_size,
                                                        report))

    async def open_order(self, instrument: int | str, side: str = "buy", *,
                         amount: float | None = None, units: float | None = None,
                         leverage: int = 1, stop_loss: float | None = None,
                         take_profit: float | None = None, trailing_stop: bool = False,
                         trigger_rate: float | None = None,
                         request_id: str | None = None) -> OrderPlaced:
        body = order_body(instrument, side, amount, units, leverage, stop_loss, take_profit,
                          trailing_stop, trigger_rate)
        self._guard()
        return await self._client.run_flow(open_flow(self._paths, body, request_id))

    async def close_position(self, position_id: int, instrument_id: int, *,
                             units: float | None = None,
                             request_id: str | None = None) -> ClosedOrder:
        self._guard()
        return await self._client.run_flow(close_flow(self._paths, position_id, instrument_id,
                                                  units, request_id))

    async def cancel_order(self, order_id: int) -> None:
        self._guard()
        await self._client.run_flow(cancel_flow(self._paths, order_id))

    async def lookup_order(self, order_id: int | None = None, *,
                           reference_id: str | None = None) -> OrderInfo:
        return await self._client.run_flow(lookup_flow(self._paths, order_id, reference_id))
