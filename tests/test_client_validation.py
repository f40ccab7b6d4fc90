"""Local validation: bad input is refused before anything is sent, naming field and rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from etoro_nb import errors
from etoro_nb.client import EtoroClient
from etoro_nb.sandbox import SandboxServer
from tests.helpers import DEMO_READ


def _no_network(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"nothing should be sent, but {request.method} {request.url} was")


@pytest.fixture
def offline() -> EtoroClient:
    return EtoroClient(base_url="http://never", api_key="a", user_key="b", environment="live",
                  transport=httpx.MockTransport(_no_network))


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"name": "short"}, "name"),
    ({"name": "elevenchars"}, "name"),
    ({"investment_usd": 0}, "investment_usd"),
    ({"investment_usd": -5}, "investment_usd"),
    ({"investment_usd": float("nan")}, "investment_usd"),
    ({"ips_whitelist": ["10.0.0.300"]}, "ips_whitelist"),
    ({"ips_whitelist": ["::1"]}, "ips_whitelist"),
    ({"token_name": " "}, "token_name"),
])
def test_create_is_checked_before_sending(offline: EtoroClient, kwargs: dict[str, Any],
                                          field: str) -> None:
    args: dict[str, Any] = {"name": "agent01", "investment_usd": 500, "scopes": [DEMO_READ]}
    args.update(kwargs)
    with pytest.raises(errors.InvalidInputError) as caught:
        offline.agent_portfolios.create(**args)
    assert caught.value.field == field and field in str(caught.value)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"amount": 10, "units": 1}, "amount/units"),
    ({}, "amount/units"),
    ({"amount": -1}, "amount"),
    ({"units": 0}, "units"),
    ({"amount": 10, "leverage": 0}, "leverage"),
    ({"amount": 10, "side": "hold"}, "side"),
    ({"amount": 10, "stop_loss": -2}, "stop_loss"),
])
def test_orders_are_checked_before_sending(offline: EtoroClient, kwargs: dict[str, Any],
                                           field: str) -> None:
    with pytest.raises(errors.InvalidInputError) as caught:
        offline.trading("demo").open_order(1001, **kwargs)
    assert caught.value.field == field


def test_other_local_checks(offline: EtoroClient) -> None:
    with pytest.raises(errors.InvalidInputError, match="mode"):
        offline.trading("paper")
    with pytest.raises(errors.InvalidInputError, match="exactly one"):
        offline.trading("demo").lookup_order()
    with pytest.raises(errors.InvalidInputError, match="interval"):
        offline.market.candles(1001, "OneYear")
    with pytest.raises(errors.InvalidInputError, match="instrument_ids"):
        offline.market.rates([])
    with pytest.raises(errors.InvalidInputError, match="colour"):
        offline.agent_portfolios.update_token("p", "t", colour="red")


def test_scopes_and_expiry_are_checked_against_the_server(
    server: SandboxServer, client: EtoroClient
) -> None:
    with pytest.raises(errors.InvalidInputError, match=r"trade\.moon:read"):
        client.agent_portfolios.create("agent01", 500, scopes=["etoro-public:trade.moon:read"])
    past = server.sandbox.clock.now() - timedelta(seconds=1)
    with pytest.raises(errors.InvalidInputError, match="expires_at"):
        client.agent_portfolios.create("agent01", 500, scopes=[DEMO_READ], expires_at=past)
    # The sandbox's clock (March 2026) is the reference, not this machine's.
    ahead = server.sandbox.clock.now() + timedelta(minutes=5)
    assert ahead < datetime.now(UTC)
    created = client.agent_portfolios.create("agent01", 500, scopes=[DEMO_READ],
                                             expires_at=ahead)
    assert created.token.expires_at == ahead
    with pytest.raises(errors.InvalidInputError, match="at least one scope"):
        client.agent_portfolios.mint_token(created.portfolio.id, "x", scopes=[])


def test_server_side_rules_still_surface_as_typed_errors(client: EtoroClient) -> None:
    client.agent_portfolios.create("agent01", 500, scopes=[DEMO_READ])
    with pytest.raises(errors.BadRequestError) as caught:
        client.agent_portfolios.create("AGENT01", 500, scopes=[DEMO_READ])
    assert caught.value.error_code == "ValidationFailed" and "taken" in str(caught.value)
    with pytest.raises(errors.BadRequestError, match="minimum"):
        client.agent_portfolios.create("agent02", 10, scopes=[DEMO_READ])
