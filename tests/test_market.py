"""Market data: the instrument universe, search, rates and candles, reproducible by seed."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime

import pytest

from etoro_nb.sandbox import SandboxServer
from tests.helpers import Api

RATES = "/api/v1/market-data/instruments/rates"
SEARCH = "/api/v1/market-data/search"


def _candles(api: Api, iid: int, direction: str, interval: str, count: int) -> list[dict]:
    r = api.get(f"/api/v1/market-data/instruments/{iid}/history/candles/"
                f"{direction}/{interval}/{count}")
    assert r.status_code == 200, r.text
    return r.json()["candles"][0]["candles"]  # type: ignore[no-any-return]


def test_universe_has_20_plus_instruments_of_four_kinds(owner: Api) -> None:
    r = owner.get(SEARCH, params={"fields": "instrumentId,symbol,instrumentType",
                                  "pageSize": 100})
    body = r.json()
    assert body["totalItems"] >= 20 and len(body["items"]) == body["totalItems"]
    kinds = {item["instrumentType"] for item in body["items"]}
    assert {"Stocks", "ETF", "Crypto", "Currencies"} <= kinds
    ids = [item["instrumentId"] for item in body["items"]]
    assert len(set(ids)) == len(ids)
    assert all(set(item) == {"instrumentId", "symbol", "instrumentType"} for item in body["items"])


def test_search_text_filter_sort_and_pages(owner: Api) -> None:
    hit = owner.get(SEARCH, params={"fields": "symbol,displayname", "searchText": "tesla"}).json()
    assert [i["symbol"] for i in hit["items"]] == ["TSLA"]
    crypto = owner.get(SEARCH, params={"fields": "symbol,popularityUniques",
                                       "instrumentType": "Crypto",
                                       "sort": "popularityUniques desc"}).json()
    pops = [i["popularityUniques"] for i in crypto["items"]]
    assert pops == sorted(pops, reverse=True) and crypto["items"][0]["symbol"] == "BTC"
    page2 = owner.get(SEARCH, params={"fields": "symbol", "pageSize": 5, "pageNumber": 2}).json()
    page1 = owner.get(SEARCH, params={"fields": "symbol", "pageSize": 5, "pageNumber": 1}).json()
    assert page2["page"] == 2 and len(page2["items"]) == 5
    assert not {i["symbol"] for i in page1["items"]} & {i["symbol"] for i in page2["items"]}


@pytest.mark.parametrize(
    ("params", "fragment"),
    [({}, "fields"), ({"fields": "symbol,nope"}, "nope"),
     ({"fields": "symbol", "sort": "nope desc"}, "sort"),
     ({"fields": "symbol", "pageSize": "0"}, "pageSize")],
)
def test_search_errors_name_the_parameter(owner: Api, params: dict, fragment: str) -> None:
    r = owner.get(SEARCH, params=params)
    assert r.status_code == 400 and fragment in r.json()["errorMessage"]


def test_rates_have_bid_below_ask(owner: Api) -> None:
    rates = owner.get(RATES, params={"instrumentIds": "1,1001,100000,3000"}).json()["rates"]
    assert [r["instrumentID"] for r in rates] == [1, 1001, 100000, 3000]
    for rate in rates:
        assert 0 < rate["bid"] < rate["ask"]
        assert rate["bid"] <= rate["lastExecution"] <= rate["ask"]


@pytest.mark.parametrize("ids", ["", "1,abc", "1,999999", ",".join(["1"] * 2) + ",-3"])
def test_rates_refuse_bad_ids(owner: Api, ids: str) -> None:
    assert owner.get(RATES, params={"instrumentIds": ids}).status_code == 400


def test_prices_move_with_the_clock(server: SandboxServer, owner: Api) -> None:
    before = owner.get(RATES, params={"instrumentIds": 100000}).json()["rates"][0]
    assert owner.get(RATES, params={"instrumentIds": 100000}).json()["rates"][0] == before
    server.sandbox.clock.advance(3600)
    after = owner.get(RATES, params={"instrumentIds": 100000}).json()["rates"][0]
    assert after["bid"] != before["bid"]


def test_same_seed_same_prices_other_seed_other_prices(
    make_server: Callable[..., SandboxServer]
) -> None:
    quotes = []
    for seed in (1, 1, 2):
        api = Api(make_server(seed=seed))
        quotes.append(api.get(RATES, params={"instrumentIds": "1001,100000"}).json())
        api.close()
    assert quotes[0] == quotes[1] != quotes[2]


@pytest.mark.parametrize(
    ("interval", "step"),
    [("OneMinute", 60), ("FifteenMinutes", 900), ("OneHour", 3600), ("OneDay", 86400),
     ("OneWeek", 7 * 86400)],
)
def test_candles_are_consistent(owner: Api, interval: str, step: int) -> None:
    candles = _candles(owner, 1001, "asc", interval, 30)
    assert len(candles) == 30
    starts = [datetime.fromisoformat(c["fromDate"].replace("Z", "+00:00")) for c in candles]
    assert all((b - a).total_seconds() == step for a, b in itertools.pairwise(starts))
    for c in candles:
        assert c["low"] <= min(c["open"], c["close"]) <= max(c["open"], c["close"]) <= c["high"]
    for a, b in itertools.pairwise(candles):
        assert b["open"] == pytest.approx(a["close"], rel=1e-4)
    if interval == "OneWeek":
        assert all(s.weekday() == 0 for s in starts)  # weeks start on Monday


def test_candles_desc_is_asc_reversed_and_last_close_is_the_current_price(owner: Api) -> None:
    asc = _candles(owner, 1001, "asc", "OneHour", 10)
    desc = _candles(owner, 1001, "desc", "OneHour", 10)
    assert desc == list(reversed(asc))
    rate = owner.get(RATES, params={"instrumentIds": 1001}).json()["rates"][0]
    assert rate["bid"] <= asc[-1]["close"] <= rate["ask"]


@pytest.mark.parametrize(
    "path",
    ["1001/history/candles/up/OneDay/10", "1001/history/candles/asc/OneMonth/10",
     "1001/history/candles/asc/OneDay/0", "1001/history/candles/asc/OneDay/1001",
     "abc/history/candles/asc/OneDay/10"],
)
def test_candle_parameters_are_checked(owner: Api, path: str) -> None:
    r = owner.get(f"/api/v1/market-data/instruments/{path}")
    assert r.status_code == 400


def test_unknown_instrument_candles_is_404(owner: Api) -> None:
    r = owner.get("/api/v1/market-data/instruments/4242/history/candles/asc/OneDay/5")
    assert r.status_code == 404
