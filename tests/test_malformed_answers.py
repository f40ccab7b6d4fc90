"""Every typed method fed a malformed answer raises ``ResponseFormatError`` naming the
request id and the operation, and never a value of the body (an answer may hold a secret).

A narrow failure-path test, so the answers come from an ``httpx.MockTransport``: each
operation a method sends answers well, except the one under test, which answers with a
body of the wrong type, one missing its fields, or one whose fields have the wrong types.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from etoro_nb import errors
from etoro_nb.agent import RiskPolicy
from etoro_nb.client import EtoroClient
from etoro_nb.ledger import Ledger
from etoro_nb.operations import SANDBOX_STATUS, OperationInfo, catalogue
from tests.helpers import DEMO_READ

SECRET = "etnb_SECRETVALUE"
T0 = "2026-01-01T00:00:00Z"
TOKEN = {"userTokenId": "t1", "userTokenName": "bot", "scopeNames": [DEMO_READ],
         "createdAt": T0, "expiresAt": "2026-02-01T00:00:00Z"}
PORTFOLIO = {"agentPortfolioId": "p", "agentPortfolioName": "agent01", "agentPortfolioGcid": 1,
             "agentPortfolioVirtualBalance": 1000.0, "mirrorId": 1, "userTokens": [TOKEN]}
MINTED = {"userTokenId": "t3", "userTokenName": "reader", "userToken": SECRET,
          "scopeNames": [DEMO_READ]}
BOOK = {"clientPortfolio": {"credit": 1.0, "positions": [
    {"positionID": 5, "instrumentID": 1001, "isBuy": True, "openRate": 1.0}]}}
TRADE = {"positionId": 1, "instrumentId": 1001, "isBuy": True, "openRate": 1.0,
         "closeRate": 2.0, "openTimestamp": T0, "closeTimestamp": T0, "netProfit": 1.0}

GOOD: dict[str, Any] = {
    "sandboxStatus": {"environment": "sandbox", "now": T0},
    "getAgentPortfolioAllowedScopesV2": {"scopes": [{"name": DEMO_READ}]},
    "getAgentPortfolios": {"agentPortfolios": [PORTFOLIO]},
    "createAgentPortfolioV2": {
        "agentPortfolioId": "p2", "agentPortfolioName": "alpha01", "agentPortfolioGcid": 2,
        "agentPortfolioVirtualBalance": 1000.0, "mirrorId": 2,
        "userTokens": [{**MINTED, "userTokenName": "agent", "scopeNames": None,
                        "scopes": [{"name": DEMO_READ}]}]},
    "createAgentPortfolioUserTokenV2": MINTED,
    "getAuthenticatedUserProfile": {"gcid": 1, "realCid": 2, "demoCid": 3, "username": "u"},
    "searchForInstruments": {"items": [{"instrumentId": 1001, "symbol": "AAPL"}]},
    "retrieveCurrentMarketRatesPricingInformation": {
        "rates": [{"instrumentID": 1001, "bid": 1.0, "ask": 2.0}]},
    "getCandles": {"candles": [{"candles": [{"instrumentID": 1001, "fromDate": T0, "open": 1.0,
                                             "high": 1.0, "low": 1.0, "close": 1.0}]}]},
}
for _mode, _ops in {"demo": ("getPortfolioDemo", "getDemoAccountPnl", "listTradingHistory",
                             "createDemoOrder", "closePositionByMarketRateDemo",
                             "lookupDemoOrder"),
                    "real": ("getPortfolio", "getRealAccountPnl", "listTradingHistory2",
                             "createRealOrder", "closePositionByMarketRate",
                             "lookupRealOrder")}.items():
    GOOD.update(zip(_ops, (BOOK, BOOK, [TRADE], {"orderId": 7, "referenceId": "r"},
                           {"orderForClose": {"orderID": 8, "positionID": 5, "unitsToDeduct": 1}},
                           {"orderId": 7, "status": {"id": 1, "name": "Executed"},
                            "positionExecutions": [{"positionId": 5}]}), strict=True))


def wrong_types(good: Any) -> Any:
    """``good`` with every value replaced by an object holding the secret."""
    if isinstance(good, dict):
        return {k: wrong_types(v) for k, v in good.items()}
    if isinstance(good, list):
        return [wrong_types(v) for v in good]
    return {"v": SECRET}


def malformed(operation_id: str) -> Iterator[tuple[str, int, Any]]:
    """(label, status, body) of each malformed answer to ``operation_id``."""
    good = GOOD[operation_id]
    yield "a string, not the answer's type", 200, SECRET
    yield "fields missing", 200, ({} if isinstance(good, dict) else [{}])
    # search answers instruments as the server has them (any fields): only the list is typed
    yield "fields of the wrong types", 200, ({"items": [SECRET]}
                                              if operation_id == "searchForInstruments"
                                              else wrong_types(good))
    if operation_id == "createAgentPortfolioV2":  # the partial create reads its answer too
        yield "a 207 with fields missing", 207, {"agentPortfolioName": SECRET}


Method = Callable[[EtoroClient], object]
P = "p"
METHODS: dict[str, tuple[Method, tuple[str, ...]]] = {
    # method: (the call, every operation whose answer it reads)
    "agent_portfolios.list": (lambda c: c.agent_portfolios.list(), ("getAgentPortfolios",)),
    "agent_portfolios.get": (lambda c: c.agent_portfolios.get(P), ("getAgentPortfolios",)),
    "agent_portfolios.allowed_scopes": (lambda c: c.agent_portfolios.allowed_scopes(),
                                        ("getAgentPortfolioAllowedScopesV2",)),
    "agent_portfolios.create": (
        lambda c: c.agent_portfolios.create("alpha01", 1000, scopes=[DEMO_READ]),
        ("getAgentPortfolioAllowedScopesV2", "sandboxStatus", "getAgentPortfolios",
         "createAgentPortfolioV2")),
    "agent_portfolios.mint_token": (
        lambda c: c.agent_portfolios.mint_token(P, "reader", scopes=[DEMO_READ]),
        ("getAgentPortfolioAllowedScopesV2", "sandboxStatus", "getAgentPortfolios",
         "createAgentPortfolioUserTokenV2")),
    "agent_portfolios.update_token": (
        lambda c: c.agent_portfolios.update_token(P, "t1", scopes=[DEMO_READ],
                                                  expires_at=timedelta(days=1)),
        ("getAgentPortfolioAllowedScopesV2", "sandboxStatus")),
    "agent_portfolios.rotate_token": (
        lambda c: c.agent_portfolios.rotate_token(P, "t1"),
        ("getAgentPortfolios", "sandboxStatus", "getAgentPortfolioAllowedScopesV2",
         "createAgentPortfolioUserTokenV2")),
    "me": (lambda c: c.me(), ("getAuthenticatedUserProfile",)),
    "now": (lambda c: c.now(), ("sandboxStatus",)),
    "market.search": (lambda c: c.market.search("apple"), ("searchForInstruments",)),
    "market.instrument": (lambda c: c.market.instrument("AAPL"), ("searchForInstruments",)),
    "market.rates": (lambda c: c.market.rates([1001]),
                     ("retrieveCurrentMarketRatesPricingInformation",)),
    "market.candles": (lambda c: c.market.candles(1001, "OneHour", 5), ("getCandles",)),
    "call(mint)": (lambda c: c.call("createAgentPortfolioUserTokenV2",
                                    path_params={"agentPortfolioId": P},
                                    body={"userTokenName": "x", "scopeNames": [DEMO_READ]}),
                   ("createAgentPortfolioUserTokenV2",)),
    "call(create)": (lambda c: c.call("createAgentPortfolioV2", body={
        "agentPortfolioName": "alpha01", "investmentAmountInUsd": 1000,
        "userTokenName": "x", "scopeNames": [DEMO_READ]}), ("createAgentPortfolioV2",)),
}


def _trading(mode: str, ops: tuple[str, ...]) -> dict[str, tuple[Method, tuple[str, ...]]]:
    portfolio, pnl, history, open_, close, lookup = ops
    return {
        f"trading({mode}).portfolio": (lambda c: c.trading(mode).portfolio(), (portfolio,)),
        f"trading({mode}).pnl": (lambda c: c.trading(mode).pnl(), (pnl,)),
        f"trading({mode}).history": (lambda c: c.trading(mode).history(date(2026, 1, 1)),
                                     (history,)),
        f"trading({mode}).open_order": (lambda c: c.trading(mode).open_order(1001, amount=100),
                                        (open_,)),
        f"trading({mode}).close_position": (lambda c: c.trading(mode).close_position(5, 1001),
                                            (close,)),
        f"trading({mode}).lookup_order": (lambda c: c.trading(mode).lookup_order(7), (lookup,)),
    }


METHODS.update(_trading("demo", ("getPortfolioDemo", "getDemoAccountPnl", "listTradingHistory",
                                 "createDemoOrder", "closePositionByMarketRateDemo",
                                 "lookupDemoOrder")))
METHODS.update(_trading("real", ("getPortfolio", "getRealAccountPnl", "listTradingHistory2",
                                 "createRealOrder", "closePositionByMarketRate",
                                 "lookupRealOrder")))
# Methods that read no answer body (it is not used): they accept any.
BODY_UNREAD: dict[str, tuple[Method, str]] = {
    "agent_portfolios.delete": (lambda c: c.agent_portfolios.delete(P), "deleteAgentPortfolio"),
    "agent_portfolios.revoke_token": (lambda c: c.agent_portfolios.revoke_token(P, "t1"),
                                      "deleteAgentPortfolioUserToken"),
    "agent_portfolios.update_token": (
        lambda c: c.agent_portfolios.update_token(P, "t1", ips_whitelist=[]),
        "updateAgentPortfolioUserTokenV2"),
    "trading(demo).cancel_order": (lambda c: c.trading("demo").cancel_order(7), "cancelDemoOrder"),
    "trading(real).cancel_order": (lambda c: c.trading("real").cancel_order(7), "cancelRealOrder"),
}
# The owner's risk controls keep their state in the ledger: they run on a client with one.
LEDGER_METHODS: dict[str, tuple[Method, tuple[str, ...]]] = {
    "agent_portfolios.set_policy": (
        lambda c: c.agent_portfolios.set_policy(P, RiskPolicy(max_order_amount_usd=100)),
        ("getAgentPortfolios",)),
    "agent_portfolios.stop_agent": (lambda c: c.agent_portfolios.stop_agent(P),
                                    ("getAgentPortfolios",)),
}
# Methods that send no request (they read or write the ledger only): no answer to read.
NO_REQUEST = {"agent_portfolios.policy", "agent_portfolios.controls", "agent_portfolios.pause",
              "agent_portfolios.resume"}
OPERATIONS: list[OperationInfo] = [*catalogue().values(), SANDBOX_STATUS]


def operation_of(request: httpx.Request) -> str:
    found = [o.operation_id for o in OPERATIONS
             if o.method == request.method and o.matches(request.url.path)]
    assert len(found) == 1, (request.method, request.url.path, found)
    return found[0]


class Server:
    """Answers each operation well, but ``target`` with ``(status, body)``."""

    def __init__(self, target: str, status: int, body: Any) -> None:
        self.target, self.status, self.body = target, status, body
        self.served: list[str] = []  # request ids of the malformed answers

    def __call__(self, request: httpx.Request) -> httpx.Response:
        op = operation_of(request)
        if op == self.target:
            self.served.append(request.headers["x-request-id"])
            return httpx.Response(self.status, json=self.body)
        return httpx.Response(200, json=GOOD.get(op, {}))

    def client(self, ledger: Ledger | None = None) -> EtoroClient:
        return EtoroClient(base_url="http://127.0.0.1:9", api_key="a", user_key="b",
                           environment="sandbox", allow_real=True, ledger=ledger,
                           transport=httpx.MockTransport(self))


def _cases(methods: dict[str, tuple[Method, tuple[str, ...]]]) -> list[Any]:
    return [pytest.param(call, op, status, body, id=f"{name}-{op}-{label}")
            for name, (call, ops) in methods.items() for op in ops
            for label, status, body in malformed(op)]


CASES = _cases(METHODS)
LEDGER_CASES = _cases(LEDGER_METHODS)


def _named_without_the_body(server: Server, error: errors.ResponseFormatError,
                            operation: str) -> None:
    assert server.served and error.request_id == server.served[-1]
    assert error.operation == operation
    assert f"[operation {operation}, request id {error.request_id}]" in str(error)
    assert SECRET not in str(error) and SECRET not in repr(error.args)
    assert error.__context__ is None and error.__cause__ is None


@pytest.mark.parametrize(("call", "operation", "status", "body"), CASES)
def test_a_malformed_answer_is_a_response_format_error(call: Method, operation: str,
                                                       status: int, body: Any) -> None:
    server = Server(operation, status, body)
    with server.client() as client, pytest.raises(errors.ResponseFormatError) as caught:
        call(client)
    _named_without_the_body(server, caught.value, operation)


@pytest.mark.parametrize(("call", "operation", "status", "body"), LEDGER_CASES)
def test_an_owner_control_fed_a_malformed_answer_is_a_response_format_error(
    tmp_path: Path, call: Method, operation: str, status: int, body: Any
) -> None:
    server = Server(operation, status, body)
    with (Ledger(tmp_path / "l.sqlite") as ledger, server.client(ledger) as client,
          pytest.raises(errors.ResponseFormatError) as caught):
        call(client)
    _named_without_the_body(server, caught.value, operation)


def test_every_well_formed_answer_is_read(tmp_path: Path) -> None:
    """The good answers above are good: the malformed ones are what fails."""
    for name, (call, ops) in METHODS.items():
        with Server("-", 200, None).client() as client:
            call(client)
        assert ops, name
    with Ledger(tmp_path / "l.sqlite") as ledger:
        for name, (call, ops) in LEDGER_METHODS.items():
            with Server("-", 200, None).client(ledger) as client:
                call(client)
            assert ops, name


@pytest.mark.parametrize("name", sorted(BODY_UNREAD))
def test_methods_that_read_no_answer_body_accept_any(name: str) -> None:
    call, operation = BODY_UNREAD[name]
    server = Server(operation, 200, SECRET)
    with server.client() as client:
        assert call(client) is None
    assert server.served


def test_every_typed_method_is_covered() -> None:
    """Each public method of the resources and the client is in one table above."""
    names = set(METHODS) | set(BODY_UNREAD) | set(LEDGER_METHODS) | NO_REQUEST
    with Server("-", 200, None).client() as client:
        for resource in ("agent_portfolios", "market"):
            for attr in dir(getattr(client, resource)):
                if not attr.startswith("_"):
                    assert f"{resource}.{attr}" in names, attr
        for mode in ("demo", "real"):
            for attr in dir(client.trading(mode)):
                if not attr.startswith("_") and callable(getattr(client.trading(mode), attr)):
                    assert f"trading({mode}).{attr}" in names, attr
