"""Hardening of the sandbox's HTTP layer (issue 14, items 2, 5 and 6), over real sockets.

- Proxy headers are ignored unless the sandbox is told to trust them, so an
  ``X-Forwarded-For`` can't carry a request through a token's IP whitelist.
- Request fields bind whatever their case, as an ASP.NET service binds them: every
  operation with a body is served the same with its fields in another casing.
- int64 ids up to 9223372036854775807; a 405 lists every method of its path; a body
  that is not JSON by its content type is 415; a body over the limit is 413, answered
  before authentication and before the body has even been sent.
"""

from __future__ import annotations

import json
import re
import socket
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import h11
import pytest

from etoro_nb.sandbox import SandboxServer
from tests.contract import contract
from tests.helpers import ALL_SCOPES, DEMO_READ, DEMO_WRITE, REAL_READ, Api, order_body

INT64_MAX = 9223372036854775807
LIMIT = 1024 * 1024  # the documented default body limit
HANG_GUARD = 20.0  # seconds: only so that a server that never answers fails the test
CREATE = "/api/v2/agent-portfolios"


def _create_body(name: str = "agent01", **extra: Any) -> dict[str, Any]:
    return {"agentPortfolioName": name, "investmentAmountInUsd": 500,
            "userTokenName": "bot", "scopeNames": [DEMO_READ], **extra}


# -- item 2: proxy headers ------------------------------------------------------------------
def _whitelisted_agent(owner: Api, agent_for: Callable[[str], Api]) -> Api:
    made = owner.create_portfolio(ipsWhitelist=["10.1.2.3"])
    return agent_for(made["userTokens"][0]["userToken"])


def test_forwarded_for_does_not_pass_the_whitelist(owner: Api,
                                                   agent_for: Callable[[str], Api]) -> None:
    agent = _whitelisted_agent(owner, agent_for)
    assert agent.get("/api/v1/me").status_code == 403
    for header in ("X-Forwarded-For", "X-Real-IP", "Forwarded"):
        value = "for=10.1.2.3" if header == "Forwarded" else "10.1.2.3"
        r = agent.get("/api/v1/me", headers=agent.headers(**{header: value}))
        assert r.status_code == 403, (header, r.text)
        assert "127.0.0.1" in r.json()["errorMessage"]


def test_trust_proxy_takes_the_address_a_local_proxy_forwards(
        make_server: Callable[..., SandboxServer]) -> None:
    server = make_server(trust_proxy=True)
    owner = Api(server)
    made = owner.create_portfolio(ipsWhitelist=["10.1.2.3"])
    agent = Api(server, user_key=made["userTokens"][0]["userToken"])
    try:
        assert agent.get("/api/v1/me").status_code == 403
        r = agent.get("/api/v1/me", headers=agent.headers(**{"X-Forwarded-For": "10.1.2.3"}))
        assert r.status_code == 200, r.text
        r = agent.get("/api/v1/me", headers=agent.headers(**{"X-Forwarded-For": "10.9.9.9"}))
        assert r.status_code == 403 and "10.9.9.9" in r.json()["errorMessage"]
    finally:
        owner.close()
        agent.close()


def test_cli_trusts_proxies_only_when_told() -> None:
    from etoro_nb.cli import build_parser, serve_config
    from etoro_nb.sandbox.server import uvicorn_options

    parse = build_parser().parse_args
    plain = serve_config(parse(["sandbox", "serve"]))
    trusting = serve_config(parse(["sandbox", "serve", "--trust-proxy"]))
    assert plain.trust_proxy is False and trusting.trust_proxy is True
    assert uvicorn_options(plain)["proxy_headers"] is False
    assert uvicorn_options(trusting)["proxy_headers"] is True
    sized = serve_config(parse(["sandbox", "serve", "--max-body-bytes", "4096"]))
    assert plain.max_body_bytes == LIMIT and sized.max_body_bytes == 4096


# -- item 5: field names bind whatever their case -------------------------------------------
def _flip(name: str) -> str:
    """PascalCase <-> camelCase, and ID <-> Id: InstrumentID -> instrumentId."""
    name = re.sub(r"I[Dd]", lambda m: "Id" if m.group() == "ID" else "ID", name)
    return name[0].swapcase() + name[1:]


