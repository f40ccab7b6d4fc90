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
import polars as pl
import pytest

import etoro_nb as enb
from etoro_nb import errors
from etoro_nb._base import RetryPolicy
from etoro_nb.client import AsyncEtoroClient, EtoroClient, _detect, is_loopback
from etoro_nb.ledger import Ledger, schema, sealing
from etoro_nb.ledger import core as ledger_core
from etoro_nb.sandbox import Faults, SandboxServer
from tests.helpers import ALL_SCOPES, DEMO_READ


class ExactPolicy(RetryPolicy):
    def jitter(self) -> float:
        return 1.0


def _quiet(client: EtoroClient) -> EtoroClient:
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
    make_server: Callable[..., SandboxServer], make_client: Callable[..., EtoroClient]
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
    server: SandboxServer, make_client: Callable[..., EtoroClient], status: int | None
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
    make_server: Callable[..., SandboxServer], make_client: Callable[..., EtoroClient]
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
    server: SandboxServer, make_client: Callable[..., EtoroClient], tmp_path: Path
) -> None:
    client = make_client(server, ledger=Ledger(tmp_path / "l.sqlite"))
    with pytest.raises(errors.BadRequestError):
        client.trading("demo").open_order(1001, amount=10**9)  # more than the balance
    assert client.ledger is not None
    operations = enb.frames.requests(client.ledger)["operation_id"].to_list()
    assert operations == ["createDemoOrder"]  # refused: nothing to look up


@pytest.mark.parametrize("exists", [True, False])
def test_a_refusal_after_a_lost_answer_is_checked_too(exists: bool) -> None:
    """An order's first answer is lost, its retry refused: the first may have placed it."""
    posts: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            posts.append(request)
            if len(posts) == 1:
                raise httpx.ReadError("answer lost", request=request)
            return httpx.Response(400, json={"errorCode": "ValidationFailed",
                                             "errorMessage": "market closed"})
        assert request.url.params["referenceId"] == posts[0].headers["x-request-id"]
        if exists:
            return httpx.Response(200, json={"orderId": 77, "status": {"id": 1,
                                                                       "name": "Executed"}})
        return httpx.Response(404, json={"errorCode": "NotFound", "errorMessage": "no order"})

    client = _quiet(EtoroClient(base_url="http://mock", api_key="a", user_key="b",
                           environment="live", transport=httpx.MockTransport(handler)))
    if exists:
        assert client.trading("demo").open_order(1001, amount=100).order_id == 77
    else:  # nothing placed: the refusal itself is the answer
        with pytest.raises(errors.BadRequestError, match="market closed"):
            client.trading("demo").open_order(1001, amount=100)


