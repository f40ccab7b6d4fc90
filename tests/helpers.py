"""Test helpers: a thin owner/agent HTTP caller for the sandbox, and common bodies."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from etoro_nb.ledger import Ledger
from etoro_nb.sandbox import SandboxServer

REAL_READ = "etoro-public:trade.real:read"
REAL_WRITE = "etoro-public:trade.real:write"
DEMO_READ = "etoro-public:trade.demo:read"
DEMO_WRITE = "etoro-public:trade.demo:write"
ALL_SCOPES = [DEMO_READ, DEMO_WRITE, REAL_READ, REAL_WRITE]


class Api:
    """Calls the sandbox over its socket with one user key; a fresh x-request-id each call
    unless one is given."""

    def __init__(self, server: SandboxServer, user_key: str | None = None,
                 api_key: str | None = None) -> None:
        creds = server.credentials
        self.server = server
        self.api_key = api_key if api_key is not None else creds.api_key
        self.user_key = user_key if user_key is not None else creds.user_key
        self.http = httpx.Client(base_url=server.base_url, timeout=30)

    def headers(self, request_id: str | None = None, **extra: str) -> dict[str, str]:
        return {"x-api-key": self.api_key, "x-user-key": self.user_key,
                "x-request-id": request_id or str(uuid.uuid4()), **extra}

    def request(self, method: str, path: str, *, json: Any = None,
                params: dict[str, Any] | None = None, request_id: str | None = None,
                headers: dict[str, str] | None = None) -> httpx.Response:
        h = self.headers(request_id)
        if headers is not None:
            h = headers
        return self.http.request(method, path, json=json, params=params, headers=h)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        return self.request("POST", path, json=json, **kw)

    def patch(self, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        return self.request("PATCH", path, json=json, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", path, **kw)

    def close(self) -> None:
        self.http.close()

    # -- common flows ---------------------------------------------------------------------
    def create_portfolio(self, name: str = "agent01", investment: float = 2000.0,
                         scopes: list[str] | None = None, token_name: str = "bot",
                         **extra: Any) -> dict[str, Any]:
        body = {"agentPortfolioName": name, "investmentAmountInUsd": investment,
                "userTokenName": token_name,
                "scopeNames": ALL_SCOPES if scopes is None else scopes, **extra}
        r = self.post("/api/v2/agent-portfolios", body)
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    def mint(self, portfolio_id: str, name: str, scopes: list[str],
             **extra: Any) -> httpx.Response:
        return self.post(f"/api/v2/agent-portfolios/{portfolio_id}/user-tokens",
                         {"userTokenName": name, "scopeNames": scopes, **extra})

    def owner_real(self) -> dict[str, Any]:
        r = self.get("/api/v1/trading/info/real/pnl")
        assert r.status_code == 200, r.text
        return r.json()["clientPortfolio"]  # type: ignore[no-any-return]


def order_body(**kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"action": "open", "transaction": "buy", "instrumentId": 1001,
                            "amount": 1000.0, "leverage": 1}
    body.update(kw)
    return {k: v for k, v in body.items() if v is not None}


def append_owner_usage(ledger: Ledger, request_id: str, **extra: object) -> int:
    """Append one owner's intent row for ``GET /api/v1/me`` straight to a ledger."""
    return ledger.append_usage(phase="intent", request_id=request_id, attempt=1,
                               principal="owner", environment="sandbox", method="GET",
                               route="/api/v1/me", operation_id="getAuthenticatedUserProfile",
                               **extra)
