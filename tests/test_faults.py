"""Fault switches: injected 503s, drops after commit, forced 207 and latency."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from etoro_nb.sandbox import Faults, SandboxServer
from tests.helpers import DEMO_READ, Api

BODY = {"agentPortfolioName": "agent01", "investmentAmountInUsd": 1000,
        "userTokenName": "bot", "scopeNames": [DEMO_READ]}


def test_fail_rate_answers_503_before_any_effect(make_server: Callable[..., SandboxServer]) -> None:
    server = make_server(faults=Faults(fail_rate=1.0))
    owner = Api(server)
    r = owner.post("/api/v2/agent-portfolios", BODY)
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json()["errorCode"] == "ServiceUnavailable"
    server.sandbox.set_faults(Faults())
    assert owner.get("/api/v1/agent-portfolios").json()["agentPortfolios"] == []
    owner.close()


def test_drop_after_commit_takes_effect_then_breaks_the_connection(
    make_server: Callable[..., SandboxServer]
) -> None:
    server = make_server(faults=Faults(drop_after_commit_rate=1.0))
    owner = Api(server)
    with pytest.raises(httpx.RemoteProtocolError):
        owner.post("/api/v2/agent-portfolios", BODY)
    # Reads are never dropped, and the create did happen.
    listed = owner.get("/api/v1/agent-portfolios").json()["agentPortfolios"]
    assert [p["agentPortfolioName"] for p in listed] == ["agent01"]
    owner.close()


def test_dropped_order_is_recovered_by_retrying_with_the_same_request_id(
    make_server: Callable[..., SandboxServer]
) -> None:
    server = make_server(faults=Faults(drop_after_commit_rate=1.0))
    owner = Api(server)
    rid = str(uuid.uuid4())
    body = {"action": "open", "transaction": "buy", "instrumentId": 1001, "amount": 100}
    with pytest.raises(httpx.RemoteProtocolError):
        owner.post("/api/v2/trading/execution/demo/orders", body, request_id=rid)
    server.sandbox.set_faults(Faults())
    retried = owner.post("/api/v2/trading/execution/demo/orders", body, request_id=rid)
    assert retried.status_code == 200 and retried.json()["referenceId"] == rid
    positions = owner.get("/api/v1/trading/info/demo/portfolio").json()["clientPortfolio"]
    assert len(positions["positions"]) == 1
    owner.close()


def test_partial_create_is_207_with_the_portfolio_and_no_token(
    make_server: Callable[..., SandboxServer]
) -> None:
    server = make_server(faults=Faults(partial_create_rate=1.0))
    owner = Api(server)
    r = owner.post("/api/v2/agent-portfolios", BODY)
    assert r.status_code == 207
    body = r.json()
    assert body["userTokenCreated"] is False and body["agentPortfolioName"] == "agent01"
    listed = owner.get("/api/v1/agent-portfolios").json()["agentPortfolios"]
    assert listed[0]["agentPortfolioId"] == body["agentPortfolioId"]
    assert listed[0]["userTokens"] == []
    # The owner can mint the missing token afterwards.
    assert owner.mint(body["agentPortfolioId"], "bot", [DEMO_READ]).status_code == 201
    owner.close()


def test_fault_switches_over_http(make_server: Callable[..., SandboxServer]) -> None:
    server = make_server()
    owner = Api(server)
    r = owner.http.put("/_sandbox/faults", json={"failRate": 1.0, "latencyMs": 5},
                       headers=owner.headers())
    assert r.status_code == 200 and r.json()["failRate"] == 1.0
    assert owner.get("/api/v1/me").status_code == 503
    r = owner.http.put("/_sandbox/faults", json={"failRate": 2}, headers=owner.headers())
    assert r.status_code == 400 and "fail_rate" in r.json()["errorMessage"]
    r = owner.http.put("/_sandbox/faults", json={"nope": 1}, headers=owner.headers())
    assert r.status_code == 400 and "nope" in r.json()["errorMessage"]
    assert owner.http.put("/_sandbox/faults", json={"failRate": 0}).status_code == 401
    owner.http.put("/_sandbox/faults", json={"failRate": 0, "latencyMs": 0},
                   headers=owner.headers())
    assert owner.get("/api/v1/me").status_code == 200
    owner.close()


def test_clock_over_http(make_server: Callable[..., SandboxServer]) -> None:
    server = make_server()
    owner = Api(server)
    before = owner.http.get("/_sandbox/clock", headers=owner.headers()).json()
    assert before == {"now": "2026-03-02T14:30:00.000Z", "simulated": True}
    after = owner.http.post("/_sandbox/clock", json={"seconds": 90},
                            headers=owner.headers()).json()
    assert after["now"] == "2026-03-02T14:31:30.000Z"
    r = owner.http.post("/_sandbox/clock", json={"seconds": -1}, headers=owner.headers())
    assert r.status_code == 400
    owner.close()


def test_latency_delays_every_answer(make_server: Callable[..., SandboxServer]) -> None:
    server = make_server(faults=Faults(latency_ms=50))
    owner = Api(server)
    for _ in range(3):
        started = time.perf_counter()
        assert owner.get("/api/v1/me").status_code == 200
        # A lower bound only: the injected delay can make an answer later, never earlier.
        assert time.perf_counter() - started >= 0.05
    owner.close()


def test_faults_are_reproducible_from_the_seed(make_server: Callable[..., SandboxServer]) -> None:
    outcomes = []
    for _ in range(2):
        server = make_server(seed=5, faults=Faults(fail_rate=0.5), read_limit=1000)
        owner = Api(server)
        outcomes.append([owner.get("/api/v1/me").status_code for _ in range(20)])
        owner.close()
    assert outcomes[0] == outcomes[1]
    assert set(outcomes[0]) == {200, 503}