RECASINGS: dict[str, Callable[[str], str]] = {
    "lower": str.lower, "upper": str.upper, "flipped": _flip,
}


def _masked(value: Any) -> Any:
    """The answer with token secrets (random, never reproducible) masked."""
    if isinstance(value, dict):
        return {k: "<secret>" if k == "userToken" else _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


class Scenario:
    """Drives every operation with a request body to a success on a fresh sandbox.

    With ``expected`` (the documented run's transcript) each answer must equal the
    documented run's answer at the same step.
    """

    def __init__(self, api: Api, recase: Callable[[str], str],
                 expected: list[tuple[str, str, int, Any]] | None = None) -> None:
        self.api, self.recase, self.expected = api, recase, expected
        self.transcript: list[tuple[str, str, int, Any]] = []
        self.bodied: set[str] = set()

    def send(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if body is not None:
            self.bodied.add(contract().operation(method, path).operation_id)
            body = {self.recase(k): v for k, v in body.items()}
        step = len(self.transcript)
        r = self.api.request(method, path, json=body,
                             request_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"step{step}")))
        answer = _masked(r.json()) if r.content else None
        entry = (method, path, r.status_code, answer)
        if self.expected is not None:
            assert entry == self.expected[step], f"step {step}, body sent: {body}"
        else:
            assert r.status_code in (200, 201, 204), (method, path, r.text)
        self.transcript.append(entry)
        return answer

    def run(self) -> None:
        p1 = self.send("POST", "/api/v1/agent-portfolios", {
            "agentPortfolioName": "casing01", "agentPortfolioDescription": "v1 create",
            "investmentAmountInUsd": 500, "userTokenName": "bot1", "scopeIds": [201, 203],
            "ipsWhitelist": ["10.0.0.1"], "expiresAt": "2026-06-01T00:00:00Z"})
        assert p1 is not None
        p2 = self.send("POST", "/api/v2/agent-portfolios", {
            "agentPortfolioName": "casing02", "agentPortfolioDescription": "v2 create",
            "investmentAmountInUsd": 700, "userTokenName": "bot2", "scopeNames": [DEMO_READ],
            "ipsWhitelist": ["10.0.0.2"], "expiresAt": "2026-06-02T00:00:00Z"})
        pid = p2["agentPortfolioId"]
        tokens = f"/api/v1/agent-portfolios/{pid}/user-tokens"
        t3 = self.send("POST", tokens, {
            "userTokenName": "minted1", "scopeIds": [200], "ipsWhitelist": ["10.0.0.3"],
            "expiresAt": "2026-06-03T00:00:00Z"})["userTokenId"]
        t4 = self.send("POST", f"/api/v2/agent-portfolios/{pid}/user-tokens", {
            "userTokenName": "minted2", "scopeNames": [REAL_READ], "ipsWhitelist": ["10.0.0.4"],
            "expiresAt": "2026-06-04T00:00:00Z"})["userTokenId"]
        self.send("PATCH", f"{tokens}/{t3}", {
            "scopeIds": [201, 203], "ipsWhitelist": ["10.0.0.5"],
            "expiresAt": "2026-07-01T00:00:00Z"})
        self.send("PATCH", f"/api/v2/agent-portfolios/{pid}/user-tokens/{t4}", {
            "scopeNames": [DEMO_READ, DEMO_WRITE], "ipsWhitelist": [], "expiresAt": None})
        self.send("GET", "/api/v1/agent-portfolios")  # what every field above became

        self.send("POST", "/api/v2/trading/execution/demo/orders", order_body(
            amount=1000.0, leverage=2, orderCurrency="USD", settlementType="cfd",
            stopLossType="fixed"))
        self.send("POST", "/api/v2/trading/execution/orders", order_body(
            instrumentId=None, symbol="MSFT", amount=800.0, orderType="mit", triggerRate=1.0))
        v1 = "/api/v1/trading/execution/"
        demo_open = self.send("POST", f"{v1}demo/market-open-orders/by-amount", {
            "InstrumentID": 1002, "IsBuy": True, "Leverage": 1, "Amount": 600,
            "IsTslEnabled": True, "IsNoStopLoss": True, "IsNoTakeProfit": True})
        self.send("POST", f"{v1}demo/market-open-orders/by-units", {
            "InstrumentID": 100001, "IsBuy": True, "Leverage": 1, "AmountInUnits": 0.5})
        real_open = self.send("POST", f"{v1}market-open-orders/by-amount", {
            "InstrumentID": 1003, "IsBuy": True, "Leverage": 1, "Amount": 900})
        self.send("POST", f"{v1}market-open-orders/by-units", {
            "InstrumentID": 3000, "IsBuy": False, "Leverage": 2, "AmountInUnits": 1.5})
        for mode, opened, field, instrument, close in (
            ("demo", demo_open, "InstrumentID", 1002, f"{v1}demo/market-close-orders"),
            ("real", real_open, "InstrumentId", 1003, f"{v1}market-close-orders"),
        ):
            book = self.send("GET", f"/api/v1/trading/info/{mode}/pnl")["clientPortfolio"]
            order_id = opened["orderForOpen"]["orderID"]
            position = next(p for p in book["positions"] if p["orderID"] == order_id)
            self.send("POST", f"{close}/positions/{position['positionID']}",
                      {field: instrument, "UnitsToDeduct": position["units"] / 2})
            self.send("GET", f"/api/v1/trading/info/{mode}/pnl")


