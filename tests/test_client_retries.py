"""Retries and ambiguous failures: the sandbox's fault switches for the real paths, a mock
transport for the narrow ones. No real waiting: the client's sleep is replaced."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date

import httpx
import pytest

from etoro_nb import errors
from etoro_nb._base import RetryPolicy
from etoro_nb.client import EtoroClient
from etoro_nb.sandbox import Faults, SandboxServer
from tests.helpers import ALL_SCOPES, DEMO_READ


class ExactPolicy(RetryPolicy):
    def jitter(self) -> float:
        return 1.0


def _recording(client: EtoroClient, on_sleep: Callable[[], None] | None = None) -> list[float]:
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if on_sleep is not None:
            on_sleep()

    client._sleep = sleep  # type: ignore[method-assign]
    return slept


def _mock_client(
        handler: Callable[[httpx.Request], httpx.Response]) -> tuple[EtoroClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    client = EtoroClient(base_url="http://mock", api_key="app-key", user_key="owner-key",
                    environment="live", transport=httpx.MockTransport(record),
                    retry=ExactPolicy())
    return client, seen


def _error(status: int, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"errorCode": code, "errorMessage": code},
                          headers=headers or {})


ME = {"gcid": 1, "realCid": 2, "demoCid": 3, "username": "u", "playerLevel": 1, "gender": 0,
      "language": 1, "dateOfBirth": "", "scopes": []}


def test_5xx_is_retried_with_backoff_and_the_same_request_id() -> None:
    answers = iter([_error(503, "x"), _error(502, "x"), _error(500, "x"),
                    httpx.Response(200, json=ME)])
    client, seen = _mock_client(lambda r: next(answers))
    slept = _recording(client)
    assert client.me().username == "u"
    assert len(seen) == 4
    assert len({r.headers["x-request-id"] for r in seen}) == 1
    assert slept == [0.5, 1.0, 2.0]


def test_retries_stop_after_the_limit_with_a_server_error() -> None:
    client, seen = _mock_client(lambda r: _error(503, "ServiceUnavailable"))
    _recording(client)
    with pytest.raises(errors.ServerError) as caught:
        client.me()
    assert len(seen) == 4 and caught.value.attempts == 4
    assert caught.value.request_id == seen[0].headers["x-request-id"]
    assert caught.value.request_id in str(caught.value)


def test_retry_after_is_honoured_up_to_a_cap() -> None:
    answers = iter([_error(429, "TooManyRequests", {"Retry-After": "7"}),
                    _error(429, "TooManyRequests", {"Retry-After": "3600"}),
                    httpx.Response(200, json=ME)])
    client, seen = _mock_client(lambda r: next(answers))
    slept = _recording(client)
    client.me()
    assert slept == [7.0, 60.0] and len(seen) == 3


@pytest.mark.parametrize(("status", "code", "cls"), [
    (400, "ValidationFailed", errors.BadRequestError),
    (401, "Unauthorized", errors.AuthenticationError),
    (403, "InsufficientScope", errors.ScopeError),
    (403, "Forbidden", errors.PermissionDeniedError),
    (404, "NotFound", errors.NotFoundError),
    (409, "UserKeyNameAlreadyExists", errors.ConflictError),
    (429, "MaxUserTokensExceeded", errors.ConflictError),
])
def test_client_errors_are_never_retried(status: int, code: str, cls: type) -> None:
    client, seen = _mock_client(lambda r: _error(status, code))
    slept = _recording(client)
    with pytest.raises(cls) as caught:
        client.me()
    assert len(seen) == 1 and slept == []
    err = caught.value
    assert (err.status, err.error_code, err.error_message) == (status, code, code)
    assert err.request_id == seen[0].headers["x-request-id"]


def test_connection_errors_are_retried_then_reported() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client, seen = _mock_client(refuse)
    _recording(client)
    with pytest.raises(errors.APIConnectionError) as caught:
        client.me()
    assert len(seen) == 4 and "ConnectError" in str(caught.value)


def test_caller_sets_the_request_id() -> None:
    client, seen = _mock_client(
        lambda r: httpx.Response(200, json={"token": "t", "orderId": 5, "referenceId": "rid"}))
    rid = "9b6b2c1e-3f0c-4a43-9d2b-4d1d7f2c9b11"
    client.trading("demo").open_order(1001, amount=100, request_id=rid)
    assert seen[0].headers["x-request-id"] == rid
    assert json.loads(seen[0].content)["instrumentId"] == 1001


# -- against the sandbox's fault switches --------------------------------------------------
def test_retried_order_is_placed_exactly_once(
    make_server: Callable[..., SandboxServer], make_client: Callable[..., EtoroClient]
) -> None:
    server = make_server(faults=Faults(drop_after_commit_rate=1.0))
    client = make_client(server, retry=ExactPolicy())
    _recording(client, on_sleep=lambda: server.sandbox.set_faults(Faults()))
    placed = client.trading("demo").open_order(1001, amount=100)
    assert len(client.trading("demo").portfolio().positions) == 1
    assert client.trading("demo").lookup_order(placed.order_id).status.name == "Executed"


def test_create_after_a_dropped_connection_leaves_one_portfolio_and_a_usable_token(
    make_server: Callable[..., SandboxServer], make_client: Callable[..., EtoroClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = make_server(faults=Faults(drop_after_commit_rate=1.0))
    client = make_client(server, retry=ExactPolicy())
    _recording(client, on_sleep=lambda: server.sandbox.set_faults(Faults()))
    created = client.agent_portfolios.create("alpha01", 1000, scopes=ALL_SCOPES, token_name="bot")
    listed = client.agent_portfolios.list()
    assert [p.name for p in listed] == ["alpha01"]
    assert [t.name for t in listed[0].tokens] == ["bot"]
    assert listed[0].tokens[0].id == created.token.id  # the lost first token was replaced
    assert client.as_agent(created.token).me().username == "alpha01"
    assert "had been made" in caplog.text


def test_mint_after_a_dropped_connection_leaves_no_orphan(
    make_server: Callable[..., SandboxServer], make_client: Callable[..., EtoroClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = make_server()
    client = make_client(server, retry=ExactPolicy())
    created = client.agent_portfolios.create("alpha01", 1000, scopes=[DEMO_READ])
    server.sandbox.set_faults(Faults(drop_after_commit_rate=1.0))
    _recording(client, on_sleep=lambda: server.sandbox.set_faults(Faults()))
    token = client.agent_portfolios.mint_token(created.portfolio.id, "second", scopes=[DEMO_READ])
    live = client.agent_portfolios.get(created.portfolio.id).tokens
    assert sorted(t.name for t in live) == ["agent", "second"]
    assert [t.id for t in live if t.name == "second"] == [token.id]
    assert client.as_agent(token).me().scopes == (DEMO_READ,)
    assert "revoked because nobody received its secret" in caplog.text


def test_revoke_and_update_after_a_dropped_connection_succeed(
    make_server: Callable[..., SandboxServer], make_client: Callable[..., EtoroClient]
) -> None:
    server = make_server()
    client = make_client(server, retry=ExactPolicy())
    created = client.agent_portfolios.create("alpha01", 1000, scopes=[DEMO_READ])
    pid, tid = created.portfolio.id, created.token.id
    for action in (lambda: client.agent_portfolios.update_token(pid, tid, scopes=ALL_SCOPES),
                   lambda: client.agent_portfolios.revoke_token(pid, tid),
                   lambda: client.agent_portfolios.delete(pid)):
        server.sandbox.set_faults(Faults(drop_after_commit_rate=1.0))
        _recording(client, on_sleep=lambda: server.sandbox.set_faults(Faults()))
        action()
    assert client.agent_portfolios.list() == []


def test_partial_create_carries_the_portfolio_and_mints_in_one_call(
    make_server: Callable[..., SandboxServer], make_client: Callable[..., EtoroClient]
) -> None:
    server = make_server(faults=Faults(partial_create_rate=1.0))
    client = make_client(server)
    with pytest.raises(errors.PartialCreateError) as caught:
        client.agent_portfolios.create("alpha01", 1000, scopes=[DEMO_READ], token_name="bot")
    assert caught.value.portfolio.name == "alpha01" and caught.value.status == 207
    token = caught.value.mint_token()
    assert token.name == "bot" and token.scopes == (DEMO_READ,)
    assert client.as_agent(token).trading("demo").history(date(2026, 1, 1)) == []


def test_injected_503s_are_retried_transparently(
    make_server: Callable[..., SandboxServer], make_client: Callable[..., EtoroClient]
) -> None:
    server = make_server(faults=Faults(fail_rate=1.0))
    client = make_client(server, retry=ExactPolicy())
    slept = _recording(client, on_sleep=lambda: server.sandbox.set_faults(Faults()))
    created = client.agent_portfolios.create("alpha01", 1000, scopes=[DEMO_READ])
    assert slept == [1.0]  # the sandbox's Retry-After: 1
    assert [p.id for p in client.agent_portfolios.list()] == [created.portfolio.id]
