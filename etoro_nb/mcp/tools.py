"""The tools, generated from what the token's scopes allow (``available``): market data
for any valid token; the account (portfolio, P&L, trade history) with the account's read
scope; orders, closes, cancels and the room left for an order with its write scope too,
all through the ``AgentSession``. Each tool's description states its scope and the risk
policy limits that apply to it, so a tool list changes when either does.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import mcp_types as types
from pydantic import BaseModel, ValidationError

from etoro_nb.agent.session import AgentSession
from etoro_nb.mcp import schemas as s
from etoro_nb.mcp.backend import Backend
from etoro_nb.mcp.failures import Failure, ToolFailure, bad_input, scope_missing

Access = Literal["market", "read", "write"]
SEARCH_FIELDS = ("instrumentId", "symbol", "displayname", "instrumentType", "currentRate")


@dataclass(frozen=True)
class ToolSpec:
    name: str
    title: str
    summary: str
    access: Access
    params: type[s.Params]
    result: type[s.Result]
    run: Callable[[Backend, Any], s.Result]
    destructive: bool = False


# -- what the tools do (in the backend's thread) ------------------------------------------
def _notice(b: Backend) -> str | None:
    c = b.controls
    if c is not None and c.paused:
        return f"the owner paused trading for this agent portfolio ({c.reason}): orders are refused"
    return None


def _portfolio(b: Backend, _: s.NoParams, pnl: bool = False) -> s.Result:
    session = b.require_session()
    p = session.pnl() if pnl else session.portfolio()
    return s.PortfolioResult(account=b.account, credit=p.credit, unrealized_pnl=p.unrealized_pnl,
                             positions=list(p.positions), orders=list(p.orders), notice=_notice(b))


def _history(b: Backend, a: s.HistoryParams) -> s.Result:
    session = b.require_session()
    since = a.since or (session.now() - timedelta(days=30)).date()
    return s.HistoryResult(since=since, trades=session.history(since), notice=_notice(b))


def _search(b: Backend, a: s.SearchParams) -> s.Result:
    items = b.agent.market.search(a.text, fields=SEARCH_FIELDS, page_size=a.limit)
    return s.SearchResult(instruments=[_item(i) for i in items], notice=_notice(b))


def _item(item: dict[str, Any]) -> s.InstrumentItem:
    return s.InstrumentItem(instrument_id=item["instrumentId"], symbol=item.get("symbol"),
                            name=item.get("displayname"), instrument_type=item.get("instrumentType"),
                            current_rate=item.get("currentRate"))


def resolve(b: Backend, instrument: int | str, field: str = "instrument") -> s.InstrumentItem:
    """The instrument an id or symbol names (one market read, then remembered); an unknown
    one is a tool error naming ``field``."""
    cache = b.instruments
    key = instrument.strip().upper() if isinstance(instrument, str) else instrument
    if key not in cache:
        item = b.agent.market.instrument(key, fields=SEARCH_FIELDS)  # an exact match only
        if item is None:
            raise bad_input(field, f"no instrument {'id' if isinstance(key, int) else 'symbol'} "
                                   f"{key!r} is known to the market (search_instruments finds them)")
        cache[key] = _item(item)
    return cache[key]


def _rates(b: Backend, a: s.RatesParams) -> s.Result:
    ids = [resolve(b, i, f"instruments[{n}]").instrument_id for n, i in enumerate(a.instruments)]
    return s.RatesResult(rates=b.agent.market.rates(ids), notice=_notice(b))


def _candles(b: Backend, a: s.CandlesParams) -> s.Result:
    item = resolve(b, a.instrument)
    return s.CandlesResult(instrument_id=item.instrument_id, interval=a.interval,
                           candles=b.agent.market.candles(item.instrument_id, a.interval, a.count),
                           notice=_notice(b))


def _book(session: AgentSession) -> s.BookFigures:
    view = session.book
    return s.BookFigures(gross_exposure_usd=view.gross_exposure_usd,
                         open_positions=view.open_positions, orders_today=view.orders_today)


def _open(b: Backend, a: s.OpenParams) -> s.Result:
    session = b.require_session()
    item = resolve(b, a.instrument)
    rid = str(uuid.uuid4())
    with refusal_id(rid):
        placed = session.open_order(item.instrument_id, a.side, amount=a.amount,
                                    leverage=a.leverage, stop_loss=a.stop_loss,
                                    take_profit=a.take_profit, request_id=rid)
    return s.OpenResult(order_id=placed.order_id, request_id=rid, instrument_id=item.instrument_id,
                        symbol=item.symbol, side=a.side, amount_usd=round(a.amount, 2),
                        leverage=a.leverage, book=_book(session), notice=_notice(b))


def _close(b: Backend, a: s.CloseParams) -> s.Result:
    session = b.require_session()
    instrument = _position_instrument(session, a.position_id)
    rid = str(uuid.uuid4())
    with refusal_id(rid):
        closed = session.close_position(a.position_id, instrument, units=a.units, request_id=rid)
    return s.CloseResult(order_id=closed.order_id, position_id=a.position_id, units=closed.units,
                         request_id=rid, book=_book(session), notice=_notice(b))


def _position_instrument(session: AgentSession, position_id: int) -> int:
    """The instrument of an open position: from the session's book, else one read."""
    for holding in session.holdings():
        if holding.position_id == position_id and isinstance(holding.instrument, int):
            return holding.instrument
    for position in session.portfolio().positions:
        if position.position_id == position_id:
            return position.instrument_id
    raise bad_input("position_id", f"no open position {position_id} in this account "
                                   "(get_portfolio lists them)")


