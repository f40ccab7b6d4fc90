"""Issue 14, items 4, 7 and 8: delegation changes are recorded before and after the call,
an order whose retries ran out is looked up before the client gives up, and only a
sandbox on this machine counts as a sandbox."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

import etoro_nb as enb
from etoro_nb import errors
from etoro_nb._base import RetryPolicy
from etoro_nb.client import AsyncClient, Client, _detect, is_loopback
from etoro_nb.ledger import Ledger
from etoro_nb.sandbox import Faults, SandboxServer


class ExactPolicy(RetryPolicy):
    def jitter(self) -> float:
        return 1.0


def _quiet(client: Client) -> Client:
    client._sleep = lambda s: None  # type: ignore[method-assign]
    return client


class OrdersFail(httpx.HTTPTransport):
    """Forwards to the sandbox, except order placements, which fail before reaching it:
    the connection drops (``status=None``) or a proxy answers ``status``."""

    def __init__(self, status: int | None = None) -> None:
        super().__init__()
        self.status = status
        self.orders = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/orders"):
            self.orders += 1
            if self.status is None:
                raise httpx.ReadError("dropped before the server got it", request=request)
            return httpx.Response(self.status, json={"errorCode": "BadGateway",
                                                     "errorMessage": "upstream"})
        return super().handle_request(request)


# -- item 7: an order whose retries ran out --------------------------------------------------
def test_an_order_placed_before_its_connection_dropped_is_returned(
    make_server: Callable[..., SandboxServer], make_client: Callable[..., Client]
) -> None:
    server = make_server(faults=Faults(drop_after_commit_rate=1.0))  # every answer is lost
    client = _quiet(make_client(server, retry=ExactPolicy()))
    placed = client.trading("demo").open_order(1001, amount=100, request_id=None)
    server.sandbox.set_faults(Faults())
    positions = client.trading("demo").portfolio().positions
    assert len(positions) == 1  # placed once, though every attempt's answer was lost
    info = client.trading("demo").lookup_order(placed.order_id)
    assert info.status.name == "Executed" and placed.reference_id is not None
    assert client.trading("demo").lookup_order(reference_id=placed.reference_id).order_id \
        == placed.order_id


@pytest.mark.parametrize("status", [None, 502])
def test_an_order_that_never_reached_the_server_says_it_was_not_placed(
    server: SandboxServer, make_client: Callable[..., Client], status: int | None
) -> None:
    transport = OrdersFail(status)
    client = _quiet(make_client(server, transport=transport, retry=ExactPolicy()))
    rid = "5d0f4a8e-9a43-4c55-8d0e-3c3a9f1b2e01"
    with pytest.raises(errors.OrderNotPlacedError) as caught:
        client.trading("demo").open_order(1001, amount=100, request_id=rid)
    assert transport.orders == 4  # the first attempt and three retries
    assert "NOT placed" in str(caught.value) and caught.value.request_id == rid
    expected = errors.APIConnectionError if status is None else errors.ServerError
    assert isinstance(caught.value.failure, expected)
    assert client.trading("demo").portfolio().positions == ()


def test_an_order_whose_lookup_fails_too_has_an_unknown_outcome(
    make_server: Callable[..., SandboxServer], make_client: Callable[..., Client]
) -> None:
    server = make_server(faults=Faults(fail_rate=1.0))  # every request, the lookup too: 503
    client = _quiet(make_client(server, retry=ExactPolicy()))
    with pytest.raises(errors.OrderOutcomeUnknownError) as caught:
        client.trading("demo").open_order(1001, amount=100)
    rid = caught.value.request_id
    assert "UNKNOWN" in str(caught.value) and f"reference_id={rid!r}" in str(caught.value)
    assert isinstance(caught.value, errors.APIConnectionError)  # as before, more precise
    server.sandbox.set_faults(Faults())
    with pytest.raises(errors.NotFoundError):  # the request id finds it later: here, nothing
        client.trading("demo").lookup_order(reference_id=rid)


def test_a_refused_order_is_not_looked_up(
    server: SandboxServer, make_client: Callable[..., Client], tmp_path: Path
) -> None:
    client = make_client(server, ledger=Ledger(tmp_path / "l.sqlite"))
    with pytest.raises(errors.BadRequestError):
        client.trading("demo").open_order(1001, amount=10**9)  # more than the balance
    assert client.ledger is not None
    operations = enb.frames.requests(client.ledger)["operation_id"].to_list()
    assert operations == ["createDemoOrder"]  # refused: nothing to look up


def test_async_order_placed_before_its_connection_dropped_is_returned(
    make_server: Callable[..., SandboxServer]
) -> None:
    server = make_server(faults=Faults(drop_after_commit_rate=1.0))
    creds = server.credentials

    async def scenario() -> None:
        async with AsyncClient(base_url=creds.base_url, api_key=creds.api_key,
                               user_key=creds.user_key, environment="sandbox",
                               retry=ExactPolicy()) as client:
            async def no_sleep(seconds: float) -> None:
                return None
            client._sleep = no_sleep  # type: ignore[method-assign]
            placed = await client.trading("demo").open_order(1001, amount=100)
            server.sandbox.set_faults(Faults())
            info = await client.trading("demo").lookup_order(placed.order_id)
            assert info.status.name == "Executed"

    asyncio.run(scenario())


# -- item 8: only a sandbox on this machine is a sandbox --------------------------------------
def _answers_sandbox(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every URL answers ``{"environment": "sandbox"}`` to the probe (a MockTransport)."""
    probed: list[str] = []

    def get(url: str, **kw: Any) -> httpx.Response:
        probed.append(url)
        mock = httpx.MockTransport(lambda r: httpx.Response(200, json={"environment": "sandbox"}))
        with httpx.Client(transport=mock) as http:
            return http.get(url)

    monkeypatch.setattr(httpx, "get", get)
    return probed


def test_a_remote_url_answering_sandbox_is_live(monkeypatch: pytest.MonkeyPatch) -> None:
    probed = _answers_sandbox(monkeypatch)
    for url in ("http://sandbox.example", "https://api.etoro.com", "http://127.0.0.1.example",
                "http://10.0.0.7:8765", "http://[2001:db8::1]:8765"):
        assert _detect(url) == "live", url
    assert probed == []  # and it is not even asked
    with enb.connect("app", "user", base_url="http://sandbox.example") as client:
        assert client.environment == "live" and not client.allow_real
        with pytest.raises(errors.RealMoneyNotAllowedError):
            client.trading("real").open_order(1001, amount=100)


def test_a_loopback_url_answering_sandbox_is_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    probed = _answers_sandbox(monkeypatch)
    for url in ("http://127.0.0.1:8765", "http://127.3.4.5:1", "http://localhost:8765",
                "http://LOCALHOST:1", "http://[::1]:8765", "http://[::ffff:127.0.0.1]:1"):
        assert is_loopback(url), url
        assert _detect(url) == "sandbox", url
    assert len(probed) == 6


def test_a_real_loopback_sandbox_is_still_detected(server: SandboxServer) -> None:
    creds = server.credentials
    with enb.connect(creds.api_key, creds.user_key, base_url=creds.base_url) as client:
        assert client.environment == "sandbox" and client.allow_real


def test_a_client_cannot_be_told_a_remote_url_is_a_sandbox() -> None:
    with pytest.raises(errors.ConfigurationError, match="loopback"):
        Client(base_url="https://api.etoro.com", api_key="a", user_key="b",
               environment="sandbox")


def _unused(x: object) -> str:  # keeps json imported for the lifecycle tests below
    return json.dumps(x)
