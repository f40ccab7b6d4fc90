"""Keys, request ids, revocation, expiry, whitelists and owner-only operations."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from etoro_nb.sandbox import SandboxServer
from tests.helpers import ALL_SCOPES, DEMO_READ, Api

MANAGEMENT = [
    ("GET", "/api/v1/agent-portfolios"),
    ("POST", "/api/v2/agent-portfolios"),
    ("POST", "/api/v1/agent-portfolios"),
    ("GET", "/api/v2/agent-portfolios/user-tokens/scopes"),
    ("DELETE", "/api/v1/agent-portfolios/{pid}"),
    ("POST", "/api/v2/agent-portfolios/{pid}/user-tokens"),
    ("POST", "/api/v1/agent-portfolios/{pid}/user-tokens"),
    ("PATCH", "/api/v2/agent-portfolios/{pid}/user-tokens/{tid}"),
    ("PATCH", "/api/v1/agent-portfolios/{pid}/user-tokens/{tid}"),
    ("DELETE", "/api/v1/agent-portfolios/{pid}/user-tokens/{tid}"),
]


def _headers(api_key: str | None, user_key: str | None, request_id: str | None) -> dict[str, str]:
    h = {"x-api-key": api_key, "x-user-key": user_key, "x-request-id": request_id}
    return {k: v for k, v in h.items() if v is not None}


@pytest.mark.parametrize(
    ("api_key", "user_key", "fragment"),
    [
        (None, "sandbox-user-key", "x-api-key"),
        ("sandbox-api-key", None, "x-user-key"),
        ("wrong", "sandbox-user-key", "unknown x-api-key"),
        ("sandbox-api-key", "wrong", "unknown x-user-key"),
    ],
)
def test_missing_or_unknown_keys_are_401(
    owner: Api, api_key: str | None, user_key: str | None, fragment: str
) -> None:
    r = owner.get("/api/v1/me", headers=_headers(api_key, user_key, str(uuid.uuid4())))
    assert r.status_code == 401
    assert r.json()["errorCode"] == "Unauthorized"
    assert fragment in r.json()["errorMessage"]


@pytest.mark.parametrize("request_id", [None, "", "not-a-uuid"])
def test_request_id_must_be_a_uuid(owner: Api, request_id: str | None) -> None:
    r = owner.get("/api/v1/me", headers=_headers(owner.api_key, owner.user_key, request_id))
    assert r.status_code == 400
    assert r.json()["errorCode"] == "ValidationFailed"
    assert "x-request-id" in r.json()["errorMessage"]


def test_request_id_is_echoed(owner: Api) -> None:
    rid = str(uuid.uuid4())
    assert owner.get("/api/v1/me", request_id=rid).headers["x-request-id"] == rid


def test_revocation_takes_effect_on_the_very_next_request(
    owner: Api, agent_for: Callable[[str], Api]
) -> None:
    created = owner.create_portfolio(scopes=ALL_SCOPES)
    token = created["userTokens"][0]
    agent = agent_for(token["userToken"])
    assert agent.get("/api/v1/trading/info/demo/portfolio").status_code == 200
    pid = created["agentPortfolioId"]
    r = owner.delete(f"/api/v1/agent-portfolios/{pid}/user-tokens/{token['userTokenId']}")
    assert r.status_code == 204
    r = agent.get("/api/v1/trading/info/demo/portfolio")
    assert r.status_code == 401
    assert "revoked" in r.json()["errorMessage"]


def test_expiry_takes_effect_on_the_very_next_request(
    server: SandboxServer, owner: Api, agent_for: Callable[[str], Api]
) -> None:
    now = server.sandbox.clock.now()
    expires = (now.replace(microsecond=0)).isoformat().replace("+00:00", "Z")
    created = owner.create_portfolio(scopes=[DEMO_READ])
    pid = created["agentPortfolioId"]
    r = owner.mint(pid, "short-lived", [DEMO_READ],
                   expiresAt=_plus(expires, 60))
    assert r.status_code == 201
    agent = agent_for(r.json()["userToken"])
    assert agent.get("/api/v1/trading/info/demo/portfolio").status_code == 200
    server.sandbox.clock.advance(59)
    assert agent.get("/api/v1/trading/info/demo/portfolio").status_code == 200
    server.sandbox.clock.advance(1)
    r = agent.get("/api/v1/trading/info/demo/portfolio")
    assert r.status_code == 401
    assert "expired" in r.json()["errorMessage"]


def _plus(iso_z: str, seconds: int) -> str:
    from datetime import datetime, timedelta

    at = datetime.fromisoformat(iso_z.replace("Z", "+00:00")) + timedelta(seconds=seconds)
    return at.isoformat().replace("+00:00", "Z")


def test_token_without_expiry_never_expires(
    server: SandboxServer, owner: Api, agent_for: Callable[[str], Api]
) -> None:
    created = owner.create_portfolio(scopes=[DEMO_READ], expiresAt=None)
    agent = agent_for(created["userTokens"][0]["userToken"])
    server.sandbox.clock.advance(10 * 365 * 86400)
    assert agent.get("/api/v1/trading/info/demo/portfolio").status_code == 200


@pytest.mark.parametrize(("method", "template"), MANAGEMENT)
def test_agent_tokens_cannot_manage(
    owner: Api, agent_for: Callable[[str], Api], method: str, template: str
) -> None:
    created = owner.create_portfolio(scopes=ALL_SCOPES)
    token = created["userTokens"][0]
    agent = agent_for(token["userToken"])
    path = template.format(pid=created["agentPortfolioId"], tid=token["userTokenId"])
    body = None if method in ("GET", "DELETE") else {"userTokenName": "x", "scopeNames": [DEMO_READ]}
    r = agent.request(method, path, json=body)
    assert r.status_code == 403
    assert "owner" in r.json()["errorMessage"]
    # ... and nothing changed: the portfolio and its token are still there.
    listed = owner.get("/api/v1/agent-portfolios").json()["agentPortfolios"]
    assert [p["agentPortfolioId"] for p in listed] == [created["agentPortfolioId"]]
    assert [t["userTokenId"] for t in listed[0]["userTokens"]] == [token["userTokenId"]]


def test_whitelist_is_enforced_against_the_client_address(
    owner: Api, agent_for: Callable[[str], Api]
) -> None:
    created = owner.create_portfolio(scopes=[DEMO_READ], ipsWhitelist=["10.1.2.3"])
    pid = created["agentPortfolioId"]
    tid = created["userTokens"][0]["userTokenId"]
    agent = agent_for(created["userTokens"][0]["userToken"])
    r = agent.get("/api/v1/trading/info/demo/portfolio")
    assert r.status_code == 403
    assert "127.0.0.1" in r.json()["errorMessage"]
    r = owner.patch(f"/api/v2/agent-portfolios/{pid}/user-tokens/{tid}",
                    {"ipsWhitelist": ["10.1.2.3", "127.0.0.1"]})
    assert r.status_code == 204
    assert agent.get("/api/v1/trading/info/demo/portfolio").status_code == 200
    # An empty whitelist means any address again.
    r = owner.patch(f"/api/v2/agent-portfolios/{pid}/user-tokens/{tid}", {"ipsWhitelist": []})
    assert r.status_code == 204
    assert agent.get("/api/v1/trading/info/demo/portfolio").status_code == 200


def test_a_deleted_portfolios_tokens_are_refused(
    owner: Api, agent_for: Callable[[str], Api]
) -> None:
    created = owner.create_portfolio(scopes=[DEMO_READ])
    agent = agent_for(created["userTokens"][0]["userToken"])
    assert owner.delete(f"/api/v1/agent-portfolios/{created['agentPortfolioId']}").status_code == 204
    assert agent.get("/api/v1/trading/info/demo/portfolio").status_code == 401
