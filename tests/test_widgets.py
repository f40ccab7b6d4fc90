"""Panels driven headless through widget values and .click(), checked against the sandbox."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ipywidgets as w
import polars as pl
import pytest

from etoro_nb import frames
from etoro_nb.client import EtoroClient
from etoro_nb.ledger import Ledger
from etoro_nb.report import PLOTLY_MIME
from etoro_nb.sandbox import SandboxServer
from tests.helpers import DEMO_READ, DEMO_WRITE, REAL_READ, REAL_WRITE
from widgets import ActivityPanel, DelegationPanel, PlaygroundPanel, PortfolioPanel
from widgets.figure import Chart


@pytest.fixture
def owner_client(server: SandboxServer, tmp_path: Path,
                 make_client: Callable[..., EtoroClient]) -> EtoroClient:
    return make_client(server, ledger=Ledger(tmp_path / "l.sqlite"),
                       clock=server.sandbox.clock.now)


def _walk(widget: Any) -> Iterator[w.Widget]:
    """Every widget in a panel's tree."""
    if isinstance(widget, w.Widget):
        yield widget
        for child in getattr(widget, "children", ()):
            yield from _walk(child)


def _state(panel: object) -> str:
    """What the panel's widgets hold (the state a browser or a saved notebook gets)."""
    return json.dumps([part.get_state() for part in _walk(panel)], default=str)


def test_portfolio_panel_creates_with_consent_then_deletes(owner_client: EtoroClient) -> None:
    panel = PortfolioPanel(owner_client)
    assert "SANDBOX" in panel.badge.value
    panel.name.value = "abc"
    assert "6 to 10" in panel.name_hint.value  # live validation, before anything is sent
    panel.create_button.click()
    assert "name" in panel.form_hint.value and owner_client.agent_portfolios.list() == []
    panel.name.value = "alpha01"
    panel.investment.value = 2500
    panel.scopes[DEMO_READ].value = True
    panel.scopes[REAL_WRITE].value = True
    panel.ips.value = "127.0.0.1"
    panel.create_button.click()
    # Trading authority needs a confirmation in plain words first.
    assert panel.confirm.pending and "real money" not in panel.confirm.message.value
    assert "open and close positions on its real account" in panel.confirm.message.value
    assert "2,500.00 USD" in panel.confirm.message.value
    assert owner_client.agent_portfolios.list() == []
    panel.confirm.confirm.click()
    created = owner_client.agent_portfolios.list()
    assert [p.name for p in created] == ["alpha01"]
    token = created[0].tokens[0]
    assert token.scopes == (DEMO_READ, REAL_WRITE) and token.ips_whitelist == ("127.0.0.1",)
    assert "alpha01" in panel.table.column("Name")
    secret = panel.secret.secret.value
    assert secret.startswith("etnb_") and owner_client.as_agent(secret).trading(
        "demo").portfolio().credit == 10_000
    # A notebook's text output of the panel, shown while the secret is up, holds no secret.
    assert repr(panel) == "<PortfolioPanel · SANDBOX · simulated money · 1 agent portfolio(s)>"
    # Nor does any part of it a cell might end in: the reveal, its field, the box around it.
    for part in (panel.secret, panel.secret.secret, *panel.secret.children, panel.children):
        assert secret not in repr(part)
    panel.secret.dismiss.click()
    assert secret not in _state(panel)
    # The consent was recorded with the lifecycle event.
    assert owner_client.ledger is not None
    events = frames.lifecycle(owner_client.ledger)
    minted = events.filter(kind="token_minted")["detail"].item()
    assert "real account" in json.loads(minted)["consent"]
    # Delete, behind a confirmation that says what will happen.
    panel.delete_choice.value = created[0].id
    panel.delete_button.click()
    message = panel.confirm.message.value
    assert "revokes its 1 token" in message and "credits its value" in message
    assert owner_client.agent_portfolios.list() != []
    panel.confirm.confirm.click()
    assert owner_client.agent_portfolios.list() == []
    assert "Deleted alpha01" in panel.feedback.value


def test_portfolio_panel_shows_api_errors_inline(owner_client: EtoroClient) -> None:
    owner_client.agent_portfolios.create("alpha01", 500, scopes=[DEMO_READ])
    panel = PortfolioPanel(owner_client)
    panel.name.value = "ALPHA01"
    panel.scopes[DEMO_READ].value = True
    # The name is known to be taken (names are compared without case) before anything is sent.
    assert "already taken" in panel.name_hint.value
    panel.create_button.click()
    assert "already taken" in panel.form_hint.value and not panel.confirm.pending
    # What the server refuses is shown in one format: status, code, message, request id.
    panel.name.value = "gamma01"
    panel.investment.value = 900_000_000
    panel.create_button.click()  # read-only grant: no consent step
    text = panel.feedback.value
    assert "400 ValidationFailed: " in text and "(request id " in text
    assert "Traceback" not in text and "ValidationFailed: ValidationFailed" not in text
    assert [p.name for p in owner_client.agent_portfolios.list()] == ["alpha01"]


