"""Every operation through the client, against the sandbox over a real socket, as the
owner and as agents with the scope combinations that matter."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from etoro_nb import errors, frames
from etoro_nb.client import EtoroClient
from etoro_nb.ledger import Ledger
from etoro_nb.models import CreatedPortfolio
from etoro_nb.sandbox import SandboxServer
from tests.helpers import ALL_SCOPES, DEMO_READ, DEMO_WRITE, REAL_READ, REAL_WRITE


@pytest.fixture
def created(client: EtoroClient) -> CreatedPortfolio:
    return client.agent_portfolios.create("alpha01", 2000, scopes=ALL_SCOPES,
                                          token_name="bot", description="trend follower")


def test_create_list_and_delete(client: EtoroClient, created: CreatedPortfolio) -> None:
    assert created.portfolio.name == "alpha01"
    assert created.token.name == "bot" and created.token.scopes == tuple(ALL_SCOPES)
    assert created.token.secret.get_secret_value().startswith("etnb_")
    listed = client.agent_portfolios.list()
    assert [p.id for p in listed] == [created.portfolio.id]
    assert listed[0].tokens[0].id == created.token.id
    assert client.agent_portfolios.get(created.portfolio.id).mirror_id == created.portfolio.mirror_id
    client.agent_portfolios.delete(created.portfolio.id)
    assert client.agent_portfolios.list() == []
    with pytest.raises(errors.NotFoundError):
        client.agent_portfolios.delete(created.portfolio.id)


def test_allowed_scopes_are_fetched_once(client: EtoroClient) -> None:
    assert client.agent_portfolios.allowed_scopes() == [DEMO_READ, DEMO_WRITE, REAL_READ,
                                                        REAL_WRITE]
    assert client.scope_cache == [DEMO_READ, DEMO_WRITE, REAL_READ, REAL_WRITE]


def test_mint_update_revoke(client: EtoroClient, created: CreatedPortfolio) -> None:
    pid = created.portfolio.id
    token = client.agent_portfolios.mint_token(pid, "reader", scopes=[DEMO_READ],
                                               ips_whitelist=["127.0.0.1"],
                                               expires_at=timedelta(days=7))
    assert token.ips_whitelist == ("127.0.0.1",)
    assert token.expires_at == client.now() + timedelta(days=7)
    client.agent_portfolios.update_token(pid, token.id, scopes=[DEMO_READ, REAL_READ],
                                         expires_at=None)
    listed = client.agent_portfolios.get(pid).token("reader")
    assert listed is not None
    assert listed.scopes == (DEMO_READ, REAL_READ) and listed.expires_at is None
    client.agent_portfolios.revoke_token(pid, token.id)
    assert client.agent_portfolios.get(pid).token("reader") is None
    with pytest.raises(errors.NotFoundError):
        client.agent_portfolios.revoke_token(pid, token.id)


def test_rotation_keeps_the_old_token_until_confirmed(
    client: EtoroClient, created: CreatedPortfolio, server: SandboxServer
) -> None:
    pid = created.portfolio.id
    token = client.agent_portfolios.mint_token(pid, "rotating", scopes=[DEMO_READ],
                                               ips_whitelist=["127.0.0.1"],
                                               expires_at=timedelta(hours=12))
    server.sandbox.clock.advance(3600)
    rotation = client.agent_portfolios.rotate_token(pid, token.id)
    assert rotation.new.scopes == token.scopes
    assert rotation.new.ips_whitelist == token.ips_whitelist
    assert rotation.new.expires_at == client.now() + timedelta(hours=12)  # same lifetime
    old_agent, new_agent = client.as_agent(token), client.as_agent(rotation.new)
    assert old_agent.me().username == new_agent.me().username == "alpha01"
    rotation.confirm()
    with pytest.raises(errors.AuthenticationError):
        old_agent.me()
    assert new_agent.me().scopes == (DEMO_READ,)
    old_agent.close()
    new_agent.close()


def test_agent_trades_and_the_owner_sees_the_mirror(
    client: EtoroClient, created: CreatedPortfolio
) -> None:
    agent = client.as_agent(created.token)
    real = agent.trading("real")
    placed = real.open_order(1001, amount=1000, leverage=2, stop_loss=1.0)
    info = real.lookup_order(placed.order_id)
    assert info.status.name == "Executed" and info.order_id == placed.order_id
    assert real.lookup_order(reference_id=placed.reference_id).order_id == placed.order_id
    book = real.pnl()
    assert book.credit == 9000 and book.positions[0].leverage == 2
    assert book.unrealized_pnl == pytest.approx(book.positions[0].unrealized.pnl, abs=0.01)
    mirror = client.trading("real").portfolio().mirrors[0]
    assert mirror.positions[0].amount == pytest.approx(200)
    position = book.positions[0]
    closed = real.close_position(position.position_id, position.instrument_id,
                                 units=position.units / 2)
    assert closed.units == pytest.approx(position.units / 2)
    real.close_position(position.position_id, position.instrument_id)
    assert real.portfolio().positions == ()
    trades = real.history(date(2026, 1, 1))
    assert len(trades) == 2 and all(t.position_id == position.position_id for t in trades)
    agent.close()


def test_history_pages_with_progress(client: EtoroClient, created: CreatedPortfolio) -> None:
    demo = client.as_agent(created.token).trading("demo")
    for _ in range(5):
        placed = demo.open_order("BTC", amount=100)
        pos = demo.lookup_order(placed.order_id).position_ids[0]
        demo.close_position(pos, 100000)
    seen: list[tuple[int, int]] = []
    trades = demo.history(date(2026, 3, 1), page_size=2, progress=lambda n, p: seen.append((n, p)))
    assert len(trades) == 5
    assert seen == [(2, 1), (4, 2), (5, 3)]


def test_pending_order_cancel(client: EtoroClient, created: CreatedPortfolio) -> None:
    demo = client.as_agent(created.token).trading("demo")
    ask = client.market.rates([1001])[0].ask
    placed = demo.open_order(1001, amount=100, trigger_rate=round(ask * 0.5, 2))
    assert [o.order_id for o in demo.portfolio().orders] == [placed.order_id]
    demo.cancel_order(placed.order_id)
    assert demo.lookup_order(placed.order_id).status.name == "Cancelled"


def test_market_data(client: EtoroClient) -> None:
    found = client.market.search("apple")
    assert found[0]["symbol"] == "AAPL"
    crypto = client.market.search(fields=["symbol"], instrumentType="Crypto", page_size=50)
    assert {"BTC", "ETH"} <= {i["symbol"] for i in crypto}
    rates = client.market.rates([1, 100000])
    assert [r.instrument_id for r in rates] == [1, 100000] and rates[0].bid < rates[0].ask
    candles = client.market.candles(1001, "OneHour", 24)
    assert len(candles) == 24 and candles[0].start < candles[-1].start
    assert client.market.candles(1001, "OneHour", 24, direction="desc") == list(reversed(candles))
    assert client.market.instrument(" aapl", fields=["symbol"]) == {"symbol": "AAPL"}
    assert client.market.instrument(1001)["symbol"] == "AAPL"  # type: ignore[index]
    assert client.market.instrument("NOSUCH") is None


@pytest.mark.parametrize(
    ("scopes", "allowed"),
    [
        ([DEMO_READ], {"demo.read"}),
        ([DEMO_READ, DEMO_WRITE], {"demo.read", "demo.write"}),
        ([REAL_READ], {"real.read"}),
        ([REAL_READ, REAL_WRITE], {"real.read", "real.write"}),
        ([DEMO_WRITE, REAL_WRITE], {"demo.write", "real.write"}),
    ],
)
def test_agent_scope_combinations(client: EtoroClient, scopes: list[str], allowed: set[str]) -> None:
    created = client.agent_portfolios.create("scoped1", 1000, scopes=scopes)
    agent = client.as_agent(created.token)
    for mode in ("demo", "real"):
        trading = agent.trading(mode)
        for access, call in (("read", trading.portfolio),
                             ("write", lambda t=trading: t.open_order(1001, amount=50))):
            if f"{mode}.{access}" in allowed:
                call()
            else:
                with pytest.raises(errors.ScopeError) as caught:
                    call()
                assert f"trade.{mode}:{access}" in str(caught.value)
    with pytest.raises(errors.PermissionDeniedError):
        agent.agent_portfolios.list()
    agent.close()


def test_me_as_owner_and_agent(client: EtoroClient, created: CreatedPortfolio) -> None:
    assert client.me().username == "sandbox.owner"
    agent = client.as_agent(created.token.secret)
    me = agent.me()
    assert me.gcid == created.portfolio.gcid and me.scopes == tuple(ALL_SCOPES)
    agent.close()


def test_history_progress_bar(client: EtoroClient, created: CreatedPortfolio,
                              capsys: pytest.CaptureFixture[str]) -> None:
    demo = client.as_agent(created.token).trading("demo")
    for _ in range(3):
        pos = demo.lookup_order(demo.open_order(1001, amount=50).order_id).position_ids[0]
        demo.close_position(pos, 1001)
    assert len(demo.history(date(2026, 1, 1), page_size=2, progress=True)) == 3
    bar = capsys.readouterr().err
    assert "demo trade history" in bar and "3 items" in bar


def test_raw_calls_that_change_delegation_reach_the_audit(
        server: SandboxServer, make_client: Callable[..., EtoroClient], tmp_path: Path) -> None:
    """client.call (the playground's path) records delegation changes as the typed methods
    do: a v1 mint, a deprecated v1 update by scope ids, a revoke."""
    ledger = Ledger(tmp_path / "l.sqlite")
    client = make_client(server, ledger=ledger, clock=server.sandbox.clock.now)
    bot = client.agent_portfolios.create("alpha01", 1000, scopes=[DEMO_READ], token_name="t0")
    pid = bot.portfolio.id
    minted = client.call("createAgentPortfolioUserToken", path_params={"agentPortfolioId": pid},
                         body={"userTokenName": "raw", "scopeIds": [201, 203]}).body
    tid = minted["userTokenId"]
    client.call("updateAgentPortfolioUserToken",
                path_params={"agentPortfolioId": pid, "userTokenId": tid},
                body={"scopeIds": [200], "ipsWhitelist": ["10.0.0.1"]})
    grants = frames.grants_from_ledger(ledger).filter(pl.col("token_id") == tid)
    assert grants["scope"].to_list() == [REAL_READ]  # as it stood after the v1 update
    assert frames.tokens_from_ledger(ledger).filter(
        pl.col("token_id") == tid)["ips_whitelist"].to_list() == [["10.0.0.1"]]
    client.call("deleteAgentPortfolioUserToken",
                path_params={"agentPortfolioId": pid, "userTokenId": tid})
    row = frames.tokens(client).filter(pl.col("token_id") == tid).row(0, named=True)
    assert (row["token_name"], row["status"], row["scopes"]) == ("raw", "revoked", [REAL_READ])
    kinds = frames.lifecycle(ledger).filter(pl.col("token_id") == tid)["kind"].to_list()
    assert kinds == ["token_minted", "token_updated", "token_revoked"]
    # A refused change records nothing.
    with pytest.raises(errors.APIError):
        client.call("deleteAgentPortfolioUserToken",
                    path_params={"agentPortfolioId": pid, "userTokenId": tid})
    assert frames.lifecycle(ledger).filter(pl.col("token_id") == tid).height == 3
