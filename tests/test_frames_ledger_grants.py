"""Tokens and grants derived from a ledger's lifecycle alone (``frames.tokens_from_ledger``,
``frames.grants_from_ledger``): they agree with what the API reports, and audit a ledger
file with no client."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from etoro_nb import errors, frames
from etoro_nb.client import EtoroClient
from etoro_nb.ledger import Ledger
from etoro_nb.ledger.synth import synthesize
from etoro_nb.sandbox import SandboxServer
from tests.helpers import ALL_SCOPES, DEMO_READ, DEMO_WRITE, REAL_READ, REAL_WRITE

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


def _us(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000)


def _grant_rows(frame: pl.DataFrame) -> list[tuple[Any, ...]]:
    return sorted(frame.select(list(frames.GRANTS_SCHEMA)).rows(), key=str)


@pytest.fixture
def delegated(server: SandboxServer, tmp_path: Path,
              make_client: Callable[..., EtoroClient]) -> tuple[EtoroClient, Ledger, dict[str, Any]]:
    """A sandbox run that exercises every lifecycle event the client records."""
    ledger = Ledger(tmp_path / "l.sqlite")
    client = make_client(server, ledger=ledger, clock=server.sandbox.clock.now)
    ap = client.agent_portfolios
    alpha = ap.create("alpha01", 2000, scopes=ALL_SCOPES, token_name="trader",
                      expires_at=timedelta(days=30))
    beta = ap.create("beta0001", 1000, scopes=[DEMO_READ, DEMO_WRITE], token_name="b1")
    gamma = ap.create("gamma001", 500, scopes=[REAL_READ], token_name="g1")
    narrowed = ap.mint_token(alpha.portfolio.id, "narrowed", scopes=ALL_SCOPES,
                             ips_whitelist=["10.0.0.1"])
    short = ap.mint_token(alpha.portfolio.id, "short", scopes=[DEMO_READ],
                          expires_at=timedelta(hours=1))
    soon = ap.mint_token(beta.portfolio.id, "soon", scopes=[REAL_READ, REAL_WRITE])
    server.sandbox.clock.advance(600)
    ap.update_token(alpha.portfolio.id, narrowed.id, scopes=[REAL_READ, DEMO_READ],
                    ips_whitelist=[])
    ap.update_token(beta.portfolio.id, soon.id, expires_at=timedelta(days=3))
    ap.revoke_token(beta.portfolio.id, beta.token.id)
    ap.delete(gamma.portfolio.id)
    with pytest.raises(errors.AuthenticationError):
        client.as_agent(beta.token).me()
    server.sandbox.clock.advance(2 * 3600)  # "short" expires
    ids = {"alpha": alpha, "beta": beta, "gamma": gamma, "narrowed": narrowed,
           "short": short, "soon": soon}
    return client, ledger, ids


def test_grants_agree_with_the_api(delegated: tuple[EtoroClient, Ledger, dict[str, Any]]) -> None:
    client, ledger, _ = delegated
    from_ledger = frames.grants_from_ledger(ledger, now=client.now())
    assert from_ledger.schema == frames.GRANTS_SCHEMA
    assert _grant_rows(from_ledger) == _grant_rows(frames.scope_grants(client))


def test_tokens_agree_with_the_api(delegated: tuple[EtoroClient, Ledger, dict[str, Any]]) -> None:
    client, ledger, ids = delegated
    mine = frames.tokens_from_ledger(ledger, now=client.now())
    assert mine.schema == frames.TOKENS_SCHEMA
    api = frames.tokens(client)
    columns = ["portfolio_id", "portfolio_name", "token_id", "token_name", "ips_whitelist",
               "created_at", "expires_at", "revoked_at", "status", "days_to_expiry"]
    key = ["token_id"]
    assert (mine.select(columns).sort(key).rows()
            == api.select(columns).sort(key).rows())
    by_id = {r["token_id"]: r for r in mine.iter_rows(named=True)}
    api_scopes = {r["token_id"]: sorted(r["scopes"]) for r in api.iter_rows(named=True)}
    assert {t: sorted(r["scopes"]) for t, r in by_id.items()} == api_scopes
    status = {r["token_name"]: r["status"] for r in mine.iter_rows(named=True)}
    assert status == {"trader": "active", "b1": "revoked", "g1": "revoked",
                      "narrowed": "active", "short": "expired", "soon": "expiring"}
    narrowed = by_id[ids["narrowed"].id]
    assert sorted(narrowed["scopes"]) == [DEMO_READ, REAL_READ]
    assert narrowed["ips_whitelist"] == []
    assert narrowed["application"] is None and narrowed["client_id"] is None
    assert by_id[ids["gamma"].token.id]["revoked_at"] is not None  # its portfolio was deleted


def test_until_gives_the_grants_as_they_stood(
        delegated: tuple[EtoroClient, Ledger, dict[str, Any]]) -> None:
    _, ledger, ids = delegated
    before = T0 + timedelta(seconds=300)  # after the mints, before the updates and revokes
    then = frames.tokens_from_ledger(ledger, until=before)
    by_id = {r["token_id"]: r for r in then.iter_rows(named=True)}
    assert sorted(by_id[ids["narrowed"].id]["scopes"]) == sorted(ALL_SCOPES)
    assert by_id[ids["narrowed"].id]["ips_whitelist"] == ["10.0.0.1"]
    assert by_id[ids["beta"].token.id]["status"] == "active"
    assert by_id[ids["short"].id]["status"] == "expiring"  # now defaults to until
    assert by_id[ids["soon"].id]["expires_at"] is None
    grants = frames.grants_from_ledger(ledger, until=before)
    assert grants.filter(pl.col("token_id") == ids["narrowed"].id).height == 4
    nothing = frames.grants_from_ledger(ledger, until=T0)
    assert nothing.is_empty() and nothing.schema == frames.GRANTS_SCHEMA


def test_last_grant_of_a_revoked_token_is_its_updated_one(tmp_path: Path) -> None:
    """Events as a client writes them: an update's changes live in ``detail``."""
    ledger = Ledger(tmp_path / "l.sqlite")
    ledger.append_lifecycle(kind="portfolio_created", portfolio_id="p1", ts_us=_us(T0),
                            detail={"name": "alpha01", "investment_usd": 1000})
    ledger.append_lifecycle(kind="token_minted", portfolio_id="p1", token_id="t1",
                            token_name="bot", scopes=ALL_SCOPES, ips_whitelist=["1.2.3.4"],
                            ts_us=_us(T0), expires_at_us=_us(T0 + timedelta(days=30)))
    ledger.append_lifecycle(kind="token_updated", portfolio_id="p1", token_id="t1",
                            ts_us=_us(T0 + timedelta(hours=1)),
                            detail={"token_id": "t1", "scopes": [REAL_READ],
                                    "expires_at": "+3600s", "ips_whitelist": None})
    ledger.append_lifecycle(kind="token_updated", portfolio_id="p9", token_id="unknown",
                            ts_us=_us(T0), detail={"scopes": [REAL_READ]})
    ledger.append_lifecycle(kind="token_revoked", portfolio_id="p1", token_id="t1",
                            ts_us=_us(T0 + timedelta(days=2)))
    ledger.append_lifecycle(kind="token_minted", portfolio_id="p2", token_id="t2",
                            token_name="orphan", scopes=[DEMO_READ], ts_us=_us(T0))
    ledger.append_lifecycle(kind="token_expired", portfolio_id="p2", token_id="t2",
                            ts_us=_us(T0 + timedelta(days=1)))
    tokens = frames.tokens_from_ledger(ledger, now=T0 + timedelta(days=3)).sort("token_id")
    t1, t2 = tokens.rows(named=True)
    assert (t1["scopes"], t1["ips_whitelist"], t1["status"]) == ([REAL_READ], [], "revoked")
    assert t1["expires_at"] == T0 + timedelta(hours=2)
    assert t1["revoked_at"] == T0 + timedelta(days=2) and t1["portfolio_name"] == "alpha01"
    assert (t2["portfolio_name"], t2["status"]) == (None, "expired")
    assert t2["expires_at"] == T0 + timedelta(days=1)
    grants = frames.grants_from_ledger(ledger, now=T0 + timedelta(days=3))
    assert _grant_rows(grants) == [("p1", "alpha01", "t1", "bot", REAL_READ, "revoked"),
                                   ("p2", None, "t2", "orphan", DEMO_READ, "expired")]