def _bodied_operations() -> set[str]:
    doc = contract()
    return {op.operation_id for op in doc.operations if doc.request_schema_pointer(op)}


def test_every_operation_binds_its_fields_in_any_casing(
        make_server: Callable[..., SandboxServer]) -> None:
    def run(recase: Callable[[str], str],
            expected: list[tuple[str, str, int, Any]] | None) -> Scenario:
        server = make_server(read_limit=1000, write_limit=1000)
        api = Api(server)
        try:
            scenario = Scenario(api, recase, expected)
            scenario.run()
        finally:
            api.close()
        return scenario

    documented = run(lambda name: name, None)
    assert documented.bodied == _bodied_operations()  # every operation with a body
    for label, recase in RECASINGS.items():
        recased = run(recase, documented.transcript)
        assert recased.transcript == documented.transcript, label


def test_query_parameter_names_bind_in_any_casing(owner: Api) -> None:
    placed = owner.post("/api/v2/trading/execution/demo/orders", order_body())
    assert placed.status_code == 200, placed.text
    order_id, reference = placed.json()["orderId"], placed.json()["referenceId"]
    queries: list[tuple[str, dict[str, str]]] = [
        ("/api/v1/market-data/instruments/rates", {"instrumentIds": "1001,100000"}),
        ("/api/v1/market-data/search", {"fields": "symbol,instrumentType", "searchText": "a",
                                        "pageSize": "3", "pageNumber": "2", "sort": "symbol desc",
                                        "instrumentType": "Stocks"}),
        ("/api/v1/trading/info/trade/demo/history", {"minDate": "2026-03-01", "page": "1",
                                                     "pageSize": "5"}),
        ("/api/v1/trading/info/trade/history", {"minDate": "2026-03-01", "page": "2",
                                                "pageSize": "1"}),
        ("/api/v2/trading/info/demo/orders:lookup", {"orderId": str(order_id)}),
        ("/api/v2/trading/info/demo/orders:lookup", {"referenceId": reference}),
        ("/api/v2/trading/info/orders:lookup", {"orderId": str(order_id)}),
        ("/api/v2/trading/info/orders:lookup", {"referenceId": reference}),
    ]
    doc = contract()
    named = {(doc.operation("GET", path).operation_id, name)
             for path, params in queries for name in params}
    documented = {(op.operation_id, p["name"]) for op in doc.operations
                  for p in doc.document["paths"][op.template][op.method.lower()].get(
                      "parameters", []) if p.get("in") == "query"}
    assert documented <= named  # every query parameter of the contract, plus one filter
    for path, params in queries:
        expected = owner.get(path, params=params)
        assert expected.status_code in (200, 404), expected.text
        for recase in RECASINGS.values():
            r = owner.get(path, params={recase(k): v for k, v in params.items()})
            assert (r.status_code, r.json()) == (expected.status_code, expected.json()), path


