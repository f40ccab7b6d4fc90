"""Each of the four scopes opens exactly its own reads or writes, and nothing else."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.helpers import ALL_SCOPES, DEMO_READ, REAL_READ, Api, order_body

# (scope, method, path, body): one read and one write per mode, plus more of each kind.
OPERATIONS = [
    ("etoro-public:trade.demo:read", "GET", "/api/v1/trading/info/demo/portfolio", None),
    ("etoro-public:trade.demo:read", "GET", "/api/v1/trading/info/demo/pnl", None),
    ("etoro-public:trade.demo:read", "GET",
     "/api/v1/trading/info/trade/demo/history?minDate=2026-01-01", None),
    ("etoro-public:trade.demo:write", "POST", "/api/v2/trading/execution/demo/orders",
     order_body()),
    ("etoro-public:trade.demo:write", "POST",
     "/api/v1/trading/execution/demo/market-open-orders/by-amount",
     {"InstrumentID": 1001, "IsBuy": True, "Leverage": 1, "Amount": 100}),
    ("etoro-public:trade.real:read", "GET", "/api/v1/trading/info/portfolio", None),
    ("etoro-public:trade.real:read", "GET", "/api/v1/trading/info/real/pnl", None),
    ("etoro-public:trade.real:read", "GET",
     "/api/v1/trading/info/trade/history?minDate=2026-01-01", None),
    ("etoro-public:trade.real:write", "POST", "/api/v2/trading/execution/orders", order_body()),
    ("etoro-public:trade.real:write", "POST",
     "/api/v1/trading/execution/market-open-orders/by-units",
     {"InstrumentID": 1001, "IsBuy": True, "Leverage": 1, "AmountInUnits": 1}),
]


@pytest.mark.parametrize("granted", ALL_SCOPES)
def test_a_token_can_do_exactly_what_its_scope_allows(
    owner: Api, agent_for: Callable[[str], Api], granted: str
) -> None:
    created = owner.create_portfolio(scopes=[granted])
    agent = agent_for(created["userTokens"][0]["userToken"])
    for needed, method, path, body in OPERATIONS:
        r = agent.request(method, path, json=body)
        if needed == granted:
            assert r.status_code == 200, (path, r.text)
        else:
            assert r.status_code == 403, (path, r.text)
            assert r.json()["errorCode"] == "InsufficientScope"
            assert needed in r.json()["errorMessage"]


@pytest.mark.parametrize("granted", ALL_SCOPES)
def test_profile_needs_a_read_scope(
    owner: Api, agent_for: Callable[[str], Api], granted: str
) -> None:
    created = owner.create_portfolio(scopes=[granted])
    agent = agent_for(created["userTokens"][0]["userToken"])
    r = agent.get("/api/v1/me")
    if granted in (DEMO_READ, REAL_READ):
        assert r.status_code == 200
        assert r.json()["scopes"] == [granted]
        assert r.json()["username"] == "agent01"
    else:
        assert r.status_code == 403


def test_refused_writes_change_nothing(owner: Api, agent_for: Callable[[str], Api]) -> None:
    created = owner.create_portfolio(scopes=[REAL_READ])
    agent = agent_for(created["userTokens"][0]["userToken"])
    assert agent.post("/api/v2/trading/execution/orders", order_body()).status_code == 403
    assert agent.get("/api/v1/trading/info/portfolio").json()["clientPortfolio"]["positions"] == []


def test_market_data_needs_only_a_valid_key(owner: Api, agent_for: Callable[[str], Api]) -> None:
    created = owner.create_portfolio(scopes=[DEMO_READ])
    agent = agent_for(created["userTokens"][0]["userToken"])
    assert agent.get("/api/v1/market-data/instruments/rates",
                     params={"instrumentIds": "1001"}).status_code == 200