def test_async_order_placed_before_its_connection_dropped_is_returned(
    make_server: Callable[..., SandboxServer]
) -> None:
    server = make_server(faults=Faults(drop_after_commit_rate=1.0))
    creds = server.credentials

    async def scenario() -> None:
        async with AsyncEtoroClient(base_url=creds.base_url, api_key=creds.api_key,
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
        EtoroClient(base_url="https://api.etoro.com", api_key="a", user_key="b",
               environment="sandbox")


# -- item 4: delegation changes, intent before and outcome after -----------------------------
class LifecycleFails(Ledger):
    """A real ledger file whose lifecycle rows can't be written: every one (``"all"``) or
    every one but intents (``"after"``: what is written once a request has been sent)."""

    fail: str | None = None

    def append_lifecycle(self, **values: Any) -> int:
        if self.fail == "all" or (self.fail == "after" and values.get("phase") != "intent"):
            raise errors.LedgerError("injected: the lifecycle table cannot be written")
        return super().append_lifecycle(**values)


def _ledger_client(server: SandboxServer, make_client: Callable[..., EtoroClient],
                   path: Path, **settings: Any) -> tuple[EtoroClient, LifecycleFails]:
    ledger = LifecycleFails(path)
    client = make_client(server, ledger=ledger, clock=server.sandbox.clock.now, **settings)
    return client, ledger


def _kinds(ledger: Ledger, portfolio_id: str) -> list[tuple[str, str | None]]:
    events = enb.frames.lifecycle(ledger).filter(pl.col("portfolio_id") == portfolio_id)
    return list(zip(events["kind"], events["token_name"], strict=True))


def test_no_change_is_sent_when_its_intent_cannot_be_written(
    server: SandboxServer, make_client: Callable[..., EtoroClient], tmp_path: Path
) -> None:
    client, ledger = _ledger_client(server, make_client, tmp_path / "l.sqlite")
    created = client.agent_portfolios.create("alpha01", 1000, scopes=[DEMO_READ])
    pid, tid = created.portfolio.id, created.token.id
    ledger.fail = "all"
    attempts: list[Callable[[], object]] = [
        lambda: client.agent_portfolios.create("beta0001", 1000, scopes=[DEMO_READ]),
        lambda: client.agent_portfolios.mint_token(pid, "second", scopes=[DEMO_READ]),
        lambda: client.agent_portfolios.update_token(pid, tid, scopes=ALL_SCOPES),
        lambda: client.agent_portfolios.revoke_token(pid, tid),
        lambda: client.agent_portfolios.delete(pid),
        lambda: client.call("createAgentPortfolioUserTokenV2", path_params={
            "agentPortfolioId": pid}, body={"userTokenName": "raw01", "scopeNames": [DEMO_READ]}),
    ]
    for attempt in attempts:
        with pytest.raises(errors.LedgerError, match="injected"):
            attempt()
    # Nothing reached the server: one portfolio, its one token, as it was granted.
    listed = client.agent_portfolios.list()
    assert [(p.name, [(t.name, t.scopes) for t in p.tokens]) for p in listed] == [
        ("alpha01", [("agent", (DEMO_READ,))])]
    writes = enb.frames.usage(ledger, phase="intent").filter(pl.col("method") != "GET")
    assert writes["operation_id"].to_list() == ["createAgentPortfolioV2"]  # the first create


def test_a_change_made_but_not_recorded_still_reaches_its_caller_with_a_warning(
    server: SandboxServer, make_client: Callable[..., EtoroClient], tmp_path: Path
) -> None:
    client, ledger = _ledger_client(server, make_client, tmp_path / "l.sqlite")
    ledger.fail = "after"
    with pytest.warns(errors.LedgerWarning, match="unfinished"):
        created = client.agent_portfolios.create("alpha01", 1000, scopes=[DEMO_READ])
    with pytest.warns(errors.LedgerWarning, match="token_minted was made"):
        token = client.agent_portfolios.mint_token(created.portfolio.id, "second",
                                                   scopes=[DEMO_READ])
    # The secrets reached the caller and work.
    assert client.as_agent(created.token).me().username == "alpha01"
    assert client.as_agent(token).me().scopes == (DEMO_READ,)
    # The ledger shows both changes begun and never recorded as made, and none as made.
    unfinished = enb.frames.unfinished_changes(ledger)
    assert list(zip(unfinished["kind"], unfinished["token_name"], strict=True)) == [
        ("portfolio_created", "agent"), ("token_minted", "second")]
    assert unfinished["scopes"].to_list() == [[DEMO_READ], [DEMO_READ]]
    assert enb.frames.lifecycle(ledger).is_empty()
    assert ledger.verify().ok


def test_changes_are_recorded_as_intent_then_outcome(
    server: SandboxServer, make_client: Callable[..., EtoroClient], tmp_path: Path
) -> None:
    client, ledger = _ledger_client(server, make_client, tmp_path / "l.sqlite")
    created = client.agent_portfolios.create("alpha01", 1000, scopes=[DEMO_READ],
                                             request_id="0b1c6a57-2a38-4d8e-9f34-5f7a1d9e0c11")
    pid = created.portfolio.id
    with pytest.raises(errors.ConflictError):  # refused: the name is taken
        client.agent_portfolios.mint_token(pid, "agent", scopes=[DEMO_READ])
    client.agent_portfolios.revoke_token(pid, created.token.id)
    rows = ledger._conn.execute(
        "SELECT phase, kind, request_id FROM lifecycle_events ORDER BY seq").fetchall()
    create_rid = "0b1c6a57-2a38-4d8e-9f34-5f7a1d9e0c11"
    assert [(phase, kind) for phase, kind, _ in rows] == [
        ("intent", "portfolio_created"), ("outcome", "portfolio_created"),
        ("outcome", "token_minted"), ("intent", "token_minted"), ("failed", "token_minted"),
        ("intent", "token_revoked"), ("outcome", "token_revoked")]
    assert {rid for _, _, rid in rows[:3]} == {create_rid}  # the create's x-request-id
    sent = enb.frames.usage(ledger, phase="intent").filter(
        pl.col("operation_id") == "createAgentPortfolioV2")["request_id"].to_list()
    assert sent == [create_rid]
    assert _kinds(ledger, pid) == [("portfolio_created", None), ("token_minted", "agent"),
                                   ("token_revoked", "agent")]
    assert enb.frames.unfinished_changes(ledger).is_empty()


def test_reconciliation_records_the_orphan_it_revoked_and_the_token_it_minted_again(
    make_server: Callable[..., SandboxServer], make_client: Callable[..., EtoroClient],
    tmp_path: Path,
) -> None:
    server = make_server()
    client, ledger = _ledger_client(server, make_client, tmp_path / "l.sqlite",
                                    retry=ExactPolicy())
    created = client.agent_portfolios.create("alpha01", 1000, scopes=[DEMO_READ])
    pid = created.portfolio.id
    server.sandbox.set_faults(Faults(drop_after_commit_rate=1.0))  # the mint's answer is lost
    client._sleep = lambda s: server.sandbox.set_faults(Faults())  # type: ignore[method-assign]
    token = client.agent_portfolios.mint_token(pid, "second", scopes=[DEMO_READ])
    events = enb.frames.lifecycle(ledger).filter(pl.col("portfolio_id") == pid)
    minted = events.filter(kind="token_minted", token_name="second")["token_id"].to_list()
    assert len(minted) == 2 and minted[1] == token.id  # the orphan, then the one returned
    orphan = minted[0]
    revoked = events.filter(kind="token_revoked").row(0, named=True)
    assert revoked["token_id"] == orphan and "reconciliation" in json.loads(revoked["detail"])
    status = dict(enb.frames.tokens_from_ledger(ledger).select("token_id", "status").rows())
    assert (status[orphan], status[token.id]) == ("revoked", "active")
    assert enb.frames.unfinished_changes(ledger).is_empty()


def test_a_lost_create_answer_records_the_first_token_revoked_and_minted_again(
    make_server: Callable[..., SandboxServer], make_client: Callable[..., EtoroClient],
    tmp_path: Path,
) -> None:
    server = make_server(faults=Faults(drop_after_commit_rate=1.0))
    client, ledger = _ledger_client(server, make_client, tmp_path / "l.sqlite",
                                    retry=ExactPolicy())
    client._sleep = lambda s: server.sandbox.set_faults(Faults())  # type: ignore[method-assign]
    created = client.agent_portfolios.create("alpha01", 1000, scopes=[DEMO_READ],
                                             token_name="bot", consent="I agree")
    pid = created.portfolio.id
    assert _kinds(ledger, pid) == [("portfolio_created", None), ("token_minted", "bot"),
                                   ("token_revoked", "bot"), ("token_minted", "bot")]
    tokens = enb.frames.tokens_from_ledger(ledger)
    assert tokens.filter(status="active")["token_id"].to_list() == [created.token.id]
    assert tokens.filter(status="revoked").height == 1
    detail = json.loads(enb.frames.lifecycle(ledger).filter(
        pl.col("token_id") == created.token.id)["detail"].item())
    assert detail["consent"] == "I agree"
    assert enb.frames.unfinished_changes(ledger).is_empty()


def test_a_change_whose_answer_never_came_stays_unfinished(
    server: SandboxServer, make_client: Callable[..., EtoroClient], tmp_path: Path
) -> None:
    client, ledger = _ledger_client(server, make_client, tmp_path / "l.sqlite",
                                    retry=ExactPolicy())
    created = client.agent_portfolios.create("alpha01", 1000, scopes=[DEMO_READ])
    flaky, _ = _ledger_client(server, make_client, tmp_path / "l.sqlite",
                              transport=DeletesDropped(), retry=ExactPolicy())
    _quiet(flaky)
    with pytest.raises(errors.APIConnectionError):
        flaky.agent_portfolios.revoke_token(created.portfolio.id, created.token.id)
    unfinished = enb.frames.unfinished_changes(ledger)
    assert unfinished.select("kind", "token_id").rows() == [("token_revoked", created.token.id)]
    # Not shown as made: the token is still active as far as the ledger knows.
    assert enb.frames.tokens_from_ledger(ledger)["status"].to_list() == ["active"]


class DeletesDropped(httpx.HTTPTransport):
    """Forwards to the sandbox, but every DELETE's answer is lost after it was sent."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            raise httpx.ReadError("answer lost", request=request)
        return super().handle_request(request)


def test_async_change_made_but_not_recorded_reaches_its_caller(
    server: SandboxServer, tmp_path: Path
) -> None:
    creds = server.credentials
    ledger = LifecycleFails(tmp_path / "l.sqlite")
    ledger.fail = "after"

    async def scenario() -> str:
        async with AsyncEtoroClient(base_url=creds.base_url, api_key=creds.api_key,
                               user_key=creds.user_key, environment="sandbox",
                               ledger=ledger) as client:
            created = await client.agent_portfolios.create("async01", 1000, scopes=[DEMO_READ])
            return (await client.as_agent(created.token).me()).username

    with pytest.warns(errors.LedgerWarning):
        assert asyncio.run(scenario()) == "async01"
    assert enb.frames.unfinished_changes(ledger)["kind"].to_list() == ["portfolio_created"]


def test_a_ledger_from_before_phases_still_verifies_and_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.sqlite"
    # The ledger as it was before 0004_lifecycle_phase: no phase column, rows hashed without it.
    with monkeypatch.context() as old:
        old.setitem(schema.CHAINED, "lifecycle_events", schema.LIFECYCLE_COLUMNS[:-1])
        old.setitem(ledger_core._INSERT, "lifecycle_events",
                    ledger_core._insert_sql("lifecycle_events"))
        # ... nor 0007's application on requests.
        old.setitem(schema.CHAINED, "usage_events", schema.USAGE_COLUMNS[:-1])
        old.setitem(ledger_core._INSERT, "usage_events", ledger_core._insert_sql("usage_events"))
        old.setitem(sealing.STORED, "usage_events", {
            k: v for k, v in sealing.STORED["usage_events"].items() if k != "application"})
        # 0004 and every later migration (undone in reverse, so they come back in order).
        for later in reversed([name for name in schema.MIGRATIONS if name >= "0004"]):
            old.delitem(schema.MIGRATIONS, later)
        old.setitem(sealing.STORED, "lifecycle_events", {
            k: v for k, v in sealing.STORED["lifecycle_events"].items() if k != "phase"})
        with Ledger(path) as ledger:
            ledger.append_lifecycle(kind="token_minted", portfolio_id="p1", token_id="t1",
                                    token_name="old", scopes=[DEMO_READ])
            assert ledger.seal("lifecycle_events") is not None
            ledger.append_lifecycle(kind="token_updated", portfolio_id="p1", token_id="t1",
                                    detail={"scopes": ALL_SCOPES})
            assert ledger.verify().ok
    with Ledger(path) as ledger:  # migrated on open
        assert ledger.verify().ok
        ledger.append_lifecycle(kind="token_revoked", portfolio_id="p1", token_id="t1",
                                request_id="r1", phase="intent")
        ledger.append_lifecycle(kind="token_revoked", portfolio_id="p1", token_id="t1",
                                request_id="r1", phase="outcome")
        ledger.append_lifecycle(kind="token_revoked", portfolio_id="p1", token_id="t2",
                                request_id="r2", phase="intent")
        assert ledger.seal("lifecycle_events") is not None  # old rows and new in one segment
        assert ledger.verify().ok
        events = enb.frames.lifecycle(ledger)
        assert events["kind"].to_list() == ["token_minted", "token_updated", "token_revoked"]
        assert enb.frames.unfinished_changes(ledger)["token_id"].to_list() == ["t2"]
        assert enb.frames.tokens_from_ledger(ledger)["scopes"].to_list() == [ALL_SCOPES]
        # A phase is hashed: changing it (the append-only trigger aside) breaks the chain.
        ledger.append_lifecycle(kind="token_minted", token_id="t3", request_id="r3",
                                phase="intent")
        conn = ledger._conn
        conn.execute("DROP TRIGGER lifecycle_events_no_update")
        conn.execute("UPDATE lifecycle_events SET phase = 'outcome' WHERE request_id = 'r3'")
        assert not ledger.verify().ok