def test_delegation_panel_mints_edits_and_revokes(owner_client: EtoroClient,
                                                  server: SandboxServer) -> None:
    created = owner_client.agent_portfolios.create("alpha01", 1000,
                                                   scopes=[DEMO_READ, REAL_READ],
                                                   token_name="first")
    owner_client.as_agent(created.token).trading("demo").portfolio()  # uses demo:read only
    panel = DelegationPanel(owner_client)
    assert panel.portfolio.value == created.portfolio.id
    assert "first" in panel.table.column("Token")
    panel.mint_name.value = "trader"
    panel.mint_scopes[DEMO_READ].value = True
    panel.mint_scopes[DEMO_WRITE].value = True
    panel.mint_button.click()
    assert panel.confirm.pending and "demo practice account" in panel.confirm.message.value
    panel.confirm.confirm.click()
    minted = owner_client.agent_portfolios.get(created.portfolio.id).token("trader")
    assert minted is not None and minted.scopes == (DEMO_READ, DEMO_WRITE)
    secret = panel.secret.secret.value
    assert owner_client.as_agent(secret).me().username == "alpha01"
    assert repr(panel) == ("<DelegationPanel · SANDBOX · simulated money · "
                           "portfolio alpha01: 2 active>")
    panel.secret.dismiss.click()
    assert secret not in _state(panel)
    # Widening to real:write needs consent; narrowing does not.
    panel.token.value = minted.id
    panel.edit_scopes[REAL_WRITE].value = True
    panel.update_button.click()
    assert panel.confirm.pending
    panel.confirm.confirm.click()
    after = owner_client.agent_portfolios.get(created.portfolio.id).token("trader")
    assert after is not None and REAL_WRITE in after.scopes
    panel.token.value = minted.id
    panel.edit_scopes[REAL_WRITE].value = False
    panel.update_button.click()
    assert not panel.confirm.pending
    after = owner_client.agent_portfolios.get(created.portfolio.id).token("trader")
    assert after is not None and after.scopes == (DEMO_READ, DEMO_WRITE)
    # "first" used demo:read but never real:read: over-privileged. "trader" has not been
    # used at all yet, so it is not flagged.
    assert sum("over-privileged: 1 unused" in f for f in panel.table.column("Flags")) == 1
    # Revoke behind a confirmation.
    panel.token.value = created.token.id
    panel.revoke_button.click()
    assert "very next request" in panel.confirm.message.value
    panel.confirm.confirm.click()
    assert owner_client.agent_portfolios.get(created.portfolio.id).token("first") is None
    statuses = frames.tokens(owner_client)
    assert statuses.filter(pl.col("token_name") == "first")["status"].item() == "revoked"
    assert "revoked" in panel.table.column("Status")


