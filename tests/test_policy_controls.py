"""The owner's controls: policies that need consent to loosen and none to tighten, pause and
resume from another process, stopping an agent, all kept in the ledger and seen by the
agent's session before its next order."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import etoro_nb as enb
from etoro_nb.agent import RiskPolicy
from etoro_nb.agent.controls import ControlWatcher
from etoro_nb.client import AsyncEtoroClient
from etoro_nb.errors import (
    ConfigurationError,
    ConsentRequired,
    InvalidInputError,
    NotFoundError,
    PolicyViolation,
    SessionStopped,
)
from etoro_nb.ledger import Ledger
from tests.agent_support import Desk
from tests.helpers import REAL_READ, REAL_WRITE

AAPL = 1001


def _policy_rows(desk: Desk, portfolio_id: str) -> pl.DataFrame:
    return enb.frames.policy_events(desk.ledger, portfolio=portfolio_id).filter(
        pl.col("kind") == "policy_set")


def test_loosening_needs_consent_tightening_does_not_and_both_are_recorded(desk: Desk) -> None:
    bot = desk.portfolio()
    controls = desk.owner.agent_portfolios
    first = controls.set_policy(bot.portfolio.id, RiskPolicy(max_order_amount_usd=500,
                                                             max_leverage=2))
    assert first.version == 1 and first.virtual_balance_usd == 10_000
    tighter = RiskPolicy(max_order_amount_usd=300, max_leverage=2, denied_instruments=["BTC"])
    assert controls.set_policy(bot.portfolio.id, tighter).version == 2  # no consent needed
    looser = RiskPolicy(max_order_amount_usd=800, denied_instruments=["BTC"])
    with pytest.raises(ConsentRequired) as caught:
        controls.set_policy(bot.portfolio.id, looser)
    assert caught.value.loosens == ["max_order_amount_usd: 300.0 -> 800.0",
                                    "max_leverage: 2 -> no limit"]
    assert "consent=" in str(caught.value)
    assert controls.policy(bot.portfolio.id) == tighter  # nothing changed
    made = controls.set_policy(bot.portfolio.id, looser, consent="I accept 800 USD orders")
    assert made.version == 3 and made.policy == looser
    rows = _policy_rows(desk, bot.portfolio.id)
    assert rows["phase"].to_list() == ["outcome", "outcome", "failed", "outcome"]
    assert rows["policy_version"].to_list() == [1, 2, 2, 3]
    assert rows["loosens"].to_list()[2:] == [caught.value.loosens] * 2
    assert rows["consent"].to_list() == [None, None, None, "I accept 800 USD orders"]
    assert desk.ledger.verify().ok


def test_set_policy_checks_its_input_before_recording(desk: Desk,
                                                     make_client: Callable[..., Any]) -> None:
    bot = desk.portfolio()
    controls = desk.owner.agent_portfolios
    with pytest.raises(NotFoundError):
        controls.set_policy("00000000-0000-0000-0000-000000000000", RiskPolicy())
    with pytest.raises(InvalidInputError, match="policy"):
        controls.set_policy(bot.portfolio.id, {"max_leverage": 2})  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="consent"):
        controls.set_policy(bot.portfolio.id, RiskPolicy(), consent="  ")
    assert _policy_rows(desk, bot.portfolio.id).is_empty()
    no_ledger = make_client(desk.server)
    with pytest.raises(ConfigurationError, match="ledger"):
        no_ledger.agent_portfolios.pause(bot.portfolio.id)


def test_tightening_mid_run_holds_the_agents_next_order(desk: Desk) -> None:
    bot = desk.portfolio()
    session = desk.session(bot, RiskPolicy(max_order_amount_usd=1000))
    session.open_order(AAPL, amount=600)
    desk.owner.agent_portfolios.set_policy(bot.portfolio.id, RiskPolicy(max_order_amount_usd=500))
    with pytest.raises(PolicyViolation) as caught:
        session.open_order(AAPL, amount=600)
    assert (caught.value.rule, caught.value.limit) == ("max_order_amount_usd", 500.0)
    refusal = enb.frames.policy_events(desk.ledger).filter(pl.col("kind") == "policy_refused")
    assert refusal["policy_version"].to_list() == [1]  # which owner policy refused it
    session.open_order(AAPL, amount=500)


def _owner_in_another_process(desk: Desk, action: str, portfolio_id: str) -> None:
    """The owner's ``action`` on the same ledger file, from a process of its own."""
    script = (
        "import sys\n"
        "from etoro_nb.client import EtoroClient\n"
        "from etoro_nb.ledger import Ledger\n"
        "base, api, user, path, pid, action = sys.argv[1:]\n"
        "with EtoroClient(base_url=base, api_key=api, user_key=user, environment='sandbox',\n"
        "            ledger=Ledger(path), owns_ledger=True) as owner:\n"
        "    getattr(owner.agent_portfolios, action)(pid)\n")
    creds = desk.server.credentials
    done = subprocess.run([sys.executable, "-c", script, creds.base_url, creds.api_key,
                           creds.user_key, str(desk.ledger_path), portfolio_id, action],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_a_pause_from_another_process_stops_the_agent_before_its_next_order(desk: Desk) -> None:
    bot = desk.portfolio()
    session = desk.session(bot)
    session.open_order(AAPL, amount=100)
    cid = desk.cid(bot)
    _owner_in_another_process(desk, "pause", bot.portfolio.id)
    with pytest.raises(PolicyViolation, match="paused") as caught:
        session.open_order(AAPL, amount=100)
    assert caught.value.rule == "paused"
    assert desk.orders_received(cid) == 1  # the sandbox never saw the second order
    _owner_in_another_process(desk, "resume", bot.portfolio.id)
    session.open_order(AAPL, amount=100)
    assert desk.orders_received(cid) == 2
    kinds = enb.frames.policy_events(desk.ledger, portfolio=bot.portfolio.id)["kind"].to_list()
    assert kinds.count("agent_paused") == kinds.count("agent_resumed") == 1


def test_stop_agent_pauses_then_revokes_every_token(desk: Desk) -> None:
    bot = desk.portfolio()
    spare = desk.owner.agent_portfolios.mint_token(bot.portfolio.id, "spare",
                                                   scopes=[REAL_READ, REAL_WRITE])
    session = desk.session(bot)
    session.open_order(AAPL, amount=100)
    revoked = desk.owner.agent_portfolios.stop_agent(bot.portfolio.id, reason="drawdown")
    assert sorted(revoked) == sorted([bot.token.id, spare.id])
    assert desk.owner.agent_portfolios.get(bot.portfolio.id).tokens == ()
    controls = desk.owner.agent_portfolios.controls(bot.portfolio.id)
    assert controls.paused and controls.reason == "drawdown"
    with pytest.raises(PolicyViolation, match="drawdown"):  # paused: refused before sending
        session.open_order(AAPL, amount=100)
    desk.owner.agent_portfolios.resume(bot.portfolio.id)
    with pytest.raises(SessionStopped, match="401"):  # the token is gone: the kill switch
        session.open_order(AAPL, amount=100)
    lifecycle = enb.frames.lifecycle(desk.ledger)
    assert lifecycle.filter(pl.col("kind") == "token_revoked").height == 2


def test_the_watcher_reads_the_controls_again_only_when_they_change(desk: Desk) -> None:
    bot = desk.portfolio()
    other = Ledger(desk.ledger_path)  # the owner's process: another connection to the file
    watcher = ControlWatcher(other, bot.portfolio.id)
    seen = watcher.current()
    session = desk.session(bot)
    session.open_order(AAPL, amount=100)  # other events come and go
    assert watcher.current() is seen  # no owner event: not read again
    desk.owner.agent_portfolios.pause(bot.portfolio.id)
    assert watcher.current().paused
    other.close()


def test_controls_sealed_away_still_reach_the_session(desk: Desk) -> None:
    bot = desk.portfolio()
    owner = desk.owner.agent_portfolios
    owner.set_policy(bot.portfolio.id, RiskPolicy(max_order_amount_usd=200))
    desk.ledger.seal("lifecycle_events")
    session = desk.session(bot)
    assert session.controls is not None and session.controls.version == 1
    owner.pause(bot.portfolio.id)
    desk.ledger.seal("lifecycle_events")  # the pause is in a segment before the session looks
    with pytest.raises(PolicyViolation, match="paused"):
        session.open_order(AAPL, amount=100)
    assert desk.ledger.verify().ok


def test_the_async_client_has_the_same_controls(desk: Desk) -> None:
    bot = desk.portfolio()
    creds = desk.server.credentials

    async def run() -> list[str]:
        async with AsyncEtoroClient(base_url=creds.base_url, api_key=creds.api_key,
                               user_key=creds.user_key, environment="sandbox",
                               ledger=desk.ledger) as owner:
            controls = owner.agent_portfolios
            await controls.set_policy(bot.portfolio.id, RiskPolicy(max_leverage=1))
            with pytest.raises(ConsentRequired):
                await controls.set_policy(bot.portfolio.id, RiskPolicy())
            await controls.pause(bot.portfolio.id)
            assert (await controls.controls(bot.portfolio.id)).paused
            await controls.resume(bot.portfolio.id)
            assert await controls.policy(bot.portfolio.id) == RiskPolicy(max_leverage=1)
            return await controls.stop_agent(bot.portfolio.id)

    assert asyncio.run(run()) == [bot.token.id]


def test_the_readme_risk_boundaries_example_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Risk boundaries"):]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    for name in ("ETORO_API_KEY", "ETORO_USER_KEY", "ETORO_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), "README.md", "exec"), namespace)
    client, session = namespace["client"], namespace["session"]
    try:
        assert "max_order_amount_usd 500.0 800.0" in capsys.readouterr().out
        with pytest.raises(PolicyViolation, match="paused"):  # stop_agent paused it first
            session.open_order("AAPL", amount=10)
        assert client.agent_portfolios.get(namespace["bot"].portfolio.id).tokens == ()
    finally:
        client.close()