def _cancel(b: Backend, a: s.CancelParams) -> s.Result:
    session = b.require_session()
    session.cancel_order(a.order_id)
    return s.CancelResult(order_id=a.order_id, cancelled=True, book=_book(session),
                          notice=_notice(b))


def _room(b: Backend, a: s.RoomParams) -> s.Result:
    session = b.require_session()
    instrument = resolve(b, a.instrument).instrument_id if a.instrument is not None else None
    room = session.room_usd(instrument, leverage=a.leverage)
    return s.RoomResult(room_usd=None if room == float("inf") else room, instrument=a.instrument,
                        leverage=a.leverage, notice=_notice(b))


@contextmanager
def refusal_id(request_id: str) -> Iterator[None]:
    """Tag a failure with the order's request id (a local refusal is recorded under it)."""
    try:
        yield
    except Exception as exc:
        exc.mcp_request_id = request_id  # type: ignore[attr-defined]
        raise


SPECS: tuple[ToolSpec, ...] = (
    ToolSpec("get_portfolio", "Portfolio", "The agent portfolio's account now: credit, open "
             "positions and pending orders.", "read", s.NoParams, s.PortfolioResult,
             lambda b, a: _portfolio(b, a)),
    ToolSpec("get_pnl", "Profit and loss", "The account with each position's unrealised P&L.",
             "read", s.NoParams, s.PortfolioResult, lambda b, a: _portfolio(b, a, pnl=True)),
    ToolSpec("get_trade_history", "Trade history", "Closed trades since a UTC day (all pages).",
             "read", s.HistoryParams, s.HistoryResult, _history),
    ToolSpec("search_instruments", "Search instruments", "Instruments whose name or symbol "
             "matches the text.", "market", s.SearchParams, s.SearchResult, _search),
    ToolSpec("get_rates", "Rates", "Current bid and ask of instruments (ids or symbols).",
             "market", s.RatesParams, s.RatesResult, _rates),
    ToolSpec("get_candles", "Candles", "Price candles of one instrument, oldest first.",
             "market", s.CandlesParams, s.CandlesResult, _candles),
    ToolSpec("open_position", "Open a position", "Open a market position of `amount` USD (the "
             "margin; exposure is amount x leverage). Checked against the risk policy first: a "
             "refusal sends nothing.", "write", s.OpenParams, s.OpenResult, _open,
             destructive=True),
    ToolSpec("close_position", "Close a position", "Close an open position, or `units` of it, "
             "at the market rate. Allowed whenever the token may trade and the owner has not "
             "paused it (closing never needs room).", "write", s.CloseParams, s.CloseResult,
             _close, destructive=True),
    ToolSpec("cancel_order", "Cancel an order", "Cancel a pending order.", "write",
             s.CancelParams, s.CancelResult, _cancel, destructive=True),
    ToolSpec("order_room", "Room for an order", "The largest amount (USD) an opening order may "
             "take now under the risk policy, so orders can be sized instead of refused.",
             "write", s.RoomParams, s.RoomResult, _room),
)
BY_NAME = {spec.name: spec for spec in SPECS}


