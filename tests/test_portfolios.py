"""Agent portfolios: create (v1 and v2), list, delete, and the money they move."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from etoro_nb.sandbox import SandboxServer
from tests.helpers import ALL_SCOPES, DEMO_READ, REAL_READ, REAL_WRITE, Api, order_body


def _create(owner: Api, **body: object) -> dict[str, object]:
    base = {"agentPortfolioName": "agent01", "investmentAmountInUsd": 1000,
            "userTokenName": "bot", "scopeNames": [DEMO_READ]}
    base.update(body)
    r = owner.post("/api/v2/agent-portfolios", base)
    return {"status": r.status_code, **r.json()}


def test_create_debits_the_owner_and_opens_a_mirror(owner: Api) -> None:
    before = owner.owner_real()["credit"]
    created = owner.create_portfolio("alpha01", 2500.0, scopes=[REAL_READ])
    after = owner.owner_real()
    assert after["credit"] == pytest.approx(before - 2500.0)
    mirrors = after["mirrors"]
    assert [m["mirrorID"] for m in mirrors] == [created["mirrorId"]]
    assert mirrors[0]["initialInvestment"] == 2500.0
    assert mirrors[0]["availableAmount"] == 2500.0
    assert mirrors[0]["parentUsername"] == "alpha01"
    assert created["agentPortfolioVirtualBalance"] == 10_000.0


def test_agent_has_its_own_real_and_demo_accounts(
    owner: Api, agent_for: Callable[[str], Api]
) -> None:
    created = owner.create_portfolio(scopes=ALL_SCOPES)
    agent = agent_for(created["userTokens"][0]["userToken"])
    me = agent.get("/api/v1/me").json()
    owner_me = owner.get("/api/v1/me").json()
    assert me["gcid"] == created["agentPortfolioGcid"] != owner_me["gcid"]
    assert {me["realCid"], me["demoCid"]}.isdisjoint({owner_me["realCid"], owner_me["demoCid"]})
    real = agent.get("/api/v1/trading/info/real/pnl").json()["clientPortfolio"]
    demo = agent.get("/api/v1/trading/info/demo/pnl").json()["clientPortfolio"]
    assert real["credit"] == 10_000.0 and demo["credit"] == 10_000.0
    # A demo trade stays in the practice account: the real account and the mirror don't move.
    assert agent.post("/api/v2/trading/execution/demo/orders", order_body()).status_code == 200
    assert agent.get("/api/v1/trading/info/demo/pnl").json()["clientPortfolio"]["credit"] == 9000.0
    assert agent.get("/api/v1/trading/info/real/pnl").json()["clientPortfolio"]["credit"] == 10_000.0
    assert owner.owner_real()["mirrors"][0]["positions"] == []


def test_v1_create_with_scope_ids(owner: Api) -> None:
    r = owner.post("/api/v1/agent-portfolios", {
        "agentPortfolioName": "legacy1", "investmentAmountInUsd": 500,
        "userTokenName": "old", "scopeIds": [200, 202]})
    assert r.status_code == 201, r.text
    token = r.json()["userTokens"][0]
    assert token["scopeIds"] == [200, 202]
    assert token["scopeNames"] == [REAL_READ, REAL_WRITE]


def test_product_page_body_gets_400_naming_the_contract_fields(owner: Api) -> None:
    r = owner.post("/api/v2/agent-portfolios", {"name": "MyAgent", "description": "demo"})
    assert r.status_code == 400
    message = r.json()["errorMessage"]
    for field in ("agentPortfolioName", "investmentAmountInUsd", "userTokenName", "scopeNames"):
        assert field in message
    assert owner.get("/api/v1/agent-portfolios").json()["agentPortfolios"] == []


@pytest.mark.parametrize("name", ["short", "elevenchars", "", "with space"])
def test_names_must_be_6_to_10_plain_characters(owner: Api, name: str) -> None:
    result = _create(owner, agentPortfolioName=name)
    assert result["status"] == 400
    assert result["errorCode"] == "ValidationFailed"


@pytest.mark.parametrize("name", ["sixsix", "tencharsok"])
def test_names_at_the_bounds_are_accepted(owner: Api, name: str) -> None:
    assert _create(owner, agentPortfolioName=name)["status"] == 201


def test_names_are_unique_ignoring_case_and_free_again_after_delete(owner: Api) -> None:
    first = owner.create_portfolio("agent01")
    duplicate = _create(owner, agentPortfolioName="AGENT01")
    assert duplicate["status"] == 400 and "taken" in str(duplicate["errorMessage"])
    assert owner.delete(f"/api/v1/agent-portfolios/{first['agentPortfolioId']}").status_code == 204
    assert _create(owner, agentPortfolioName="agent01")["status"] == 201


def test_investment_below_minimum(owner: Api) -> None:
    result = _create(owner, investmentAmountInUsd=199.99)
    assert result["status"] == 400
    assert "minimum" in str(result["errorMessage"])


def test_minimum_investment_is_configurable(make_server: Callable[..., SandboxServer]) -> None:
    api = Api(make_server(min_investment=50.0))
    assert _create(api, investmentAmountInUsd=50)["status"] == 201
    assert _create(api, agentPortfolioName="agent02", investmentAmountInUsd=49)["status"] == 400
    api.close()


def test_investment_above_available_balance(owner: Api) -> None:
    credit = owner.owner_real()["credit"]
    result = _create(owner, investmentAmountInUsd=credit + 0.01)
    assert result["status"] == 400
    assert "available" in str(result["errorMessage"])
    assert owner.owner_real()["credit"] == credit


@pytest.mark.parametrize("value", ["100", True, -5, 0, None])
def test_investment_must_be_a_positive_number(owner: Api, value: object) -> None:
    result = _create(owner, investmentAmountInUsd=value)
    assert result["status"] == 400
    assert "investmentAmountInUsd" in str(result["errorMessage"])


def test_bad_token_part_leaves_nothing_half_done(owner: Api) -> None:
    credit = owner.owner_real()["credit"]
    result = _create(owner, ipsWhitelist=["300.1.1.1"])
    assert result["status"] == 400 and result["errorCode"] == "IpsWhitelistInvalidIp"
    result = _create(owner, scopeNames=["etoro-public:trade.moon:write"])
    assert result["status"] == 400 and result["errorCode"] == "ScopeNameNotAllowed"
    assert owner.get("/api/v1/agent-portfolios").json()["agentPortfolios"] == []
    assert owner.owner_real()["credit"] == credit


def test_list_shows_tokens_without_secrets(owner: Api) -> None:
    created = owner.create_portfolio(scopes=[DEMO_READ])
    secret = created["userTokens"][0]["userToken"]
    r = owner.get("/api/v1/agent-portfolios")
    assert secret not in r.text
    listed = r.json()["agentPortfolios"][0]
    assert listed["agentPortfolioName"] == "agent01"
    assert listed["userTokens"][0]["userTokenName"] == "bot"
    assert "userToken" not in listed["userTokens"][0]


def test_delete_revokes_tokens_closes_mirror_and_credits_its_value_back(
    server: SandboxServer, owner: Api, agent_for: Callable[[str], Api]
) -> None:
    start_credit = owner.owner_real()["credit"]
    created = owner.create_portfolio(investment=2000.0, scopes=[REAL_READ, REAL_WRITE])
    agent = agent_for(created["userTokens"][0]["userToken"])
    assert agent.post("/api/v2/trading/execution/orders",
                      order_body(instrumentId=100000, amount=3000)).status_code == 200
    server.sandbox.clock.advance(6 * 3600)
    mirror = owner.owner_real()["mirrors"][0]
    copy_pnl = mirror["positions"][0]["unrealizedPnL"]["pnL"]
    expected_back = mirror["availableAmount"] + mirror["positions"][0]["amount"] + copy_pnl
    r = owner.delete(f"/api/v1/agent-portfolios/{created['agentPortfolioId']}")
    assert r.status_code == 204
    after = owner.owner_real()
    assert after["mirrors"] == []
    assert after["credit"] == pytest.approx(start_credit - 2000.0 + expected_back, abs=0.02)
    assert agent.get("/api/v1/trading/info/real/pnl").status_code == 401
    assert owner.get("/api/v1/agent-portfolios").json()["agentPortfolios"] == []


def test_delete_unknown_and_malformed_ids(owner: Api) -> None:
    r = owner.delete(f"/api/v1/agent-portfolios/{uuid.uuid4()}")
    assert r.status_code == 404 and r.json()["errorCode"] == "NotFound"
    r = owner.delete("/api/v1/agent-portfolios/not-a-uuid")
    assert r.status_code == 400 and "agentPortfolioId" in r.json()["errorMessage"]
