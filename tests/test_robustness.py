"""Malformed input of every kind gets a 4xx naming what is wrong, never a 500."""

from __future__ import annotations

import pytest

from tests.helpers import Api

CREATE = "/api/v2/agent-portfolios"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"", "body is required"),
        (b"{", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (b'{"agentPortfolioName": "agent01", "investmentAmountInUsd": 1e999, '
         b'"userTokenName": "b", "scopeNames": ["etoro-public:trade.demo:read"]}', "finite"),
        (b'{"agentPortfolioName": "agent01", "investmentAmountInUsd": ' + b"9" * 400 + b', '
         b'"userTokenName": "b", "scopeNames": ["etoro-public:trade.demo:read"]}', "finite"),
        (b'{"agentPortfolioName": 7, "investmentAmountInUsd": 500, '
         b'"userTokenName": "b", "scopeNames": ["etoro-public:trade.demo:read"]}',
         "agentPortfolioName must be a string"),
        (b'{"agentPortfolioName": "agent01", "investmentAmountInUsd": 500, '
         b'"userTokenName": "b", "scopeNames": "etoro-public:trade.demo:read"}',
         "scopeNames must be an array"),
        (b'{"agentPortfolioName": "agent01", "investmentAmountInUsd": 500, '
         b'"userTokenName": "b", "scopeNames": ["etoro-public:trade.demo:read"], '
         b'"ipsWhitelist": [1]}', "ipsWhitelist must be an array of strings"),
    ],
)
def test_malformed_bodies_are_400(owner: Api, raw: bytes, fragment: str) -> None:
    r = owner.http.post(CREATE, content=raw,
                        headers=owner.headers(**{"content-type": "application/json"}))
    assert r.status_code == 400, r.text
    assert fragment in r.json()["errorMessage"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/agent-portfolios/%00",
        "/api/v1/trading/info/real/orders/99999999999999999999999",
        "/api/v1/trading/info/real/orders/-1",
        "/api/v2/trading/info/orders:lookup?orderId=abc",
        "/api/v2/trading/info/orders:lookup?referenceId=nope",
        "/api/v1/trading/info/trade/history?minDate=2026-13-45",
        "/api/v1/market-data/instruments/rates?instrumentIds=%EF%BC%91",
        "/api/v1/market-data/search?fields=symbol&pageNumber=1e3",
    ],
)
def test_malformed_ids_and_queries_are_4xx(owner: Api, path: str) -> None:
    r = owner.request("DELETE" if path.startswith("/api/v1/agent-portfolios") else "GET", path)
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["errorMessage"]


def test_unknown_route_and_method(owner: Api) -> None:
    r = owner.get("/api/v9/nothing")
    assert r.status_code == 404 and r.json()["errorCode"] == "NotFound"
    r = owner.request("PUT", "/api/v1/agent-portfolios")
    assert r.status_code == 405 and r.json()["errorCode"] == "MethodNotAllowed"