def test_empty_ledger_gives_empty_frames(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "empty.sqlite")
    assert frames.tokens_from_ledger(ledger).schema == frames.TOKENS_SCHEMA
    grants = frames.grants_from_ledger(ledger)
    assert grants.is_empty() and grants.schema == frames.GRANTS_SCHEMA


def test_least_privilege_of_a_synthetic_ledger_matches_its_generator(tmp_path: Path) -> None:
    """synth refuses (403) exactly the scopes a token was not granted: the grants derived
    from its lifecycle must explain every refusal and every use."""
    ledger = synthesize(tmp_path / "synth.sqlite", events=20_000, seed=5, portfolios=6,
                        days=10)
    grants = frames.grants_from_ledger(ledger, now=datetime(2026, 1, 15, tzinfo=UTC))
    assert grants["status"].is_in(["active", "expiring", "expired", "revoked"]).all()
    outcomes = frames.usage(ledger, phase="outcome")
    assert isinstance(outcomes, pl.DataFrame)
    lp = frames.least_privilege(grants, outcomes)
    assert lp.filter(pl.col("refused") > 0)["granted"].not_().all()
    assert lp.filter(pl.col("used") > 0)["granted"].all()
    assert lp["token_name"].null_count() == 0  # every used token is known from the ledger
    assert set(lp["verdict"]) <= {"needed", "unused", "missing"}
    assert lp.filter(verdict="missing").height > 0 and lp.filter(verdict="needed").height > 0


