"""The 34 operations of the subset document: who may call each, and what each does.

Handlers are plain functions of a ``Call`` that return ``(status, body)``; ``app`` runs
them inside one transaction after authentication, quota and scope checks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from etoro_nb.sandbox import views
from etoro_nb.sandbox.delegation import ALLOWED_SCOPES, Principal, TokenSpec
from etoro_nb.sandbox.errors import ApiError, not_found, validation
from etoro_nb.sandbox.market import BY_ID, INTERVALS, UNIVERSE, find_instrument
from etoro_nb.sandbox.trading import OrderRequest, instrument_of
from etoro_nb.sandbox.validation import (
    Fields,
    ipv4_list,
    opt_bool,
    opt_integer,
    opt_list,
    opt_number,
    opt_string,
    parse_date,
    parse_datetime,
    parse_int_id,
    parse_json_object,
    parse_uuid,
    query_int,
    req_string,
    require_fields,
)

if TYPE_CHECKING:
    from etoro_nb.sandbox.core import Sandbox

Mode = Literal["real", "demo"]
Reply = tuple[int, Any]
# "owner": management, refused to agent tokens; (mode, access): a trading scope;
# "identity": any read scope; "market": any valid key.
Access = Literal["owner", "identity", "market"] | tuple[Mode, Literal["read", "write"]]


@dataclass
class Call:
    """One authenticated request, as a handler sees it."""

    sandbox: Sandbox
    principal: Principal
    now: datetime
    request_id: str
    path: dict[str, str]
    query: Fields  # query parameter names bind regardless of case too
    raw_body: bytes
    _body: Fields | None = field(default=None, repr=False)

    def body(self) -> Fields:
        """The JSON object body; its field names bind regardless of case."""
        if self._body is None:
            self._body = parse_json_object(self.raw_body)
        return self._body

    def optional_body(self) -> Mapping[str, Any]:
        return self.body() if self.raw_body.strip() else {}


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    path: str
    access: Access
    handler: Callable[[Call], Reply]
    creates_order: bool = False  # repeated x-request-id returns the first result
    problem_details: bool = False  # errors also carry RFC 7807 fields, as the contract says

    @property
    def takes_body(self) -> bool:
        """Every POST and PATCH of the contract has a JSON request body; GET and DELETE none."""
        return self.method in ("POST", "PATCH")


# -- agent portfolios and tokens ----------------------------------------------------------
def _portfolio_id(call: Call) -> str:
    return parse_uuid(call.path["agentPortfolioId"], "agentPortfolioId")


def _token_id(call: Call) -> str:
    return parse_uuid(call.path["userTokenId"], "userTokenId")


def _scopes(call: Call, body: Mapping[str, Any], *, v2: bool, scope_status: int) -> tuple[str, ...]:
    d = call.sandbox.delegation
    names = opt_list(body, "scopeNames", str)
    if v2:
        if body.get("scopeIds") is not None:
            raise validation("scopeIds is not supported in v2; use scopeNames")
        if names is None:
            raise ApiError(400, "ScopeIdsRequired", "ScopeNames is required")
        return d.check_scope_names(names, scope_status)
    ids = opt_list(body, "scopeIds", int)
    if ids is not None and names is not None:
        raise validation("Give scopeIds or scopeNames, not both")
    if names is not None:
        return d.check_scope_names(names, scope_status)
    if ids is None:
        raise ApiError(400, "ScopeIdsRequired", "ScopeIds is required")
    return d.check_scope_ids(ids)


def _expiry(call: Call, body: Mapping[str, Any]) -> datetime | None:
    raw = body.get("expiresAt")
    at = None if raw is None else parse_datetime(raw, "expiresAt")
    return call.sandbox.delegation.check_expiry(at, call.now)


def _token_spec(call: Call, body: Mapping[str, Any], *, v2: bool, scope_status: int) -> TokenSpec:
    return TokenSpec(
        name=call.sandbox.delegation.check_token_name(req_string(body, "userTokenName")),
        scopes=_scopes(call, body, v2=v2, scope_status=scope_status),
        ips=tuple(ipv4_list(opt_list(body, "ipsWhitelist", str) or [])),
        expires_at=_expiry(call, body),
    )


def list_portfolios(call: Call) -> Reply:
    d = call.sandbox.delegation
    items = [views.portfolio_item(p, d.tokens(p["id"])) for p in d.portfolios(call.principal)]
    return 200, {"agentPortfolios": items}


def _create_portfolio(call: Call, *, v2: bool) -> Reply:
    body = call.body()
    required = ["agentPortfolioName", "investmentAmountInUsd", "userTokenName"]
    if v2:
        required.append("scopeNames")
    hint = ""
    if "name" in body or "description" in body:
        hint = (" (this body uses 'name'/'description': the contract's fields are "
                "agentPortfolioName and agentPortfolioDescription)")
    require_fields(body, required, hint)
    name = opt_string(body, "agentPortfolioName") or ""
    description = opt_string(body, "agentPortfolioDescription")
    investment = opt_number(body, "investmentAmountInUsd")
    if investment is None or investment <= 0:
        raise validation("investmentAmountInUsd must be a positive number")
    spec = _token_spec(call, body, v2=v2, scope_status=400)
    d = call.sandbox.delegation
    portfolio = d.create_portfolio(call.principal, name, description, investment, call.now)
    if call.sandbox.roll(call.sandbox.faults.partial_create_rate):
        return 207, views.partial_create(portfolio)
    token, secret = d.mint(portfolio["id"], spec, call.now)
    return 201, {
        **views.portfolio_head(portfolio),
        "userTokens": [views.created_token_item(token, secret, v2=v2)],
    }


def create_portfolio_v1(call: Call) -> Reply:
    return _create_portfolio(call, v2=False)


def create_portfolio_v2(call: Call) -> Reply:
    return _create_portfolio(call, v2=True)


def delete_portfolio(call: Call) -> Reply:
    portfolio_id = _portfolio_id(call)
    sb = call.sandbox
    portfolio = sb.delegation.portfolio(portfolio_id)
    sb.trading.close_mirror(portfolio["mirror_id"], call.now)
    sb.delegation.mark_deleted(portfolio_id, call.now)
    return 204, None


def allowed_scopes(call: Call) -> Reply:
    return 200, {"scopes": [{"name": s} for s in ALLOWED_SCOPES]}


def _mint(call: Call, *, v2: bool) -> Reply:
    portfolio_id = _portfolio_id(call)
    call.sandbox.delegation.portfolio(portfolio_id)
    spec = _token_spec(call, call.body(), v2=v2, scope_status=403 if v2 else 400)
    token, secret = call.sandbox.delegation.mint(portfolio_id, spec, call.now)
    return 201, views.minted_token(token, secret)


def mint_v1(call: Call) -> Reply:
    return _mint(call, v2=False)


def mint_v2(call: Call) -> Reply:
    return _mint(call, v2=True)


def _update(call: Call, *, v2: bool) -> Reply:
    portfolio_id, token_id = _portfolio_id(call), _token_id(call)
    d = call.sandbox.delegation
    d.token(portfolio_id, token_id)
    body = call.body()
    changes: dict[str, Any] = {}
    has_scopes = body.get("scopeNames") is not None or (
        not v2 and body.get("scopeIds") is not None
    )
    if v2 and body.get("scopeIds") is not None:
        raise validation("scopeIds is not supported in v2; use scopeNames")
    if has_scopes:
        changes["scopes"] = _scopes(call, body, v2=v2, scope_status=403 if v2 else 400)
    if body.get("ipsWhitelist") is not None:
        changes["ips"] = tuple(ipv4_list(opt_list(body, "ipsWhitelist", str) or []))
    if "expiresAt" in body:
        changes["expires_at"] = _expiry(call, body)
    d.update_token(portfolio_id, token_id, changes)
    return 204, None


def update_v1(call: Call) -> Reply:
    return _update(call, v2=False)


def update_v2(call: Call) -> Reply:
    return _update(call, v2=True)


def revoke(call: Call) -> Reply:
    call.sandbox.delegation.revoke(_portfolio_id(call), _token_id(call), call.now)
    return 204, None


def me(call: Call) -> Reply:
    return 200, views.me(call.principal)


# -- market data --------------------------------------------------------------------------
def rates(call: Call) -> Reply:
    raw = call.query.get("instrumentIds")
    if not raw:
        raise validation("instrumentIds is required: a comma-separated list of instrument ids")
    ids: list[int] = []
    for part in raw.split(","):
        part = part.strip()
        if not (part.isascii() and part.isdigit() and len(part) <= 19) or int(part) not in BY_ID:
            raise validation(f"instrumentIds contains an unknown instrument id: {part!r}")
        if int(part) not in ids:
            ids.append(int(part))
    if len(ids) > 100:
        raise validation("instrumentIds may hold at most 100 ids")
    prices = call.sandbox.prices
    return 200, {"rates": [views.rate(prices, BY_ID[i], call.now) for i in ids]}


def candles(call: Call) -> Reply:
    direction = call.path["direction"]
    if direction not in ("asc", "desc"):
        raise validation(f"direction must be 'asc' or 'desc', got {direction!r}")
    interval = call.path["interval"]
    if interval not in INTERVALS:
        raise validation(f"interval must be one of {', '.join(INTERVALS)}, got {interval!r}")
    count = call.path["candlesCount"]
    if not (count.isascii() and count.isdigit() and len(count) <= 19) or not 1 <= int(count) <= 1000:
        raise validation(f"candlesCount must be an integer from 1 to 1000, got {count!r}")
    instrument_id = parse_int_id(call.path["instrumentId"], "instrumentId")
    if instrument_id not in BY_ID:
        raise not_found(f"Instrument {instrument_id} not found")
    series = call.sandbox.prices.candles(instrument_id, interval, int(count), call.now)
    if direction == "desc":
        series.reverse()
    closes = [c["close"] for c in series]
    return 200, {
        "interval": interval,
        "candles": [{
            "instrumentId": instrument_id,
            "candles": series,
            "rangeOpen": series[0]["open"] if direction == "asc" else series[-1]["open"],
            "rangeClose": closes[-1] if direction == "asc" else closes[0],
            "rangeHigh": max(c["high"] for c in series),  # type: ignore[type-var]
            "rangeLow": min(c["low"] for c in series),  # type: ignore[type-var]
            "volume": round(sum(c["volume"] for c in series), 2),  # type: ignore[misc]
        }],
    }


def search(call: Call) -> Reply:
    q = call.query
    raw_fields = q.get("fields")
    if not raw_fields:
        raise validation("fields is required: a comma-separated list of Instrument fields")
    known = views.instrument_fields()
    fields = [f.strip() for f in raw_fields.split(",") if f.strip()]
    unknown = [f for f in fields if f not in known]
    if unknown or not fields:
        raise validation(f"fields names unknown Instrument fields: {', '.join(unknown) or '(none)'}")
    page_size = query_int(q, "pageSize", default=20, low=1, high=1000)
    page = query_int(q, "pageNumber", default=1, low=1, high=1_000_000)
    text = (q.get("searchText") or "").strip().lower()
    rows = [views.instrument(call.sandbox.prices, i, call.now) for i in UNIVERSE]
    if text:
        rows = [r for r in rows if text in r["symbol"].lower() or text in r["displayname"].lower()]
    by_folded = {name.lower(): name for name in known}
    for name, value in q.items():
        field_name = by_folded.get(name.lower())
        if field_name is not None:  # any Instrument field works as an equality filter
            rows = [r for r in rows if str(r[field_name]).lower() == value.lower()]
    sort = (q.get("sort") or "").split()
    if sort:
        key = sort[0]
        if key not in known or len(sort) > 2 or (len(sort) == 2 and sort[1] not in ("asc", "desc")):
            raise validation("sort must be '<Instrument field> [asc|desc]'")
        rows.sort(key=lambda r: (str(type(r[key])), r[key]), reverse=sort[-1] == "desc")
    total = len(rows)
    chosen = rows[(page - 1) * page_size: page * page_size]
    items = [{f: r[f] for f in fields} for r in chosen]
    return 200, {"page": page, "pageSize": page_size, "totalItems": total, "items": items}


# -- trading ------------------------------------------------------------------------------
def _cid(call: Call, mode: Mode) -> int:
    return call.principal.cid(mode)


def portfolio(mode: Mode, *, with_pnl: bool) -> Callable[[Call], Reply]:
    def handler(call: Call) -> Reply:
        body = views.client_portfolio(
            call.sandbox.trading, _cid(call, mode), call.now, with_pnl=with_pnl
        )
        return 200, body
    return handler


def history(mode: Mode) -> Callable[[Call], Reply]:
    def handler(call: Call) -> Reply:
        raw = call.query.get("minDate")
        if not raw:
            raise validation("minDate is required (YYYY-MM-DD)")
        min_date = parse_date(raw, "minDate")
        page = query_int(call.query, "page", default=1, low=1, high=1_000_000)
        size = query_int(call.query, "pageSize", default=100, low=1, high=1000)
        rows = call.sandbox.trading.history(_cid(call, mode), min_date, page, size)
        return 200, [views.trade(r) for r in rows]
    return handler


def _stops(body: Mapping[str, Any], sl: str, tp: str) -> tuple[float, float]:
    stop_loss = opt_number(body, sl) or 0.0
    take_profit = opt_number(body, tp) or 0.0
    if stop_loss < 0 or take_profit < 0:
        raise validation(f"{sl} and {tp} must not be negative")
    return stop_loss, take_profit


def create_order(mode: Mode) -> Callable[[Call], Reply]:
    def handler(call: Call) -> Reply:
        body = call.body()
        require_fields(body, ["action", "transaction"])
        action = opt_string(body, "action")
        if action not in ("open", "close"):
            raise validation("action must be 'open' or 'close'")
        if action == "close":
            raise validation("Currently only orders to open a position are supported "
                             "(action must be 'open'); close with market-close-orders")
        transaction = opt_string(body, "transaction")
        if transaction not in ("buy", "sell", "sellShort", "buyToCover"):
            raise validation("transaction must be one of buy, sell, sellShort, buyToCover")
        if transaction == "buyToCover":
            raise validation("transaction 'buyToCover' closes a short; it cannot open a position")
        is_buy = transaction == "buy"
        symbol = opt_string(body, "symbol")
        instrument_id = opt_integer(body, "instrumentId")
        if symbol is None and instrument_id is None:
            raise validation("Give the instrument: instrumentId or symbol")
        inst = find_instrument(instrument_id, symbol)
        if inst is None:
            named = instrument_id if instrument_id is not None else repr(symbol)
            raise validation(f"Unknown instrument: {named}")
        if symbol is not None and instrument_id is not None and inst.symbol.upper() != symbol.upper():
            raise validation(f"symbol {symbol!r} is not instrument {instrument_id}")
        order_type = opt_string(body, "orderType") or "mkt"
        if order_type not in ("mkt", "mit"):
            raise validation("orderType must be 'mkt' or 'mit'")
        trigger = opt_number(body, "triggerRate")
        if order_type == "mit" and (trigger is None or trigger <= 0):
            raise validation("triggerRate must be a positive number for orderType 'mit'")
        if order_type == "mkt" and trigger is not None:
            raise validation("triggerRate applies only to orderType 'mit'")
        amount, units = opt_number(body, "amount"), opt_number(body, "units")
        contracts = opt_number(body, "contracts")
        given = [n for n, v in (("amount", amount), ("units", units), ("contracts", contracts))
                 if v is not None]
        if len(given) != 1:
            raise validation("Order size must use exactly one of amount, units, or contracts")
        if contracts is not None:
            raise validation(f"contracts apply to futures only; {inst.symbol} is not a future")
        if (amount is not None and amount <= 0) or (units is not None and units <= 0):
            raise validation(f"{given[0]} must be a positive number")
        currency = opt_string(body, "orderCurrency")
        if currency is not None and currency.upper() != "USD":
            raise validation("orderCurrency must be USD: every sandbox account is in USD")
        if body.get("additionalMargin") is not None:
            raise validation("additionalMargin applies to margin trades, which the sandbox does not offer")
        if body.get("positionIds"):
            raise validation("positionIds applies to close orders only")
        stop_type = opt_string(body, "stopLossType")
        if stop_type not in (None, "fixed", "trailing"):
            raise validation("stopLossType must be 'fixed' or 'trailing'")
        settlement = opt_string(body, "settlementType")
        if settlement not in (None, "cfd", "real", "realFutures", "marginTrade"):
            raise validation("settlementType must be one of cfd, real, realFutures, marginTrade")
        stop_loss, take_profit = _stops(body, "stopLossRate", "takeProfitRate")
        leverage, settlement = call.sandbox.trading.check_order(
            inst, is_buy, opt_integer(body, "leverage"), settlement, stop_loss, take_profit,
            call.now,
        )
        request = OrderRequest(inst, is_buy, leverage, settlement, amount, units, order_type,
                               trigger, stop_loss, take_profit, stop_type == "trailing", "v2")
        order = call.sandbox.trading.place(
            _cid(call, mode), request, call.sandbox.store.new_uuid(), call.request_id, call.now
        )
        return 200, views.unified_order(order)
    return handler


def open_v1(mode: Mode, *, by_units: bool) -> Callable[[Call], Reply]:
    size_field = "AmountInUnits" if by_units else "Amount"

    def handler(call: Call) -> Reply:
        body = call.body()
        require_fields(body, ["InstrumentID", "IsBuy", "Leverage", size_field])
        instrument_id = opt_integer(body, "InstrumentID")
        assert instrument_id is not None
        inst = instrument_of(instrument_id)
        is_buy = bool(opt_bool(body, "IsBuy"))
        size = opt_number(body, size_field)
        if size is None or size <= 0:
            raise validation(f"{size_field} must be a positive number")
        stop_loss, take_profit = _stops(body, "StopLossRate", "TakeProfitRate")
        if opt_bool(body, "IsNoStopLoss"):
            stop_loss = 0.0
        if opt_bool(body, "IsNoTakeProfit"):
            take_profit = 0.0
        leverage, settlement = call.sandbox.trading.check_order(
            inst, is_buy, opt_integer(body, "Leverage"), None, stop_loss, take_profit, call.now
        )
        request = OrderRequest(
            inst, is_buy, leverage, settlement, None if by_units else size,
            size if by_units else None, "mkt", None, stop_loss, take_profit,
            bool(opt_bool(body, "IsTslEnabled")), "v1",
        )
        order = call.sandbox.trading.place(
            _cid(call, mode), request, call.sandbox.store.new_uuid(), call.request_id, call.now
        )
        return 200, views.v1_open(order, by_units=by_units)
    return handler


def close_position(mode: Mode) -> Callable[[Call], Reply]:
    # The contract spells the field InstrumentID on demo and InstrumentId on real; as
    # names bind regardless of case, either spelling reaches either operation.
    instrument_field = "InstrumentID" if mode == "demo" else "InstrumentId"

    def handler(call: Call) -> Reply:
        position_id = parse_int_id(call.path["positionId"], "positionId")
        body = call.optional_body()
        require_fields(body, [instrument_field])
        instrument_id = opt_integer(body, instrument_field)
        assert instrument_id is not None
        units = opt_number(body, "UnitsToDeduct")
        token = call.sandbox.store.new_uuid()
        result = call.sandbox.trading.close_position(
            _cid(call, mode), position_id, instrument_id, units, token, call.now
        )
        return 200, views.v1_close(result, token, call.now)
    return handler


def cancel_order(mode: Mode) -> Callable[[Call], Reply]:
    def handler(call: Call) -> Reply:
        order_id = parse_int_id(call.path["orderId"], "orderId")
        trading = call.sandbox.trading
        order = trading.order(_cid(call, mode), order_id)
        if order["status"] == "executed":
            pos = trading.conn.execute(
                "SELECT closed_at FROM positions WHERE position_id = ?", (order["position_id"],)
            ).fetchone()
            if pos["closed_at"] is None:
                raise validation(
                    f"Order {order_id} has already been executed; close position "
                    f"{order['position_id']} instead"
                )
        trading.cancel(_cid(call, mode), order_id, call.now)
        return 200, {"token": call.sandbox.store.new_uuid()}
    return handler


def lookup_order(mode: Mode) -> Callable[[Call], Reply]:
    def handler(call: Call) -> Reply:
        raw_id, ref = call.query.get("orderId"), call.query.get("referenceId")
        if (raw_id is None) == (ref is None):
            raise validation("Provide exactly one of orderId or referenceId")
        trading = call.sandbox.trading
        cid = _cid(call, mode)
        if raw_id is not None:
            order = trading.order(cid, parse_int_id(raw_id, "orderId"))
        else:
            order = trading.order_by_reference(cid, parse_uuid(ref or "", "referenceId"))
        return 200, views.order_info(trading, order, call.principal.gcid)
    return handler


def order_info_v1(mode: Mode) -> Callable[[Call], Reply]:
    def handler(call: Call) -> Reply:
        order_id = parse_int_id(call.path["orderId"], "orderId")
        trading = call.sandbox.trading
        return 200, views.v1_order_info(trading, trading.order(_cid(call, mode), order_id))
    return handler


def _trading_ops() -> list[Operation]:
    ops: list[Operation] = []
    for mode in ("demo", "real"):
        m: Mode = "demo" if mode == "demo" else "real"
        demo = mode == "demo"
        seg = "demo/" if demo else ""
        info = "demo/" if demo else "real/"
        suffix = "Demo" if demo else ""
        ops += [
            Operation(f"closePositionByMarketRate{suffix}", "POST",
                      f"/api/v1/trading/execution/{seg}market-close-orders/positions/{{positionId}}",
                      (m, "write"), close_position(m), creates_order=True),
            Operation("getDemoAccountPnl" if demo else "getRealAccountPnl", "GET",
                      f"/api/v1/trading/info/{info}pnl", (m, "read"),
                      portfolio(m, with_pnl=True)),
            Operation("getPortfolioDemo" if demo else "getPortfolio", "GET",
                      f"/api/v1/trading/info/{seg}portfolio", (m, "read"),
                      portfolio(m, with_pnl=False)),
            Operation("listTradingHistory" if demo else "listTradingHistory2", "GET",
                      f"/api/v1/trading/info/trade/{seg}history", (m, "read"), history(m)),
            Operation("createDemoOrder" if demo else "createRealOrder", "POST",
                      f"/api/v2/trading/execution/{seg}orders", (m, "write"), create_order(m),
                      creates_order=True, problem_details=True),
            Operation("cancelDemoOrder" if demo else "cancelRealOrder", "DELETE",
                      f"/api/v2/trading/execution/{seg}orders/{{orderId}}", (m, "write"),
                      cancel_order(m), problem_details=True),
            Operation("lookupDemoOrder" if demo else "lookupRealOrder", "GET",
                      f"/api/v2/trading/info/{seg}orders:lookup", (m, "read"), lookup_order(m),
                      problem_details=True),
            Operation(f"openMarketPositionByAmount{suffix}", "POST",
                      f"/api/v1/trading/execution/{seg}market-open-orders/by-amount",
                      (m, "write"), open_v1(m, by_units=False), creates_order=True),
            Operation(f"openMarketPositionByUnits{suffix}", "POST",
                      f"/api/v1/trading/execution/{seg}market-open-orders/by-units",
                      (m, "write"), open_v1(m, by_units=True), creates_order=True),
            Operation("getDemoOrderForOpenInfo" if demo else "getRealOrderForOpenInfo", "GET",
                      f"/api/v1/trading/info/{info}orders/{{orderId}}", (m, "read"),
                      order_info_v1(m)),
        ]
    return ops


OPERATIONS: tuple[Operation, ...] = (
    Operation("getAgentPortfolios", "GET", "/api/v1/agent-portfolios", "owner", list_portfolios),
    Operation("createAgentPortfolio", "POST", "/api/v1/agent-portfolios", "owner",
              create_portfolio_v1),
    Operation("createAgentPortfolioV2", "POST", "/api/v2/agent-portfolios", "owner",
              create_portfolio_v2),
    Operation("deleteAgentPortfolio", "DELETE", "/api/v1/agent-portfolios/{agentPortfolioId}",
              "owner", delete_portfolio),
    Operation("getAgentPortfolioAllowedScopesV2", "GET",
              "/api/v2/agent-portfolios/user-tokens/scopes", "owner", allowed_scopes),
    Operation("createAgentPortfolioUserToken", "POST",
              "/api/v1/agent-portfolios/{agentPortfolioId}/user-tokens", "owner", mint_v1),
    Operation("createAgentPortfolioUserTokenV2", "POST",
              "/api/v2/agent-portfolios/{agentPortfolioId}/user-tokens", "owner", mint_v2),
    Operation("updateAgentPortfolioUserToken", "PATCH",
              "/api/v1/agent-portfolios/{agentPortfolioId}/user-tokens/{userTokenId}", "owner",
              update_v1),
    Operation("updateAgentPortfolioUserTokenV2", "PATCH",
              "/api/v2/agent-portfolios/{agentPortfolioId}/user-tokens/{userTokenId}", "owner",
              update_v2),
    Operation("deleteAgentPortfolioUserToken", "DELETE",
              "/api/v1/agent-portfolios/{agentPortfolioId}/user-tokens/{userTokenId}", "owner",
              revoke),
    Operation("getAuthenticatedUserProfile", "GET", "/api/v1/me", "identity", me),
    Operation("retrieveCurrentMarketRatesPricingInformation", "GET",
              "/api/v1/market-data/instruments/rates", "market", rates),
    Operation("getCandles", "GET",
              "/api/v1/market-data/instruments/{instrumentId}/history/candles/{direction}/"
              "{interval}/{candlesCount}", "market", candles),
    Operation("searchForInstruments", "GET", "/api/v1/market-data/search", "market", search),
    *_trading_ops(),
)
