"""Review findings kept fixed: reconciliation never touches what existed before, only 2xx
is success, unsent requests are simply resent, and no error carries a key."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from etoro_nb import errors
from etoro_nb._base import parse_retry_after
from etoro_nb.client import EtoroClient
from etoro_nb.sandbox import SandboxServer
from tests.helpers import DEMO_READ, Api


class FailFirstPost(httpx.HTTPTransport):
    """Forwards to the sandbox, but the first POST to ``path`` fails in a chosen way."""

    def __init__(self, path_end: str, failure: type[httpx.TransportError], *,
                 after_sending: bool) -> None:
        super().__init__()
        self.path_end, self.failure, self.after_sending = path_end, failure, after_sending
        self.posts: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith(self.path_end):
            self.posts.append(request)
            if len(self.posts) == 1:
                if self.after_sending:
                    super().handle_request(request).close()
                raise self.failure("injected", request=request)
        return super().handle_request(request)


def _client(server: SandboxServer, transport: httpx.BaseTransport) -> EtoroClient:
    creds = server.credentials
    client = EtoroClient(base_url=creds.base_url, api_key=creds.api_key, user_key=creds.user_key,
                    environment="sandbox", transport=transport)
    client._sleep = lambda s: None  # type: ignore[method-assign]
    return client


def test_ambiguous_mint_never_revokes_a_token_that_existed_before(
    server: SandboxServer, client: EtoroClient
) -> None:
    created = client.agent_portfolios.create("alpha01", 1000, scopes=[DEMO_READ],
                                             token_name="agent")
    transport = FailFirstPost("/user-tokens", httpx.ReadError, after_sending=True)
    flaky = _client(server, transport)
    # The name is taken: the server answers 409 both times; the live token is left alone.
    with pytest.raises(errors.ConflictError):
        flaky.agent_portfolios.mint_token(created.portfolio.id, "agent", scopes=[DEMO_READ])
    assert client.as_agent(created.token).me().username == "alpha01"
    flaky.close()


def test_ambiguous_create_never_adopts_a_portfolio_that_existed_before(
    server: SandboxServer, client: EtoroClient
) -> None:
    earlier = client.agent_portfolios.create("beta0001", 500, scopes=[DEMO_READ])
    transport = FailFirstPost("/api/v2/agent-portfolios", httpx.ReadError, after_sending=True)
    flaky = _client(server, transport)
    with pytest.raises(errors.BadRequestError, match="taken"):
        flaky.agent_portfolios.create("BETA0001", 5000, scopes=[DEMO_READ])
    assert client.as_agent(earlier.token).me().username == "beta0001"
    flaky.close()


def test_a_connection_that_never_opened_is_resent_with_the_same_request_id(
    server: SandboxServer, client: EtoroClient
) -> None:
    transport = FailFirstPost("/api/v2/agent-portfolios", httpx.ConnectError,
                              after_sending=False)
    flaky = _client(server, transport)
    created = flaky.agent_portfolios.create("gamma001", 500, scopes=[DEMO_READ])
    assert len(transport.posts) == 2
    assert len({r.headers["x-request-id"] for r in transport.posts}) == 1
    assert [p.id for p in client.agent_portfolios.list()] == [created.portfolio.id]
    flaky.close()


def test_only_2xx_is_success(owner: Api) -> None:
    client = EtoroClient(base_url="http://mock", api_key="a", user_key="b", environment="live",
                    transport=httpx.MockTransport(lambda r: httpx.Response(
                        307, headers={"location": "/elsewhere"})))
    with pytest.raises(errors.APIError) as caught:
        client.me()
    assert caught.value.status == 307
    # The sandbox answers a trailing slash with 404, not a redirect.
    r = owner.delete("/api/v1/agent-portfolios/")
    assert r.status_code == 404


def test_empty_ids_are_refused_locally(client: EtoroClient) -> None:
    with pytest.raises(errors.InvalidInputError, match="token_id"):
        client.agent_portfolios.revoke_token("p", "")
    with pytest.raises(errors.InvalidInputError, match="portfolio_id"):
        client.agent_portfolios.delete(" ")


def test_keys_are_checked_without_being_echoed() -> None:
    for bad in ("key-with-newline\n", "key with space", "clé"):
        with pytest.raises(errors.ConfigurationError) as caught:
            EtoroClient(base_url="http://x", api_key="ok", user_key=bad, environment="live")
        assert bad.strip() not in str(caught.value)


def test_connection_errors_carry_no_request_and_no_key() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = EtoroClient(base_url="http://x", api_key="app-secret-key", user_key="user-secret-key",
                    environment="live", transport=httpx.MockTransport(refuse))
    client._sleep = lambda s: None  # type: ignore[method-assign]
    with pytest.raises(errors.APIConnectionError) as caught:
        client.me()
    assert caught.value.__context__ is None and caught.value.__cause__ is None


def test_unexpected_answers_never_echo_values(
    make_server: Callable[..., SandboxServer]
) -> None:
    body = {"userTokenId": "t", "userToken": "etnb_topsecretvalue", "userTokenName": 5}
    client = EtoroClient(base_url="http://x", api_key="a", user_key="b", environment="live",
                    transport=httpx.MockTransport(lambda r: _mint_answers(r, body)))
    with pytest.raises(errors.ResponseFormatError) as caught:
        client.agent_portfolios.mint_token("p", "x", scopes=[DEMO_READ])
    assert "topsecret" not in str(caught.value) and caught.value.__context__ is None


def _mint_answers(request: httpx.Request, body: dict[str, object]) -> httpx.Response:
    if request.url.path.endswith("/scopes"):
        return httpx.Response(200, json={"scopes": [{"name": DEMO_READ}]})
    if request.method == "GET":
        return httpx.Response(200, json={"agentPortfolios": [{
            "agentPortfolioId": "p", "agentPortfolioName": "agent01", "agentPortfolioGcid": 1,
            "agentPortfolioVirtualBalance": 1, "mirrorId": 1, "userTokens": []}]})
    assert "expiresAt" not in json.loads(request.content)  # never = absent, not null
    return httpx.Response(201, json=body)


def test_retry_after_must_be_finite() -> None:
    assert parse_retry_after(httpx.Headers({"retry-after": "nan"})) is None
    assert parse_retry_after(httpx.Headers({"retry-after": "inf"})) is None
    assert parse_retry_after(httpx.Headers({"retry-after": "2"})) == 2.0


def test_sandbox_refuses_out_of_range_dates_and_clock_jumps(owner: Api) -> None:
    for when in ("9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"):
        r = owner.post("/api/v2/agent-portfolios", {
            "agentPortfolioName": "agent01", "investmentAmountInUsd": 500,
            "userTokenName": "b", "scopeNames": [DEMO_READ], "expiresAt": when})
        assert r.status_code == 400 and "expiresAt" in r.json()["errorMessage"]
    for seconds in (3e11, 1e20):
        r = owner.http.post("/_sandbox/clock", json={"seconds": seconds},
                            headers=owner.headers())
        assert r.status_code == 400
    assert owner.get("/api/v1/me").status_code == 200
