"""The contract is written once on the client side: every request is built from its
operation's catalogue entry (method, route, scope), and scope names live in ``scopes``."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from etoro_nb import errors, frames, scopes
from etoro_nb._base import Answer, Call
from etoro_nb.client import EtoroClient
from etoro_nb.ledger import Ledger
from etoro_nb.operations import SANDBOX_STATUS, OperationInfo, catalogue, operation
from etoro_nb.sandbox import SandboxServer, delegation
from etoro_nb.spec import load_subset
from tests.helpers import ALL_SCOPES, DEMO_READ, REAL_READ
from widgets._common import consent_text

ROOT = Path(__file__).resolve().parents[1]

# Operations no typed method sends, each for a reason; ``client.call`` and the playground
# reach them (see test_client_call_builds_every_operation_from_the_catalogue).
NOT_WRAPPED = {
    "createAgentPortfolio": "deprecated v1 (scopeIds); create uses createAgentPortfolioV2",
    "createAgentPortfolioUserToken": "deprecated v1 (scopeIds); mint uses the v2 operation",
    "updateAgentPortfolioUserToken": "deprecated v1 (scopeIds); update uses the v2 operation",
    "openMarketPositionByAmount": "deprecated; open_order uses the v2 unified createRealOrder",
    "openMarketPositionByUnits": "deprecated; open_order uses the v2 unified createRealOrder",
    "openMarketPositionByAmountDemo": "deprecated; open_order uses createDemoOrder",
    "openMarketPositionByUnitsDemo": "deprecated; open_order uses createDemoOrder",
    "getRealOrderForOpenInfo": "deprecated; lookup_order uses lookupRealOrder",
    "getDemoOrderForOpenInfo": "deprecated; lookup_order uses lookupDemoOrder",
}


@pytest.fixture
def client(server: SandboxServer, tmp_path: Path,
           make_client: Callable[..., EtoroClient]) -> EtoroClient:
    """An owner client recording into a ledger (closed with it)."""
    return make_client(server, ledger=Ledger(tmp_path / "l.sqlite"), owns_ledger=True)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Call]]:
    """Every call any ``EtoroClient`` sends in the test, in order."""
    calls: list[Call] = []
    send = EtoroClient._send

    def recording(self: EtoroClient, call: Call) -> Answer:
        calls.append(call)
        return send(self, call)

    monkeypatch.setattr(EtoroClient, "_send", recording)
    yield calls


def _entry(operation_id: str) -> OperationInfo:
    info = operation(operation_id)
    assert info is not None, operation_id
    return info


def assert_from_catalogue(calls: list[Call], client: EtoroClient) -> None:
    """Each call's method and path are its catalogue entry's, and so is what the ledger
    recorded for it (method, route and the scope it needs)."""
    for call in calls:
        info = _entry(call.operation)
        assert info is catalogue().get(call.operation, SANDBOX_STATUS)
        assert call.method == info.method and info.matches(call.path), call
        assert call.real_money == info.real_money and call.idempotent == info.idempotent
    assert client.ledger is not None
    usage = frames.usage(client.ledger, phase="outcome")
    assert isinstance(usage, pl.DataFrame)
    recorded = usage.select("request_id", "operation_id", "method", "route", "scope_required")
    assert recorded.height >= len(calls)  # one outcome per attempt, at least one per call
    for request_id, op, method, route, scope in recorded.rows():
        info = _entry(op)
        assert (method, route, scope) == (info.method, info.route, info.scope_required), request_id
    assert set(recorded["operation_id"]) == {c.operation for c in calls}


def test_every_client_method_builds_its_calls_from_the_catalogue(
    client: EtoroClient, sent: list[Call]
) -> None:
    ap = client.agent_portfolios
    ap.allowed_scopes()
    created = ap.create("alpha01", 2000, scopes=ALL_SCOPES, token_name="bot")
    pid = created.portfolio.id
    ap.list()
    ap.get(pid)
    reader = ap.mint_token(pid, "reader", scopes=[DEMO_READ])
    ap.update_token(pid, reader.id, scopes=[DEMO_READ, REAL_READ])
    ap.rotate_token(pid, reader.id).confirm()
    client.me()
    client.now()
    client.market.search("apple")
    ask = client.market.rates([1001])[0].ask
    client.market.candles(1001, "OneHour", 5)
    agent = client.as_agent(created.token)
    for mode in ("demo", "real"):
        trading = agent.trading(mode)
        trading.pnl()
        placed = trading.open_order(1001, amount=100)
        trading.lookup_order(placed.order_id)
        position = trading.portfolio().positions[0]
        trading.close_position(position.position_id, position.instrument_id)
        trading.history(date(2026, 1, 1))
        pending = trading.open_order(1001, amount=100, trigger_rate=round(ask * 0.5, 2))
        trading.cancel_order(pending.order_id)
    ap.delete(pid)
    agent.close()

    assert_from_catalogue(sent, client)
    reached = {c.operation for c in sent}
    assert reached.isdisjoint(NOT_WRAPPED)
    assert reached | set(NOT_WRAPPED) == set(catalogue()) | {SANDBOX_STATUS.operation_id}
    assert all(catalogue()[op].deprecated for op in NOT_WRAPPED)


def test_client_call_builds_every_operation_from_the_catalogue(
    client: EtoroClient, sent: list[Call]
) -> None:
    """The playground's way in: any operation by id, its form's example values sent."""
    for op, info in catalogue().items():
        path_params = {p.name: p.example or "1" for p in info.parameters if p.location == "path"}
        query = {p.name: p.example for p in info.parameters
                 if p.location == "query" and p.example}
        # An example id the sandbox does not hold is refused, and still recorded.
        with contextlib.suppress(errors.APIError):
            client.call(op, path_params=path_params, query=query, body=info.example_body())
    assert [c.operation for c in sent] == list(catalogue())
    assert_from_catalogue(sent, client)


def test_a_call_cannot_disagree_with_its_catalogue_entry() -> None:
    call = Call.of("deleteAgentPortfolioUserToken", {"agentPortfolioId": "p/1",
                                                     "userTokenId": "t 2"})
    assert (call.method, call.path) == ("DELETE", "/api/v1/agent-portfolios/p%2F1/user-tokens/t%202")
    with pytest.raises(ValueError, match="getPortfolio has route /api/v1/trading/info/portfolio"):
        Call("getPortfolio", "/api/v1/trading/info/demo/portfolio")
    with pytest.raises(ValueError, match="no route"):
        Call("madeUp", "/api/v1/me")
    with pytest.raises(errors.InvalidInputError, match="operation_id"):
        Call.of("madeUp")
    with pytest.raises(errors.InvalidInputError, match="token_id"):
        Call.of("deleteAgentPortfolioUserToken", {"agentPortfolioId": "p"})
    with pytest.raises(errors.InvalidInputError, match="userTokenId"):
        Call.of("deleteAgentPortfolioUserToken", {"agentPortfolioId": "p"}, names={})
    with pytest.raises(errors.InvalidInputError, match="operation_id"):
        EtoroClient(base_url="http://x", api_key="a", user_key="b",
               environment="live").call("sandboxStatus")  # not an operation of the contract


def test_calls_are_built_only_through_call_of() -> None:
    """No module of the client writes a method and path by hand (the sandbox has a
    ``Call`` of its own)."""
    sources = [p for d in ("etoro_nb", "widgets") for p in (ROOT / d).rglob("*.py")
               if "sandbox" not in p.parts and p.name != "_base.py"]
    assert len(sources) > 20
    literal = re.compile(r"\bCall\(")
    assert [str(p.relative_to(ROOT)) for p in sources if literal.search(p.read_text())] == []


def test_scopes_are_the_contracts_and_the_sandboxs() -> None:
    # The sandbox keeps its own copy on purpose: it is the oracle the client is checked by.
    assert scopes.NAMES == delegation.ALLOWED_SCOPES
    assert scopes.BY_V1_ID == delegation.SCOPE_IDS
    spec = load_subset()["components"]["schemas"]
    v2 = spec["CreateUserTokenV2Request"]["properties"]["scopeNames"]["description"]
    assert set(re.findall(r"etoro-public:[\w.]+:\w+", v2)) == set(scopes.NAMES)
    # The v1 ids as the contract describes them: "200 = etoro-public:real:read, ...".
    v1 = spec["CreateUserTokenRequest"]["properties"]["scopeIds"]["description"]
    described = {int(i): (account, access)
                 for i, account, access in re.findall(r"(\d+) = etoro-public:(\w+):(\w+)", v1)}
    assert described == {s.v1_id: (s.account, s.access) for s in scopes.SCOPES.values()}
    for s in scopes.SCOPES.values():
        assert scopes.scope_for(s.account, s.access) == s.name
        assert s.name == f"{scopes.PREFIX}{s.short}" == f"etoro-public:trade.{s.account}:{s.access}"


def test_scope_names_are_written_once_client_side() -> None:
    known = {"etoro_nb/scopes.py": "the definitions"}
    sources = [p for d in ("etoro_nb", "widgets") for p in (ROOT / d).rglob("*.py")
               if "sandbox" not in p.parts]
    written = {str(p.relative_to(ROOT)) for p in sources if "etoro-public:" in p.read_text()}
    assert written == set(known)


def test_the_catalogue_takes_scopes_from_the_scope_module() -> None:
    ops = catalogue()
    assert ops["createDemoOrder"].scope_required == scopes.DEMO_WRITE
    assert ops["getPortfolio"].scope_required == scopes.REAL_READ
    assert ops["cancelRealOrder"].scope_required == scopes.REAL_WRITE
    assert ops["getAgentPortfolios"].scope_required == "owner"
    assert ops["getAuthenticatedUserProfile"].scope_required is None
    used = {op.scope_required for op in ops.values()} - {"owner", None}
    assert used == set(scopes.NAMES)
    # Each needs the write scope exactly when it moves money or is a real-account write.
    assert {o for o, i in ops.items() if i.real_money} == {
        o for o, i in ops.items() if i.scope_required == scopes.REAL_WRITE}


def test_the_playground_reads_the_catalogue() -> None:
    info = catalogue()["createAgentPortfolioV2"]
    assert info.summary and not info.deprecated
    assert {"agentPortfolioName", "investmentAmountInUsd", "userTokenName",
            "scopeNames"} <= set(info.example_body())
    assert info.example_body() is not info.example_body()  # a fresh copy each time
    assert catalogue()["getAgentPortfolios"].example_body() is None
    candles = catalogue()["getCandles"]
    assert {p.name for p in candles.parameters} == set(candles.path_params)
    assert all(p.location == "path" and p.required for p in candles.parameters)
    assert catalogue()["createAgentPortfolio"].deprecated
    lookup = catalogue()["lookupDemoOrder"].parameters
    assert {p.name for p in lookup} == {"orderId", "referenceId"}
    assert all(p.location == "query" for p in lookup)


def test_consent_wording_comes_from_the_scope_meanings() -> None:
    assert consent_text([scopes.DEMO_READ, scopes.REAL_READ], environment="sandbox") is None
    assert consent_text([scopes.REAL_WRITE, scopes.DEMO_WRITE], environment="live",
                        investment_usd=1500) == (
        "The agent holding this token will be able to open and close positions on its demo "
        "practice account (no real money); and open and close positions on its real "
        "account; each trade is copied into your mirror, moving up to the invested "
        "1,500.00 USD of your money (REAL money on your live eToro account).")