@pytest.mark.parametrize(("path", "raw", "named"), [
    ("/api/v1/trading/execution/market-close-orders/positions/1",
     b'{"InstrumentID": 1001, "InstrumentId": 1001}', "InstrumentId"),
    (CREATE, b'{"agentPortfolioName": "agent01", "investmentAmountInUsd": 500, '
             b'"userTokenName": "bot", "scopeNames": [], "ScopeNames": ["' +
             DEMO_READ.encode() + b'"]}', "ScopeNames"),
    ("/api/v2/trading/execution/demo/orders",
     b'{"action": "open", "transaction": "buy", "instrumentId": 1001, "leverage": 1, '
     b'"amount": 50, "amount": 5000}', "amount"),
])
def test_a_field_given_twice_is_refused(owner: Api, path: str, raw: bytes, named: str) -> None:
    headers = owner.headers(**{"content-type": "application/json"})
    r = owner.http.post(path, content=raw, headers=headers)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["errorCode"] == "ValidationFailed"
    assert named in body["errorMessage"] and "more than once" in body["errorMessage"]
    assert owner.get("/api/v1/agent-portfolios").json()["agentPortfolios"] == []


def test_a_field_given_twice_in_a_nested_object_is_refused(owner: Api) -> None:
    headers = owner.headers(**{"content-type": "application/json"})
    raw = (b'{"agentPortfolioName": "agent01", "investmentAmountInUsd": 500, '
           b'"userTokenName": "bot", "scopeNames": ["' + DEMO_READ.encode() + b'"], '
           b'"extra": [{"note": "a", "Note": "b"}]}')
    r = owner.http.post(CREATE, content=raw, headers=headers)
    assert r.status_code == 400, r.text
    assert "'Note' more than once" in r.json()["errorMessage"]
    assert owner.get("/api/v1/agent-portfolios").json()["agentPortfolios"] == []


@pytest.mark.parametrize("query", ["pageSize=5&PageSize=500", "pageSize=5&pageSize=500",
                                   "instrumentIds=1001&instrumentIds=1002"])
def test_a_query_parameter_given_twice_is_refused(owner: Api, query: str) -> None:
    path = ("/api/v1/market-data/instruments/rates" if "instrumentIds" in query
            else "/api/v1/trading/info/trade/demo/history")
    r = owner.http.get(f"{path}?minDate=2020-01-01&{query}", headers=owner.headers())
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["errorCode"] == "ValidationFailed"
    assert "more than once" in body["errorMessage"] and query.split("&")[1].split("=")[0] in (
        body["errorMessage"])


# -- item 6: smaller contract gaps ----------------------------------------------------------
@pytest.mark.parametrize(("method", "template", "field"), [
    ("GET", "/api/v1/trading/info/real/orders/{}", "orderId"),
    ("GET", "/api/v1/trading/info/demo/orders/{}", "orderId"),
    ("DELETE", "/api/v2/trading/execution/orders/{}", "orderId"),
    ("GET", "/api/v2/trading/info/demo/orders:lookup?orderId={}", "orderId"),
    ("POST", "/api/v1/trading/execution/market-close-orders/positions/{}", "positionId"),
    ("GET", "/api/v1/market-data/instruments/{}/history/candles/asc/OneDay/5", "instrumentId"),
])
def test_int64_ids_up_to_the_int64_maximum(owner: Api, method: str, template: str,
                                           field: str) -> None:
    body = {"InstrumentId": 1001} if method == "POST" else None
    r = owner.request(method, template.format(INT64_MAX), json=body)
    assert r.status_code == 404, r.text
    assert r.json()["errorCode"] == "NotFound"
    for beyond in (str(INT64_MAX + 1), "9" * 40):
        r = owner.request(method, template.format(beyond), json=body)
        assert r.status_code == 400, r.text
        assert r.json()["errorCode"] == "ValidationFailed"
        assert field in r.json()["errorMessage"] and "9223372036854775807" in r.json()[
            "errorMessage"]


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("PUT", "/api/v1/agent-portfolios", {"GET", "HEAD", "POST"}),
    ("GET", f"/api/v1/agent-portfolios/{uuid.uuid4()}/user-tokens/{uuid.uuid4()}",
     {"PATCH", "DELETE"}),
    ("DELETE", "/api/v2/agent-portfolios", {"POST"}),
])
def test_405_allows_every_method_of_the_path(owner: Api, method: str, path: str,
                                             allowed: set[str]) -> None:
    r = owner.request(method, path)
    assert r.status_code == 405, r.text
    assert set(r.headers["allow"].split(", ")) == allowed
    assert r.json()["errorCode"] == "MethodNotAllowed"


