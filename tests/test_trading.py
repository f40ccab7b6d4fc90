"""Agent trading: fills, P&L, closing, pending orders, lookup, history, idempotency,
and the owner's copy mirror."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from etoro_nb.sandbox import SandboxServer
from tests.helpers import ALL_SCOPES, Api, order_body

REAL_ORDERS = "/api/v2/trading/execution/orders"
DEMO_ORDERS = "/api/v2/trading/execution/demo/orders"


@pytest.fixture
def created(owner: Api) -> dict[str, Any]:
    return owner.create_portfolio(investment=2000.0, scopes=ALL_SCOPES)


@pytest.fixture
def agent(created: dict[str, Any], agent_for: Callable[[str], Api]) -> Api:
    return agent_for(created["userTokens"][0]["userToken"])


def _rate(api: Api, instrument_id: int) -> dict[str, float]:
    r = api.get("/api/v1/market-data/instruments/rates", params={"instrumentIds": instrument_id})
    return r.json()["rates"][0]  # type: ignore[no-any-return]


def _portfolio(api: Api, mode: str = "real") -> dict[str, Any]:
    return api.get(f"/api/v1/trading/info/{mode}/pnl").json()["clientPortfolio"]  # type: ignore[no-any-return]


def _open(api: Api, path: str = REAL_ORDERS, **kw: Any) -> dict[str, Any]:
    r = api.post(path, order_body(**kw))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _close(api: Api, position: dict[str, Any], units: float | None = None,
           mode: str = "real") -> dict[str, Any]:
    seg = "demo/" if mode == "demo" else ""
    field = "InstrumentID" if mode == "demo" else "InstrumentId"
    body: dict[str, Any] = {field: position["instrumentID"]}
    if units is not None:
        body["UnitsToDeduct"] = units
    r = api.post(f"/api/v1/trading/execution/{seg}market-close-orders/positions/"
                 f"{position['positionID']}", body)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_buy_by_amount_fills_at_the_ask(agent: Api) -> None:
    ask = _rate(agent, 1001)["ask"]
    _open(agent, amount=1000, leverage=2)
    book = _portfolio(agent)
    pos = book["positions"][0]
    assert book["credit"] == 9000.0
    assert pos["openRate"] == ask
    assert pos["units"] == pytest.approx(1000 * 2 / ask, rel=1e-6)
    assert pos["amount"] == 1000 and pos["leverage"] == 2 and pos["isBuy"] is True


def test_buy_by_units_costs_units_times_price_over_leverage(agent: Api) -> None:
    ask = _rate(agent, 100000)["ask"]
    _open(agent, instrumentId=100000, amount=None, units=0.05, leverage=2)
    pos = _portfolio(agent)["positions"][0]
    assert pos["units"] == pytest.approx(0.05)
    assert pos["amount"] == pytest.approx(round(0.05 * ask / 2, 2))


def test_pnl_adds_up_for_a_buy_and_a_short(server: SandboxServer, agent: Api) -> None:
    _open(agent, instrumentId=100000, amount=2000)
    _open(agent, instrumentId=1, transaction="sell", amount=1000, leverage=10)
    server.sandbox.clock.advance(3 * 86400)
    book = _portfolio(agent)
    unrealized = [p["unrealizedPnL"]["pnL"] for p in book["positions"]]
    assert book["unrealizedPnL"] == pytest.approx(sum(unrealized), abs=0.011)
    for pos in book["positions"]:
        close = pos["unrealizedPnL"]["closeRate"]
        sign = 1 if pos["isBuy"] else -1
        assert pos["unrealizedPnL"]["pnL"] == pytest.approx(
            sign * pos["units"] * (close - pos["openRate"]), abs=0.011)
        _close(agent, pos)
    after = _portfolio(agent)
    history = agent.get("/api/v1/trading/info/trade/history",
                        params={"minDate": "2026-01-01"}).json()
    assert after["positions"] == []
    assert len(history) == 2
    assert after["credit"] == pytest.approx(10_000 + sum(t["netProfit"] for t in history), abs=0.02)
    assert sum(t["netProfit"] for t in history) == pytest.approx(sum(unrealized), abs=0.02)


def test_partial_close_keeps_the_rest_open(agent: Api) -> None:
    _open(agent, amount=1000)
    pos = _portfolio(agent)["positions"][0]
    half = round(pos["units"] / 2, 6)
    result = _close(agent, pos, units=half)
    assert result["orderForClose"]["unitsToDeduct"] == pytest.approx(half)
    rest = _portfolio(agent)["positions"][0]
    assert rest["positionID"] == pos["positionID"]
    assert rest["units"] == pytest.approx(pos["units"] - half, abs=1e-6)
    assert rest["amount"] == pytest.approx(500, abs=0.01)
    assert rest["isPartiallyAltered"] is True


def test_close_is_checked(agent: Api) -> None:
    _open(agent, amount=1000)
    pos = _portfolio(agent)["positions"][0]
    base = f"/api/v1/trading/execution/market-close-orders/positions/{pos['positionID']}"
    r = agent.post(base, {"InstrumentId": 1002})
    assert r.status_code == 400 and "InstrumentId" in r.json()["errorMessage"]
    r = agent.post(base, {"InstrumentId": 1001, "UnitsToDeduct": pos["units"] * 2})
    assert r.status_code == 400 and "UnitsToDeduct" in r.json()["errorMessage"]
    r = agent.post(base, {})
    assert r.status_code == 400 and "InstrumentId" in r.json()["errorMessage"]
    r = agent.post("/api/v1/trading/execution/market-close-orders/positions/1", {"InstrumentId": 1001})
    assert r.status_code == 404
    assert len(_portfolio(agent)["positions"]) == 1


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"leverage": 50}, "leverage"),
        ({"settlementType": "real", "leverage": 2}, "settlementType"),
        ({"transaction": "sell", "settlementType": "real"}, "settlementType"),
        ({"stopLossRate": 10_000.0}, "stopLossRate"),
        ({"takeProfitRate": 1.0}, "takeProfitRate"),
        ({"units": 1.0}, "exactly one of amount, units"),
        ({"amount": None}, "exactly one of amount, units"),
        ({"amount": 5}, "minimum"),
        ({"instrumentId": 424242}, "Unknown instrument"),
        ({"action": "close"}, "only orders to open"),
        ({"transaction": "buyToCover"}, "buyToCover"),
        ({"orderType": "mit"}, "triggerRate"),
        ({"orderCurrency": "EUR"}, "USD"),
    ],
)
def test_bad_orders_are_refused_with_the_rule(
    agent: Api, change: dict[str, Any], fragment: str
) -> None:
    body = order_body()
    body.update(change)
    r = agent.post(REAL_ORDERS, {k: v for k, v in body.items() if v is not None})
    assert r.status_code == 400, r.text
    assert fragment in r.json()["errorMessage"]
    assert r.json()["status"] == 400  # v2 trading errors also carry RFC 7807 fields
    assert _portfolio(agent)["positions"] == []


def test_insufficient_funds(agent: Api) -> None:
    r = agent.post(REAL_ORDERS, order_body(amount=10_000.01))
    assert r.status_code == 400 and r.json()["errorCode"] == "InsufficientFunds"
    assert _portfolio(agent)["credit"] == 10_000


def test_repeated_request_id_returns_the_first_result_and_opens_nothing_new(agent: Api) -> None:
    rid = str(uuid.uuid4())
    first = agent.post(REAL_ORDERS, order_body(), request_id=rid)
    second = agent.post(REAL_ORDERS, order_body(amount=2500), request_id=rid)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert len(_portfolio(agent)["positions"]) == 1
    v1 = {"InstrumentID": 1001, "IsBuy": True, "Leverage": 1, "Amount": 100}
    rid = str(uuid.uuid4())
    a = agent.post("/api/v1/trading/execution/market-open-orders/by-amount", v1, request_id=rid)
    b = agent.post("/api/v1/trading/execution/market-open-orders/by-amount", v1, request_id=rid)
    assert a.json() == b.json()
    assert len(_portfolio(agent)["positions"]) == 2
    assert agent.post(REAL_ORDERS, order_body()).json()["orderId"] != first.json()["orderId"]


def test_idempotency_is_per_caller(owner: Api, agent: Api) -> None:
    rid = str(uuid.uuid4())
    a = agent.post(DEMO_ORDERS, order_body(), request_id=rid).json()
    b = owner.post(DEMO_ORDERS, order_body(), request_id=rid).json()
    assert a["orderId"] != b["orderId"]


def test_pending_order_freezes_funds_until_cancelled(agent: Api) -> None:
    bid = _rate(agent, 1001)["ask"]
    order = _open(agent, orderType="mit", triggerRate=round(bid * 0.5, 2))
    book = _portfolio(agent)
    assert book["credit"] == 9000 and book["positions"] == []
    assert [o["orderId"] for o in book["orders"]] == [order["orderId"]]
    path = f"{REAL_ORDERS}/{order['orderId']}"
    assert agent.delete(path).status_code == 200
    assert _portfolio(agent)["credit"] == 10_000
    assert agent.delete(path).status_code == 200  # idempotent once cancelled
    assert _portfolio(agent)["credit"] == 10_000
    info = agent.get("/api/v2/trading/info/orders:lookup", params={"orderId": order["orderId"]})
    assert info.json()["status"]["name"] == "Cancelled"


def test_executed_order_cannot_be_cancelled(agent: Api) -> None:
    order = _open(agent)
    r = agent.delete(f"{REAL_ORDERS}/{order['orderId']}")
    assert r.status_code == 400 and "executed" in r.json()["errorMessage"]
    assert agent.delete(f"{REAL_ORDERS}/424242").status_code == 404


def _first_minute(server: SandboxServer, instrument_id: int, hit: Callable[[float, float], bool],
                  limit: int = 14 * 24 * 60) -> int:
    """Minutes from now until the sandbox's own price feed first satisfies ``hit(bid, ask)``.

    Triggers are checked at each request's instant, so a test advances the clock straight
    to the minute the price gets there instead of polling minute by minute.
    """
    prices, now = server.sandbox.prices, server.sandbox.clock.now()
    for minute in range(1, limit):
        if hit(*prices.quote(instrument_id, now + timedelta(minutes=minute))):
            return minute
    raise AssertionError("the price never got there within the limit")


def test_market_if_touched_order_fills_when_the_price_gets_there(
    server: SandboxServer, agent: Api
) -> None:
    ask = _rate(agent, 100000)["ask"]
    trigger = round(ask * 1.01, 2)
    order = _open(agent, instrumentId=100000, orderType="mit", triggerRate=trigger)
    minutes = _first_minute(server, 100000, lambda bid, ask: ask >= trigger)
    server.sandbox.clock.advance((minutes - 1) * 60)
    assert _portfolio(agent)["positions"] == []  # not touched yet: still waiting
    server.sandbox.clock.advance(60)
    pos = _portfolio(agent)["positions"][0]
    assert pos["orderID"] == order["orderId"]
    assert pos["openRate"] >= trigger
    info = agent.get("/api/v2/trading/info/orders:lookup", params={"orderId": order["orderId"]})
    assert info.json()["status"]["name"] == "Executed"
    assert info.json()["positionExecutions"][0]["positionId"] == pos["positionID"]


@pytest.mark.parametrize("kind", ["stopLossRate", "takeProfitRate"])
def test_stop_loss_and_take_profit_close_the_position(
    server: SandboxServer, agent: Api, kind: str
) -> None:
    quote = _rate(agent, 100000)
    prices, now = server.sandbox.prices, server.sandbox.clock.now()
    bids = [prices.quote(100000, now + timedelta(minutes=m))[0] for m in range(1, 3 * 24 * 60)]
    # A level the coming three days' prices are known to cross.
    if kind == "stopLossRate":
        level = round((quote["bid"] + min(bids)) / 2, 2)
        crossed: Callable[[float, float], bool] = lambda b, a: b <= level  # noqa: E731
    else:
        level = round((quote["ask"] + max(bids)) / 2, 2)
        crossed = lambda b, a: b >= level  # noqa: E731
    _open(agent, instrumentId=100000, **{kind: level})
    minutes = _first_minute(server, 100000, crossed)
    server.sandbox.clock.advance((minutes - 1) * 60)
    assert len(_portfolio(agent)["positions"]) == 1
    server.sandbox.clock.advance(60)
    assert _portfolio(agent)["positions"] == []
    trade = agent.get("/api/v1/trading/info/trade/history",
                      params={"minDate": "2026-01-01"}).json()[0]
    assert trade[kind] == level
    if kind == "stopLossRate":
        assert trade["closeRate"] <= level and trade["netProfit"] < 0
    else:
        assert trade["closeRate"] >= level and trade["netProfit"] > 0


def test_lookup_by_order_id_and_reference_id(agent: Api) -> None:
    order = _open(agent, transaction="sell", instrumentId=1, leverage=5)
    by_id = agent.get("/api/v2/trading/info/orders:lookup", params={"orderId": order["orderId"]})
    by_ref = agent.get("/api/v2/trading/info/orders:lookup",
                       params={"referenceId": order["referenceId"]})
    assert by_id.status_code == by_ref.status_code == 200
    assert by_id.json() == by_ref.json()
    assert by_id.json()["asset"]["side"] == "short" and by_id.json()["asset"]["leverage"] == 5
    both = agent.get("/api/v2/trading/info/orders:lookup",
                     params={"orderId": order["orderId"], "referenceId": order["referenceId"]})
    assert both.status_code == 400
    assert agent.get("/api/v2/trading/info/orders:lookup").status_code == 400
    missing = agent.get("/api/v2/trading/info/orders:lookup", params={"orderId": 1})
    assert missing.status_code == 404
    v1 = agent.get(f"/api/v1/trading/info/real/orders/{order['orderId']}").json()
    assert v1["orderID"] == order["orderId"] and v1["positions"][0]["isOpen"] is True


def test_orders_are_private_to_their_account(agent: Api, owner: Api) -> None:
    order = _open(agent)
    r = owner.get("/api/v2/trading/info/orders:lookup", params={"orderId": order["orderId"]})
    assert r.status_code == 404


def test_history_min_date_and_paging(server: SandboxServer, agent: Api) -> None:
    for _ in range(5):
        _open(agent, amount=100)
    for pos in _portfolio(agent)["positions"]:
        _close(agent, pos)
        server.sandbox.clock.advance(86400)
    path = "/api/v1/trading/info/trade/history"
    everything = agent.get(path, params={"minDate": "2026-03-01"}).json()
    assert len(everything) == 5
    pages = [agent.get(path, params={"minDate": "2026-03-01", "page": p, "pageSize": 2}).json()
             for p in (1, 2, 3, 4)]
    assert [len(p) for p in pages] == [2, 2, 1, 0]
    assert [t["positionId"] for p in pages for t in p] == [t["positionId"] for t in everything]
    later = agent.get(path, params={"minDate": "2026-03-04"}).json()
    assert len(later) == 3
    assert agent.get(path).status_code == 400
    assert agent.get(path, params={"minDate": "03/01/2026"}).status_code == 400
    assert agent.get(path, params={"minDate": "2026-03-01", "pageSize": 0}).status_code == 400


def test_real_trades_are_mirrored_in_proportion(owner: Api, agent: Api) -> None:
    ratio = 2000.0 / 10_000.0
    _open(agent, amount=1500, leverage=2)
    parent = _portfolio(agent)["positions"][0]
    mirror = owner.owner_real()["mirrors"][0]
    copy = mirror["positions"][0]
    assert copy["parentPositionID"] == parent["positionID"]
    assert copy["amount"] == pytest.approx(1500 * ratio)
    assert copy["units"] == pytest.approx(parent["units"] * ratio, rel=1e-5)
    assert copy["openRate"] == parent["openRate"] and copy["leverage"] == 2
    assert mirror["availableAmount"] == pytest.approx(2000 - 1500 * ratio)
    # A partial close of the parent closes the same share of the copy.
    _close(agent, parent, units=round(parent["units"] * 0.25, 6))
    parent_after = _portfolio(agent)["positions"][0]
    copy_after = owner.owner_real()["mirrors"][0]["positions"][0]
    assert copy_after["units"] == pytest.approx(parent_after["units"] * ratio, rel=1e-4)
    _close(agent, parent_after)
    mirror = owner.owner_real()["mirrors"][0]
    assert mirror["positions"] == []
    owner_trades = owner.get("/api/v1/trading/info/trade/history",
                             params={"minDate": "2026-01-01"}).json()
    agent_trades = agent.get("/api/v1/trading/info/trade/history",
                             params={"minDate": "2026-01-01"}).json()
    assert all(t["parentPositionId"] == parent["positionID"] for t in owner_trades)
    assert sum(t["netProfit"] for t in owner_trades) == pytest.approx(
        ratio * sum(t["netProfit"] for t in agent_trades), abs=0.02)
    assert mirror["availableAmount"] == pytest.approx(
        2000 + sum(t["netProfit"] for t in owner_trades), abs=0.02)


def test_owner_trades_directly_without_touching_mirrors(owner: Api, agent: Api) -> None:
    before = owner.owner_real()
    _open(owner, amount=500)
    after = owner.owner_real()
    assert after["credit"] == pytest.approx(before["credit"] - 500)
    assert len(after["positions"]) == 1 and after["mirrors"][0]["positions"] == []


def test_v1_market_open_by_amount_and_units(agent: Api) -> None:
    r = agent.post("/api/v1/trading/execution/demo/market-open-orders/by-amount",
                   {"InstrumentID": 1003, "IsBuy": False, "Leverage": 2, "Amount": 300})
    assert r.status_code == 200
    body = r.json()["orderForOpen"]
    assert body["amount"] == 300 and body["isBuy"] is False and body["statusID"] == 3
    r = agent.post("/api/v1/trading/execution/demo/market-open-orders/by-units",
                   {"InstrumentID": 1003, "IsBuy": True, "Leverage": 1, "AmountInUnits": 2})
    assert r.status_code == 200 and r.json()["orderForOpen"]["amountInUnits"] == 2
    positions = _portfolio(agent, "demo")["positions"]
    assert [p["isBuy"] for p in positions] == [False, True]
    r = agent.post("/api/v1/trading/execution/demo/market-open-orders/by-amount",
                   {"InstrumentID": 1003, "IsBuy": True, "Leverage": 1})
    assert r.status_code == 400 and "Amount" in r.json()["errorMessage"]


def test_reference_id_is_the_request_id_the_order_was_placed_with(agent: Api) -> None:
    rid = str(uuid.uuid4())
    order = agent.post(REAL_ORDERS, order_body(), request_id=rid).json()
    assert order["referenceId"] == rid
    found = agent.get("/api/v2/trading/info/orders:lookup", params={"referenceId": rid})
    assert found.json()["orderId"] == order["orderId"]