def test_playground_sends_any_operation_and_records_it(owner_client: EtoroClient) -> None:
    panel = PlaygroundPanel(owner_client)
    assert len(panel.operation.options) == 34
    panel.operation.value = "createAgentPortfolioV2"
    body = json.loads(panel.body.value)  # prefilled from the document's example
    assert {"agentPortfolioName", "investmentAmountInUsd", "userTokenName"} <= set(body)
    body.update(agentPortfolioName="play001", scopeNames=[DEMO_READ])
    body.pop("ipsWhitelist", None)
    body.pop("expiresAt", None)
    panel.body.value = json.dumps(body)
    panel.send_button.click()
    assert "HTTP 201" in panel.status.value
    assert "x-ratelimit-remaining" in panel.headers.value
    created = json.loads(panel.response.value)
    assert [p.name for p in owner_client.agent_portfolios.list()] == ["play001"]
    # The secret is masked in the answer and shown once, apart, until dismissed.
    assert created["userTokens"][0]["userToken"] == "**********"
    secret = panel.secret.secret.value
    assert secret.startswith("etnb_") and owner_client.as_agent(secret).me().username
    assert "Copy this secret now" in panel.secret.warning.value
    panel.secret.dismiss.click()
    assert secret not in _state(panel)
    assert secret not in panel.curl.value and "$ETORO_USER_KEY" in panel.curl.value
    assert panel.curl.value.startswith("curl -X POST")
    # As the agent: management is refused, shown inline with code and request id.
    panel.operation.value = "getAgentPortfolios"
    panel.as_agent.value = True
    panel.agent_token.value = secret
    panel.send_button.click()
    assert "HTTP 403" in panel.status.value and "request id" in panel.feedback.value
    assert secret not in _state(panel)  # taken out of the widget, kept for the session
    panel.operation.value = "getAuthenticatedUserProfile"
    panel.send_button.click()
    assert "HTTP 200" in panel.status.value and "play001" in panel.response.value
    # A path parameter filled in the form.
    panel.as_agent.value = False
    panel.operation.value = "deleteAgentPortfolio"
    panel._fields["agentPortfolioId"][1].value = created["agentPortfolioId"]
    panel.send_button.click()
    assert "HTTP 204" in panel.status.value and owner_client.agent_portfolios.list() == []
    # Every call landed in the ledger, as owner and as agent.
    assert owner_client.ledger is not None
    usage = frames.usage(owner_client.ledger, phase="outcome")
    assert isinstance(usage, pl.DataFrame)
    ops = usage.select("principal", "operation_id", "status").rows()
    assert ("owner", "createAgentPortfolioV2", 201) in ops
    assert ("agent", "getAgentPortfolios", 403) in ops
    assert ("owner", "deleteAgentPortfolio", 204) in ops
    # Delegation changed from the playground is in the lifecycle like any other, and the
    # token minted there is known: the agent's requests are attributed to it.
    kinds = frames.lifecycle(owner_client.ledger)["kind"].to_list()
    assert kinds[:3] == ["portfolio_created", "token_minted", "portfolio_deleted"]
    token_id = created["userTokens"][0]["userTokenId"]
    assert set(usage.filter(principal="agent")["token_id"]) == {token_id}


def test_activity_panel_filters_and_redraws_whole_charts(
    owner_client: EtoroClient, server: SandboxServer
) -> None:
    alpha = owner_client.agent_portfolios.create("alpha01", 1000, scopes=[DEMO_READ, DEMO_WRITE])
    beta = owner_client.agent_portfolios.create("beta0001", 1000, scopes=[DEMO_READ])
    agent = owner_client.as_agent(alpha.token)
    agent.trading("demo").open_order(1001, amount=100)
    agent.trading("demo").portfolio()
    panel = ActivityPanel(owner_client)
    assert "SANDBOX" in panel.badge.value
    figures = (panel.activity, panel.scope_usage, panel.lifetimes)
    assert all(len(f.traces) > 0 for f in figures)
    # A browser view draws the state the widget was created with: it holds every trace
    # (a FigureWidget filled after creation came up empty when its view was still loading).
    assert all(len(_drawn(f)["data"]) == len(f.traces) for f in figures)
    assert list(panel.charts.children) == list(figures)
    assert {"createDemoOrder", "getPortfolioDemo"} <= _charted_operations(panel)
    assert "createDemoOrder" in panel.requests.column("Operation")
    assert panel.progress.value == 4 and panel.progress.layout.visibility == "hidden"
    # Filter to beta, which traded nothing: the charts and requests redraw at once.
    panel.portfolio.value = beta.portfolio.id
    assert "createDemoOrder" not in _charted_operations(panel)
    assert "createDemoOrder" not in panel.requests.column("Operation")
    assert all(not c.comm for c in figures)  # the old chart widgets are closed
    # Back to all, and a new agent action appears on refresh.
    panel.portfolio.value = ""
    owner_client.as_agent(beta.token).trading("demo").portfolio()
    panel.refresh_button.click()
    assert "getPortfolioDemo" in _charted_operations(panel)
    assert "beta0001" in {t["name"] for t in _drawn(panel.activity)["data"]}  # its own bars now
    assert "beta0001" in panel.requests.column("Portfolio")


def test_activity_token_filter_lists_the_chosen_portfolios_tokens(owner_client: EtoroClient) -> None:
    """Tokens are chosen within a portfolio: across all of them the token list would repeat
    each portfolio's token names (every agent has a "trader"), so it waits for a portfolio."""
    alpha = owner_client.agent_portfolios.create("alpha01", 1000, scopes=[DEMO_READ])
    beta = owner_client.agent_portfolios.create("beta0001", 1000, scopes=[DEMO_READ])
    owner_client.agent_portfolios.mint_token(beta.portfolio.id, "trader", scopes=[DEMO_READ])
    panel = ActivityPanel(owner_client)
    assert panel.token.options == (("all", ""),) and panel.token.disabled
    panel.portfolio.value = beta.portfolio.id
    beta_tokens = {t.id for t in owner_client.agent_portfolios.get(beta.portfolio.id).tokens}
    assert {v for _, v in panel.token.options} == {"", *beta_tokens} and not panel.token.disabled
    assert alpha.token.id not in {v for _, v in panel.token.options}
    owner_client.as_agent(beta.token).trading("demo").portfolio()
    panel.refresh_button.click()
    trader = owner_client.agent_portfolios.get(beta.portfolio.id).token("trader")
    assert trader is not None
    panel.token.value = trader.id  # the requests follow the token: trader sent none
    assert panel.requests.row_keys == []
    panel.token.value = beta.token.id
    assert "getPortfolioDemo" in panel.requests.column("Operation")
    panel.portfolio.value = ""
    assert panel.token.value == "" and panel.token.disabled


