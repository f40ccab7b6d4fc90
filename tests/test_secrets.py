"""A canary secret minted at the start of a run appears in no log, repr, exception text or
warning at the end."""

from __future__ import annotations

import logging
import traceback
import warnings
from datetime import date

import pytest

from etoro_nb import errors
from etoro_nb.client import EtoroClient
from etoro_nb.sandbox import Faults, SandboxServer
from tests.helpers import DEMO_READ


def test_canary_secret_is_never_shown(
    server: SandboxServer, client: EtoroClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    with warnings.catch_warnings(record=True) as caught_warnings:
        warnings.simplefilter("always")
        created = client.agent_portfolios.create("canary", 1000, scopes=[DEMO_READ])
        canary = created.token.secret.get_secret_value()
        agent = client.as_agent(created.token)
        texts += [repr(created), str(created), repr(created.token), str(created.token),
                  created.model_dump_json(), repr(agent), repr(client), repr(agent._core),
                  repr(agent.trading("demo")), repr(client.agent_portfolios.list())]
        agent.trading("demo").history(date(2026, 1, 1))
        for failing in (lambda: agent.trading("real").portfolio(),  # scope error
                        lambda: agent.agent_portfolios.list(),      # owner only
                        lambda: agent.trading("demo").lookup_order(424242)):
            try:
                failing()
            except errors.APIError as exc:
                texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc)),
                          repr(exc.body)]
        rotation = client.agent_portfolios.rotate_token(created.portfolio.id, created.token.id)
        texts.append(repr(rotation))
        rotation.confirm()
        try:
            agent.me()
        except errors.AuthenticationError as exc:
            texts += [str(exc), "".join(traceback.format_exception(exc))]
        server.sandbox.set_faults(Faults(drop_after_commit_rate=1.0))
        client._sleep = lambda s: server.sandbox.set_faults(Faults())  # type: ignore[method-assign]
        client.agent_portfolios.mint_token(created.portfolio.id, "again", scopes=[DEMO_READ])
    texts += [caplog.text, *(str(w.message) for w in caught_warnings)]
    assert len(canary) > 40
    for text in texts:
        assert canary not in text
    assert created.token.secret.get_secret_value() == canary  # revealed only on request