def test_synthetic_agents_are_refused_after_their_grant_ends(tmp_path: Path) -> None:
    """As on eToro: no request succeeds after its token's revocation or expiry; an expired
    token is rotated (same scopes, a new token) and its agent carries on with that one."""
    ledger = synthesize(tmp_path / "synth.sqlite", events=40_000, seed=11, portfolios=5,
                        days=60)
    last = frames.usage(ledger)["ts"].max()
    assert isinstance(last, datetime)
    tokens = frames.tokens_from_ledger(ledger, now=last)
    ended = tokens.select("token_id", "token_name", "scopes",
                          pl.coalesce("revoked_at", "expires_at").alias("ended_at"))
    outcomes = frames.usage(ledger, phase="outcome")
    assert isinstance(outcomes, pl.DataFrame)
    after = outcomes.join(ended, on="token_id").filter(pl.col("ts") >= pl.col("ended_at"))
    assert after.height > 0 and set(after["status"]) == {401}
    rotated = tokens.filter(pl.col("token_name").str.contains("-r", literal=True))
    assert rotated.height > 0
    for row in rotated.iter_rows(named=True):
        base = row["token_name"].split("-r")[0]
        same_portfolio = tokens.filter((pl.col("portfolio_id") == row["portfolio_id"])
                                       & (pl.col("token_name") == base))
        assert same_portfolio["scopes"].to_list() == [row["scopes"]]


def test_synthetic_owners_grant_too_much_and_too_little(tmp_path: Path) -> None:
    """The synthetic ledger has what an audit looks for: grants never used, and calls
    refused for scopes never granted, beside the grants in use."""
    ledger = synthesize(tmp_path / "synth.sqlite", events=20_000, seed=3, portfolios=8)
    outcomes = frames.usage(ledger, phase="outcome")
    assert isinstance(outcomes, pl.DataFrame)
    verdicts = frames.least_privilege(frames.grants_from_ledger(ledger), outcomes)
    counts = dict(verdicts.group_by("verdict").len().iter_rows())
    assert {"needed", "unused", "missing"} <= set(counts)
    assert counts["needed"] > counts["unused"] > 0