def test_charts_reach_the_browser_whole(owner_client: EtoroClient,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The first state a chart widget sends to the browser (at comm open) holds its traces:
    a view that draws it must not come up as empty axes."""
    import ipywidgets

    opened: list[int] = []
    real_open = ipywidgets.Widget.open

    def recording_open(self: ipywidgets.Widget) -> None:
        if isinstance(self, Chart) and self.comm is None:
            (output,) = self.get_state()["outputs"]
            opened.append(len(output["data"][PLOTLY_MIME]["data"]))
        real_open(self)

    monkeypatch.setattr(ipywidgets.Widget, "open", recording_open)
    made = owner_client.agent_portfolios.create("alpha01", 1000, scopes=[DEMO_READ])
    owner_client.as_agent(made.token).trading("demo").portfolio()
    panel = ActivityPanel(owner_client)
    drawn = [len(f.traces) for f in (panel.activity, panel.scope_usage, panel.lifetimes)]
    assert all(drawn) and opened[-3:] == drawn


def _charted_operations(panel: ActivityPanel) -> set[str]:
    """The operations the activity chart's bars count (their hover's operations, x-counts
    left out)."""
    return {op.split(" x")[0] for t in _drawn(panel.activity)["data"] if t["type"] == "bar"
            for row in t["customdata"] for op in str(row[3]).split(", ")}


def _drawn(chart: Chart) -> dict[str, Any]:
    """The figure a chart widget gives the browser (its one output's plotly JSON)."""
    (output,) = chart.outputs
    figure: dict[str, Any] = output["data"][PLOTLY_MIME]
    return figure


def test_activity_panel_charts_the_most_active_portfolios_when_there_are_many(
    owner_client: EtoroClient,
) -> None:
    made = [owner_client.agent_portfolios.create(f"many{i:04d}", 300, scopes=[DEMO_READ])
            for i in range(8)]
    for i, created in enumerate(made):
        agent = owner_client.as_agent(created.token)
        for _ in range(i + 1):  # portfolio i makes i + 1 calls
            agent.trading("demo").portfolio()
    panel = ActivityPanel(owner_client)
    titles = [a["text"] for a in _drawn(panel.activity)["layout"]["annotations"]]
    shown = {n for n in (c.portfolio.name for c in made) if any(n in t for t in titles)}
    assert shown == {f"many{i:04d}" for i in range(2, 8)}  # the six busiest
    assert "6 most active of 8" in panel.feedback.value


def test_playground_asks_before_touching_the_real_account(owner_client: EtoroClient) -> None:
    panel = PlaygroundPanel(owner_client)
    panel.operation.value = "createRealOrder"
    panel.body.value = json.dumps({"action": "open", "transaction": "buy", "instrumentId": 1001,
                                   "amount": 100})
    panel.send_button.click()
    assert panel.confirm.pending and "real account" in panel.confirm.message.value
    assert owner_client.trading("real").portfolio().positions == ()
    panel.confirm.confirm.click()
    assert "HTTP 200" in panel.status.value
    assert len(owner_client.trading("real").portfolio().positions) == 1


def test_a_change_whose_refresh_fails_says_both(owner_client: EtoroClient,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The change is made on the server; the refresh after it fails (a narrow failure path:
    the state's load raises). The view says what was done and that the views are stale,
    instead of a success message over the refresh's error, and raises nothing."""
    from etoro_nb.errors import APIError

    panel = PortfolioPanel(owner_client)

    def refused() -> None:
        raise APIError(status=429, error_code="TooManyRequests", error_message="slow down",
                       request_id="r-9", operation="getAgentPortfolios")

    monkeypatch.setattr(panel.state, "_load", refused)
    panel.name.value, panel.investment.value = "alpha01", 500
    panel.scopes[DEMO_READ].value = True
    panel.create_button.click()  # read-only: no consent step
    assert [p.name for p in owner_client.agent_portfolios.list()] == ["alpha01"]
    assert "Created alpha01" in panel.feedback.value
    assert "429 TooManyRequests: slow down" in panel.feedback.value
    assert panel.state.selected is None  # not in the (stale) state: nothing to select