# -- the list -----------------------------------------------------------------------------
def scope_of(spec: ToolSpec, b: Backend) -> str | None:
    return None if spec.access == "market" else b.scope(spec.access)


def allowed(spec: ToolSpec, b: Backend) -> bool:
    """Whether the token's scopes allow the tool now."""
    if b.refused is not None or not b.scopes:
        return False
    if spec.access == "market":
        return True
    if b.session is None:  # without the read scope no session can keep its book
        return False
    return spec.access == "read" or b.scope("write") in b.scopes


def available(b: Backend) -> list[types.Tool]:
    """The tools the token's scopes allow, described with their scope and limits now."""
    return [tool(spec, b) for spec in SPECS if allowed(spec, b)]


def _description(spec: ToolSpec, b: Backend) -> str:
    scope = scope_of(spec, b)
    text = [spec.summary, f"Scope: {scope}." if scope else "Scope: any valid token (market data)."]
    if spec.access == "write":
        text.append(_limits(b, opening=spec.name in ("open_position", "order_room")))
    return " ".join(text)


def tool(spec: ToolSpec, b: Backend) -> types.Tool:
    return types.Tool(name=spec.name, title=spec.title, description=_description(spec, b),
                      input_schema=s.input_schema(spec.params),
                      output_schema=s.output_schema(spec.result),
                      annotations=types.ToolAnnotations(
                          title=spec.title, read_only_hint=spec.access != "write" or
                          spec.name == "order_room",
                          destructive_hint=spec.destructive, open_world_hint=True))


def _limits(b: Backend, *, opening: bool) -> str:
    session = b.session
    policies = session.policies() if session is not None else []
    parts = []
    for source, policy in policies:
        limits = policy.limits()
        if source == "owner" and b.controls is not None:
            source = f"owner's policy v{b.controls.version}"
        elif source == "session":
            source = "this server's --policy"
        parts.append(f"{source}: " + (", ".join(f"{k}={json.dumps(v)}" for k, v in limits.items())
                                      or "no limit"))
    said = "; ".join(parts) if parts else "no risk policy set (scope and pause still apply)"
    kind = ("Risk policy limits that apply" if opening
            else "Held only to scope, pause and expiry; the policy in force")
    paused = _notice(b)
    return f"{kind}: {said}." + (f" Now: {paused}." if paused else "")


def signature(b: Backend) -> str:
    """What changes in the list when a tool, a scope or a limit does: each tool's name and
    description (the schemas never change)."""
    return json.dumps([[spec.name, _description(spec, b)] for spec in SPECS if allowed(spec, b)])


# -- a call -------------------------------------------------------------------------------
def parse(spec: ToolSpec, arguments: dict[str, Any] | None) -> BaseModel:
    """The arguments, validated; the first problem is a tool error naming its field."""
    try:
        return spec.params.model_validate_json(json.dumps(arguments or {}))
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        raise bad_input(_field(first["loc"]), first["msg"]) from None
    except (TypeError, ValueError) as exc:  # not JSON at all
        raise bad_input("arguments", f"must be a JSON object ({type(exc).__name__})") from None


def _field(loc: tuple[int | str, ...]) -> str:
    """The argument an error's location names: ``amount``, ``instruments[1]`` (the union
    member tried, such as ``int``, is left out)."""
    if not loc:
        return "arguments"
    name = str(loc[0])
    return name + "".join(f"[{part}]" for part in loc[1:] if isinstance(part, int))


def run(spec: ToolSpec, b: Backend, arguments: BaseModel) -> s.Result:
    """The tool, in the backend's thread: refused here when the scopes no longer allow it."""
    if not allowed(spec, b):
        scope = scope_of(spec, b)
        raise scope_missing(scope or "a valid token", spec.name)
    return spec.run(b, arguments)


__all__ = ["BY_NAME", "SPECS", "ToolFailure", "ToolSpec", "available", "parse", "run", "signature"]


def unknown_tool(name: str) -> Failure:
    return Failure("UnknownTool", f"no tool {name!r}; the tools are listed by tools/list "
                   "(they follow the token's scopes)", field="name")
