"""The rolling quota: headers on every answer, 429 with Retry-After, per key and kind."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from etoro_nb.sandbox import SandboxServer
from tests.helpers import ALL_SCOPES, Api, order_body


def test_headers_on_every_response(owner: Api) -> None:
    answers = [
        owner.get("/api/v1/me"),
        owner.get("/api/v1/agent-portfolios/x"),  # no such operation
        owner.post("/api/v2/agent-portfolios", {"name": "x"}),
        owner.get("/api/v1/me", headers={"x-api-key": "nope", "x-user-key": "nope",
                                         "x-request-id": str(uuid.uuid4())}),
    ]
    for r in answers:
        assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= set(r.headers)
    me = answers[0]
    assert me.headers["x-ratelimit-limit"] == "60"
    assert me.headers["x-ratelimit-remaining"] == "59"
    assert answers[2].headers["x-ratelimit-limit"] == "20"


def test_429_with_retry_after_then_allowed_again_after_the_window(
    make_server: Callable[..., SandboxServer]
) -> None:
    server = make_server(read_limit=3, limit_window=60)
    owner = Api(server)
    remaining = [owner.get("/api/v1/me").headers["x-ratelimit-remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    refused = owner.get("/api/v1/me")
    assert refused.status_code == 429
    assert refused.json() == {"errorCode": "TooManyRequests",
                              "errorMessage": refused.json()["errorMessage"]}
    assert refused.headers["retry-after"] == "60"
    reset = int(refused.headers["x-ratelimit-reset"])
    assert reset == int(server.sandbox.clock.now().timestamp()) + 60
    server.sandbox.clock.advance(59)
    assert owner.get("/api/v1/me").status_code == 429
    assert owner.get("/api/v1/me").headers["retry-after"] == "1"
    server.sandbox.clock.advance(1)
    assert owner.get("/api/v1/me").status_code == 200
    owner.close()


def test_reads_and_writes_are_counted_apart(make_server: Callable[..., SandboxServer]) -> None:
    server = make_server(read_limit=2, write_limit=1)
    owner = Api(server)
    assert owner.post("/api/v2/trading/execution/demo/orders", order_body()).status_code == 200
    assert owner.post("/api/v2/trading/execution/demo/orders", order_body()).status_code == 429
    assert owner.get("/api/v1/me").status_code == 200
    assert owner.get("/api/v1/me").status_code == 200
    assert owner.get("/api/v1/me").status_code == 429
    owner.close()


def test_each_user_key_has_its_own_quota(make_server: Callable[..., SandboxServer]) -> None:
    server = make_server(read_limit=2)
    owner = Api(server)
    created = owner.create_portfolio(scopes=ALL_SCOPES)
    agent = Api(server, user_key=created["userTokens"][0]["userToken"])
    assert [owner.get("/api/v1/me").status_code for _ in range(3)] == [200, 200, 429]
    assert [agent.get("/api/v1/me").status_code for _ in range(3)] == [200, 200, 429]
    owner.close()
    agent.close()


def test_refused_requests_do_not_use_up_the_quota(make_server: Callable[..., SandboxServer]) -> None:
    server = make_server(read_limit=2)
    owner = Api(server)
    for _ in range(5):
        assert owner.get("/api/v1/me").status_code in (200, 429)
    server.sandbox.clock.advance(60)
    assert owner.get("/api/v1/me").status_code == 200
    owner.close()
