"""polars loaders: exact dtypes, and values that match what the sandbox did."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from etoro_nb import errors, frames
from etoro_nb.client import EtoroClient
from etoro_nb.ledger import Ledger
from etoro_nb.sandbox import SandboxServer
from tests.helpers import ALL_SCOPES, DEMO_READ, DEMO_WRITE, REAL_READ, REAL_WRITE

UTC_US = pl.Datetime("us", "UTC")


@pytest.fixture
def run(server: SandboxServer, tmp_path: Path,
        make_client: Callable[..., EtoroClient]) -> dict[str, object]:
    """A scripted run: two portfolios, agents that trade, get refused, and are revoked."""
    ledger = Ledger(tmp_path / "l.sqlite")
    client = make_client(server, ledger=ledger, clock=server.sandbox.clock.now)
    alpha = client.agent_portfolios.create("alpha01", 2000, scopes=ALL_SCOPES, token_name="a1",
                                           expires_at=timedelta(days=30))
    beta = client.agent_portfolios.create("beta0001", 1000, scopes=[DEMO_READ, DEMO_WRITE],
                                          token_name="b1")
    short = client.agent_portfolios.mint_token(alpha.portfolio.id, "short", scopes=[DEMO_READ],
                                               expires_at=timedelta(hours=1))
    a, b = client.as_agent(alpha.token), client.as_agent(beta.token)
    placed = a.trading("real").open_order(1001, amount=500)            # real:write
    pos = a.trading("real").lookup_order(placed.order_id).position_ids[0]  # real:read
    a.trading("real").close_position(pos, 1001)                        # real:write
    a.trading("real").open_order("BTC", amount=800)                    # real:write
    a.trading("demo").portfolio()                                      # demo:read
    b.trading("demo").open_order(1002, amount=100)                     # demo:write
    for _ in range(2):
        with pytest.raises(errors.ScopeError):
            b.trading("real").portfolio()                              # real:read refused
    client.agent_portfolios.revoke_token(beta.portfolio.id, beta.token.id)
    with pytest.raises(errors.AuthenticationError):
        b.me()
    server.sandbox.clock.advance(2 * 3600)  # "short" expires
    return {"client": client, "ledger": ledger, "alpha": alpha, "beta": beta, "short": short,
            "agent": a}


def test_dtypes_are_declared(run: dict[str, object]) -> None:
    client, ledger = run["client"], run["ledger"]
    assert isinstance(client, EtoroClient) and isinstance(ledger, Ledger)
    agent = run["agent"]
    assert isinstance(agent, EtoroClient)
    loaded = {
        "portfolios": (frames.portfolios(client), frames.PORTFOLIOS_SCHEMA),
        "tokens": (frames.tokens(client), frames.TOKENS_SCHEMA),
        "scope_grants": (frames.scope_grants(client), frames.GRANTS_SCHEMA),
        "usage": (frames.usage(ledger), frames.USAGE_SCHEMA),
        "lifecycle": (frames.lifecycle(ledger, now=client.now()), frames.LIFECYCLE_SCHEMA),
        "trades": (frames.trades(agent), frames.TRADES_SCHEMA),
        "positions": (frames.positions(agent), frames.POSITIONS_SCHEMA),
        "accounting": (frames.accounting(client), frames.ACCOUNTING_SCHEMA),
    }
    for name, (frame, schema) in loaded.items():
        assert isinstance(frame, pl.DataFrame)
        assert frame.schema == schema, name
        assert frame.height > 0, name
    assert frames.usage(ledger).schema["ts"] == UTC_US
    assert frames.tokens(client).schema["scopes"] == pl.List(pl.String)


def test_empty_frames_keep_their_schema(client: EtoroClient, tmp_path: Path) -> None:
    assert frames.portfolios(client).schema == frames.PORTFOLIOS_SCHEMA
    assert frames.tokens(client).height == 0
    ledger = Ledger(tmp_path / "empty.sqlite")
    assert frames.usage(ledger).schema == frames.USAGE_SCHEMA
    assert frames.lifecycle(ledger).schema == frames.LIFECYCLE_SCHEMA


def test_token_status_and_grants(run: dict[str, object]) -> None:
    client = run["client"]
    assert isinstance(client, EtoroClient)
    tokens = frames.tokens(client).sort("token_name")
    status = dict(zip(tokens["token_name"], tokens["status"], strict=True))
    assert status == {"a1": "active", "b1": "revoked", "short": "expired"}
    assert tokens.filter(token_name="a1")["days_to_expiry"].item() == pytest.approx(
        30 - 2 / 24)
    grants = frames.scope_grants(client)
    assert grants.group_by("token_name").len().sort("token_name").rows() == [
        ("a1", 4), ("b1", 2), ("short", 1)]


def test_usage_counts_match_what_the_sandbox_did(run: dict[str, object]) -> None:
    ledger, alpha, beta = run["ledger"], run["alpha"], run["beta"]
    assert isinstance(ledger, Ledger)
    usage = frames.usage(ledger, phase="outcome")
    assert isinstance(usage, pl.DataFrame)
    agent = usage.filter(pl.col("principal") == "agent")
    counts = (agent.group_by("token_id", "scope_required", "status").len()
              .sort("token_id", "scope_required", "status").rows())
    a, b = alpha.token.id, beta.token.id  # type: ignore[attr-defined]
    assert sorted(counts, key=str) == sorted([
        (a, DEMO_READ, 200, 1), (a, REAL_READ, 200, 1), (a, REAL_WRITE, 200, 3),
        (b, DEMO_WRITE, 200, 1), (b, REAL_READ, 403, 2), (b, None, 401, 1),
    ], key=str)
    every = frames.usage(ledger)
    assert isinstance(every, pl.DataFrame)
    assert every.filter(phase="intent").height == every.filter(phase="outcome").height
    assert frames.requests(ledger).height == every.filter(phase="outcome").height
    only_alpha = frames.usage(ledger, portfolio=alpha.portfolio.id)  # type: ignore[attr-defined]
    assert isinstance(only_alpha, pl.DataFrame)
    assert set(only_alpha.filter(principal="agent")["token_id"]) == {a}
    # The owner's call on alpha (minting "short") belongs to alpha too.
    owner_ops = set(only_alpha.filter(principal="owner")["operation_id"])
    assert len(owner_ops) == 1 and "Token" in owner_ops.pop()


def test_least_privilege(run: dict[str, object]) -> None:
    client, ledger, alpha, beta = run["client"], run["ledger"], run["alpha"], run["beta"]
    assert isinstance(client, EtoroClient) and isinstance(ledger, Ledger)
    outcomes = frames.usage(ledger, phase="outcome")
    assert isinstance(outcomes, pl.DataFrame)
    lp = frames.least_privilege(frames.scope_grants(client), outcomes)
    a = lp.filter(pl.col("token_id") == alpha.token.id).sort("scope")  # type: ignore[attr-defined]
    assert dict(zip(a["scope"], a["verdict"], strict=True)) == {
        DEMO_READ: "needed", DEMO_WRITE: "unused", REAL_READ: "needed", REAL_WRITE: "needed"}
    assert a["suggested_scopes"][0].to_list() == [DEMO_READ, REAL_READ, REAL_WRITE]
    b = lp.filter(pl.col("token_id") == beta.token.id).sort("scope")  # type: ignore[attr-defined]
    assert b.rows(named=True)[-1] | {"suggested_scopes": None} == {
        "portfolio_id": beta.portfolio.id, "token_id": beta.token.id,  # type: ignore[attr-defined]
        "token_name": "b1", "scope": REAL_READ, "granted": False, "used": 0, "refused": 2,
        "verdict": "missing", "suggested_scopes": None}


def test_lifecycle_derives_expiry(run: dict[str, object]) -> None:
    client, ledger = run["client"], run["ledger"]
    assert isinstance(client, EtoroClient) and isinstance(ledger, Ledger)
    events = frames.lifecycle(ledger, now=client.now())
    kinds = events["kind"].to_list()
    assert kinds.count("portfolio_created") == 2 and kinds.count("token_minted") == 3
    assert kinds.count("token_revoked") == 1
    revoked = events.filter(kind="token_revoked")
    assert revoked["token_name"].to_list() == ["b1"]  # named after its mint, not left null
    expired = events.filter(kind="token_expired")
    assert expired["token_name"].to_list() == ["short"]
    short = run["short"]
    assert expired["ts"].item() == short.expires_at  # type: ignore[attr-defined]


def test_accounting_isolates_each_agent(run: dict[str, object]) -> None:
    client = run["client"]
    assert isinstance(client, EtoroClient)
    acc = frames.accounting(client).sort("name")
    alpha, beta = acc.rows(named=True)
    assert alpha["investment_usd"] == 2000 and beta["investment_usd"] == 1000
    assert alpha["open_positions"] == 1 and alpha["trade_count"] == 1
    assert beta["open_positions"] == 0 and beta["trade_count"] == 0
    assert beta["mirror_value_usd"] == 1000  # its trades were demo: nothing mirrored
    owner_book = client.trading("real").pnl().mirrors
    mirror = next(m for m in owner_book if m.mirror_id == alpha["mirror_id"])
    assert alpha["realized_pnl_usd"] == mirror.closed_positions_net_profit
    trades = frames.trades(client, since=date(2026, 1, 1))
    assert trades["mirror_id"].to_list() == [alpha["mirror_id"]]


def test_value_snapshot_reads_mirror_and_agent_sides(run: dict[str, object]) -> None:
    client, agent, alpha = run["client"], run["agent"], run["alpha"]
    assert isinstance(client, EtoroClient) and isinstance(agent, EtoroClient)
    portfolio_id = alpha.portfolio.id  # type: ignore[attr-defined]
    snap = frames.value_snapshot(client, agents={portfolio_id: agent}).sort("name")
    assert snap.schema == frames.VALUE_HISTORY_SCHEMA
    assert snap["ts"].to_list() == [client.now(), client.now()]
    a, b = snap.rows(named=True)
    acc = frames.accounting(client).sort("name")
    assert a["mirror_value_usd"] == acc["mirror_value_usd"][0]
    assert a["pnl_usd"] == pytest.approx(a["mirror_value_usd"] - 2000)
    # The mirror copies at investment / virtual balance: its P&L is the agent's, scaled.
    assert a["agent_value_usd"] != 10_000
    assert a["pnl_usd"] == pytest.approx((a["agent_value_usd"] - 10_000) * 2000 / 10_000, abs=0.05)
    # No agent client given for beta: its account value is unknown to the owner, not guessed.
    assert b["name"] == "beta0001" and b["agent_value_usd"] is None
    assert b["mirror_value_usd"] == 1000 and b["pnl_usd"] == 0


def test_revoked_token_keeps_its_last_grant(server: SandboxServer, tmp_path: Path,
                                             make_client: Callable[..., EtoroClient]) -> None:
    client = make_client(server, ledger=Ledger(tmp_path / "l.sqlite"),
                         clock=server.sandbox.clock.now)
    bot = client.agent_portfolios.create("alpha01", 1000, scopes=[DEMO_READ, DEMO_WRITE],
                                         token_name="a1")
    client.agent_portfolios.update_token(bot.portfolio.id, bot.token.id, scopes=[DEMO_READ])
    client.agent_portfolios.revoke_token(bot.portfolio.id, bot.token.id)
    row = frames.tokens(client).row(0, named=True)
    assert row["status"] == "revoked" and row["scopes"] == [DEMO_READ]
    assert row["portfolio_name"] == "alpha01" and row["revoked_at"] is not None


def test_owner_calls_on_a_portfolio_name_it(run: dict[str, object]) -> None:
    ledger, beta = run["ledger"], run["beta"]
    assert isinstance(ledger, Ledger)
    owner = frames.usage(ledger, phase="outcome").filter(principal="owner")
    addressed = owner.filter(pl.col("route").str.contains("{agentPortfolioId}", literal=True))
    assert not addressed.is_empty()
    revoke = addressed.filter(pl.col("method") == "DELETE")
    assert revoke["portfolio_id"].to_list() == [beta.portfolio.id]  # type: ignore[attr-defined]
    # Calls that address no portfolio (listing, creating, /me) name none.
    others = owner.filter(~pl.col("route").str.contains("{agentPortfolioId}", literal=True))
    assert others["portfolio_id"].null_count() == others.height > 0