@pytest.mark.parametrize("content_type", [
    "text/plain", "application/x-www-form-urlencoded", "application/xml", "multipart/form-data",
    None, "application/json; charset=latin-1",
])
@pytest.mark.parametrize("path", [CREATE, "/api/v2/trading/execution/demo/orders"])
def test_a_body_not_json_by_its_content_type_is_415(owner: Api, path: str,
                                                    content_type: str | None) -> None:
    body = _create_body() if path == CREATE else order_body()
    headers = owner.headers()
    if content_type is not None:
        headers["content-type"] = content_type
    r = owner.http.post(path, content=json.dumps(body).encode(), headers=headers)
    assert r.status_code == 415, r.text
    answer = r.json()
    assert answer["errorCode"] == "UnsupportedMediaType"
    assert "application/json" in answer["errorMessage"]
    assert owner.get("/api/v1/agent-portfolios").json()["agentPortfolios"] == []
    assert owner.owner_real()["positions"] == [] and owner.get(
        "/api/v1/trading/info/demo/pnl").json()["clientPortfolio"]["positions"] == []


@pytest.mark.parametrize("content_type", [
    "application/json", "application/json; charset=utf-8", "Application/JSON",
    "text/json", "application/merge-patch+json",
])
def test_json_content_types_are_served(owner: Api, content_type: str) -> None:
    headers = owner.headers(**{"content-type": content_type})
    r = owner.http.post(CREATE, content=json.dumps(_create_body()).encode(), headers=headers)
    assert r.status_code == 201, r.text


def _exchange(server: SandboxServer, method: str, path: str, headers: list[tuple[str, str]],
              parts: list[bytes]) -> tuple[int, dict[str, str], bytes]:
    """Send a request's head and some body parts, never the end of the body, and read
    the answer the server gives to that unfinished request."""
    url = urlsplit(server.base_url)
    conn = h11.Connection(h11.CLIENT)
    with socket.create_connection((url.hostname, url.port), timeout=HANG_GUARD) as sock:
        sock.sendall(conn.send(h11.Request(method=method, target=path,
                                           headers=[("host", url.netloc), *headers])))
        for part in parts:
            sock.sendall(conn.send(h11.Data(data=part)))
        status, answer_headers, body = 0, {}, b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
                answer_headers = {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return status, answer_headers, body


def _json_headers(owner: Api | None) -> list[tuple[str, str]]:
    keys = list(owner.headers().items()) if owner is not None else []
    return [*keys, ("content-type", "application/json")]


@pytest.mark.parametrize("keys", [True, False])
def test_a_declared_oversize_body_is_413_before_it_is_sent(server: SandboxServer, owner: Api,
                                                           keys: bool) -> None:
    headers = [*_json_headers(owner if keys else None), ("content-length", str(10 * LIMIT))]
    status, answer_headers, body = _exchange(server, "POST", CREATE, headers, [])
    assert status == 413, body
    assert json.loads(body)["errorCode"] == "PayloadTooLarge"
    assert str(LIMIT) in json.loads(body)["errorMessage"]
    assert answer_headers.get("connection") == "close"


def test_a_streamed_oversize_body_is_413_once_past_the_limit(server: SandboxServer) -> None:
    headers = [*_json_headers(None), ("transfer-encoding", "chunked")]
    parts = [b"{" + b" " * (64 * 1024 - 1)] + [b" " * (64 * 1024)] * 15 + [b" "]
    assert sum(map(len, parts)) == LIMIT + 1
    status, _, body = _exchange(server, "POST", CREATE, headers, parts)
    assert status == 413, body
    assert json.loads(body)["errorCode"] == "PayloadTooLarge"


def test_a_body_at_the_limit_is_served(owner: Api) -> None:
    raw = json.dumps(_create_body()).encode()
    raw = raw[:-1] + b" " * (LIMIT - len(raw)) + b"}"
    assert len(raw) == LIMIT
    r = owner.http.post(CREATE, content=raw,
                        headers=owner.headers(**{"content-type": "application/json"}))
    assert r.status_code == 201, r.text
    assert {*ALL_SCOPES} >= {s["name"] for s in r.json()["userTokens"][0]["scopes"]}
