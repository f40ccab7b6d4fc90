"""User tokens: mint (secret once), update, revoke, and the rules on each field."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from etoro_nb.sandbox import SandboxServer
from tests.helpers import DEMO_READ, DEMO_WRITE, REAL_READ, Api


@pytest.fixture
def pid(owner: Api) -> str:
    return str(owner.create_portfolio(scopes=[DEMO_READ])["agentPortfolioId"])


def _tokens(owner: Api) -> list[dict[str, object]]:
    return owner.get("/api/v1/agent-portfolios").json()["agentPortfolios"][0]["userTokens"]


def test_mint_returns_the_secret_once_and_stores_only_a_hash(
    make_server: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    db = tmp_path / "state.sqlite"
    server = make_server(db=str(db))
    owner = Api(server)
    pid = owner.create_portfolio(scopes=[DEMO_READ])["agentPortfolioId"]
    r = owner.mint(pid, "agent-2", [DEMO_READ, DEMO_WRITE])
    assert r.status_code == 201
    minted = r.json()
    secret = minted["userToken"]
    assert minted["scopeNames"] == [DEMO_READ, DEMO_WRITE]
    assert minted["expiresAt"] is None
    assert secret not in owner.get("/api/v1/agent-portfolios").text
    server.stop()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert secret.encode() not in raw
    with sqlite3.connect(db) as conn:
        hashes = [row[0] for row in conn.execute("SELECT secret_hash FROM tokens")]
    assert len(hashes) == 2 and all(len(h) == 64 for h in hashes)
    owner.close()


def test_duplicate_name_is_409(owner: Api, pid: str) -> None:
    r = owner.mint(pid, "bot", [DEMO_READ])
    assert r.status_code == 409
    assert r.json()["errorCode"] == "UserKeyNameAlreadyExists"


def test_revoked_name_can_be_reused(owner: Api, pid: str) -> None:
    tid = _tokens(owner)[0]["userTokenId"]
    assert owner.delete(f"/api/v1/agent-portfolios/{pid}/user-tokens/{tid}").status_code == 204
    assert owner.mint(pid, "bot", [DEMO_READ]).status_code == 201


def test_cap_per_portfolio_is_429(make_server: Callable[..., SandboxServer]) -> None:
    owner = Api(make_server(max_tokens_per_portfolio=3))
    pid = owner.create_portfolio(scopes=[DEMO_READ])["agentPortfolioId"]
    assert owner.mint(pid, "two", [DEMO_READ]).status_code == 201
    assert owner.mint(pid, "three", [DEMO_READ]).status_code == 201
    r = owner.mint(pid, "four", [DEMO_READ])
    assert r.status_code == 429
    assert r.json()["errorCode"] == "MaxUserTokensExceeded"
    assert len(_tokens(owner)) == 3
    owner.close()


def test_default_cap_is_ten(owner: Api, pid: str) -> None:
    codes = [owner.mint(pid, f"t{i}", [DEMO_READ]).status_code for i in range(10)]
    assert codes == [201] * 9 + [429]


@pytest.mark.parametrize("ip", ["256.1.1.1", "10.0.0", "::1", "10.0.0.0/8", "localhost"])
def test_invalid_ipv4_is_refused(owner: Api, pid: str, ip: str) -> None:
    r = owner.mint(pid, "ipbot", [DEMO_READ], ipsWhitelist=["10.0.0.1", ip])
    assert r.status_code == 400
    assert r.json()["errorCode"] == "IpsWhitelistInvalidIp"
    assert ip in r.json()["errorMessage"]


def test_unknown_scope_names_and_ids(owner: Api, pid: str) -> None:
    r = owner.mint(pid, "x", [DEMO_READ, "etoro-public:trade.real:admin"])
    assert r.status_code == 403 and r.json()["errorCode"] == "ScopeNameNotAllowed"
    r = owner.post(f"/api/v1/agent-portfolios/{pid}/user-tokens",
                   {"userTokenName": "x", "scopeIds": [201, 299]})
    assert r.status_code == 400 and r.json()["errorCode"] == "ScopeIdNotAllowed"
    r = owner.post(f"/api/v2/agent-portfolios/{pid}/user-tokens", {"userTokenName": "x"})
    assert r.status_code == 400 and r.json()["errorCode"] == "ScopeIdsRequired"
    r = owner.post(f"/api/v1/agent-portfolios/{pid}/user-tokens", {"userTokenName": "x"})
    assert r.status_code == 400 and r.json()["errorCode"] == "ScopeIdsRequired"


def test_expiry_must_be_in_the_future(owner: Api, pid: str) -> None:
    r = owner.mint(pid, "old", [DEMO_READ], expiresAt="2020-01-01T00:00:00Z")
    assert r.status_code == 400 and "expiresAt" in r.json()["errorMessage"]
    r = owner.mint(pid, "bad", [DEMO_READ], expiresAt="tomorrow")
    assert r.status_code == 400 and "expiresAt" in r.json()["errorMessage"]
    r = owner.mint(pid, "later", [DEMO_READ], expiresAt="2026-04-01T00:00:00Z")
    assert r.status_code == 201 and r.json()["expiresAt"] == "2026-04-01T00:00:00.000Z"


def test_mint_on_unknown_portfolio_is_404(owner: Api) -> None:
    r = owner.mint(str(uuid.uuid4()), "x", [DEMO_READ])
    assert r.status_code == 404 and r.json()["errorCode"] == "NotFound"


def test_empty_patch_is_no_changes_detected(owner: Api, pid: str) -> None:
    tid = _tokens(owner)[0]["userTokenId"]
    for body in ({}, {"scopeNames": [DEMO_READ]}):
        r = owner.patch(f"/api/v2/agent-portfolios/{pid}/user-tokens/{tid}", body)
        assert r.status_code == 400
        assert r.json()["errorCode"] == "NoChangesDetected"


def test_patch_changes_scopes_on_the_next_request(
    owner: Api, pid: str, agent_for: Callable[[str], Api]
) -> None:
    minted = owner.mint(pid, "agent-2", [DEMO_READ]).json()
    agent = agent_for(minted["userToken"])
    assert agent.get("/api/v1/trading/info/portfolio").status_code == 403
    r = owner.patch(f"/api/v2/agent-portfolios/{pid}/user-tokens/{minted['userTokenId']}",
                    {"scopeNames": [REAL_READ]})
    assert r.status_code == 204
    assert agent.get("/api/v1/trading/info/portfolio").status_code == 200
    assert agent.get("/api/v1/trading/info/demo/portfolio").status_code == 403
    listed = next(t for t in _tokens(owner) if t["userTokenId"] == minted["userTokenId"])
    assert listed["scopeNames"] == [REAL_READ] and listed["scopeIds"] == [200]


def test_patch_v1_with_scope_ids_and_expiry_removal(owner: Api, pid: str) -> None:
    minted = owner.mint(pid, "agent-2", [DEMO_READ], expiresAt="2026-04-01T00:00:00Z").json()
    path = f"/api/v1/agent-portfolios/{pid}/user-tokens/{minted['userTokenId']}"
    assert owner.patch(path, {"scopeIds": [201, 203]}).status_code == 204
    assert owner.patch(path, {"expiresAt": None}).status_code == 204
    listed = next(t for t in _tokens(owner) if t["userTokenId"] == minted["userTokenId"])
    assert listed["scopeNames"] == [DEMO_READ, DEMO_WRITE]
    assert "expiresAt" not in listed  # never expires


def test_patch_unknown_token_is_404(owner: Api, pid: str) -> None:
    r = owner.patch(f"/api/v2/agent-portfolios/{pid}/user-tokens/{uuid.uuid4()}",
                    {"scopeNames": [DEMO_READ]})
    assert r.status_code == 404 and r.json()["errorMessage"] == "User token not found"


def test_revoke_twice_is_404(owner: Api, pid: str) -> None:
    tid = _tokens(owner)[0]["userTokenId"]
    path = f"/api/v1/agent-portfolios/{pid}/user-tokens/{tid}"
    assert owner.delete(path).status_code == 204
    assert owner.delete(path).status_code == 404
    assert _tokens(owner) == []
