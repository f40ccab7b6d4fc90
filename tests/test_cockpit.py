"""The Cockpit and its shared state, driven headless (widget values and .click()), checked
against the sandbox and the ledger."""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from etoro_nb import frames
from etoro_nb.agent import RiskPolicy
from etoro_nb.client import EtoroClient
from etoro_nb.errors import APIError
from etoro_nb.ledger import Ledger
from etoro_nb.ratelimit import Quota
from etoro_nb.sandbox import SandboxServer
from tests.helpers import DEMO_READ, DEMO_WRITE
from widgets import Cockpit, CockpitState, DelegationPanel, PortfolioPanel
from widgets._common import error_text
from widgets.auto_refresh import AutoRefresh
from widgets.cockpit import TABS
from widgets.state import READS_PER_REFRESH


@pytest.fixture
def owner_client(server: SandboxServer, tmp_path: Path,
                 make_client: Callable[..., EtoroClient]) -> EtoroClient:
    return make_client(server, ledger=Ledger(tmp_path / "l.sqlite"),
                       clock=server.sandbox.clock.now)


class FakeTimer:
    """Stands for the auto-refresh timer: records what was scheduled; tests fire it."""

    def __init__(self) -> None:
        self.pending: list[tuple[float, Callable[[], None]]] = []
        self.cancelled = 0

    def __call__(self, delay: float, action: Callable[[], None]) -> Callable[[], None]:
        self.pending.append((delay, action))
        return self.cancel

    def cancel(self) -> None:
        self.cancelled += 1

    def fire(self) -> None:
        _, action = self.pending.pop(0)
        action()


def _create(cockpit: Cockpit, name: str, *scopes: str) -> None:
    panel = cockpit.portfolios
    panel.name.value = name
    for scope in scopes or (DEMO_READ,):
        panel.scopes[scope].value = True
    panel.create_button.click()
    if panel.confirm.pending:
        panel.confirm.confirm.click()


def test_an_action_in_one_view_shows_at_once_in_the_others(owner_client: EtoroClient) -> None:
    cockpit = Cockpit(owner_client, schedule=FakeTimer())
    assert "enb-cockpit" in cockpit._dom_classes
    assert [t for t in cockpit.tabs.titles] == ["Portfolios", "Delegation", "Policies",
                                                "Activity", "Playground"]
    _create(cockpit, "alpha01")
    created = owner_client.agent_portfolios.list()[0]
    # Created in Portfolios: Delegation, Policies and Activity know it without a refresh.
    assert cockpit.delegation.portfolio.value == created.id
    assert cockpit.delegation.table.column("Token") == ["agent"]
    assert cockpit.policies.table.column("Portfolio") == ["alpha01"]
    assert created.id in {v for _, v in cockpit.activity.portfolio.options}
    # Minted in Delegation: the Portfolios grid counts it.
    d = cockpit.delegation
    d.mint_name.value = "second"
    d.mint_scopes[DEMO_READ].value = True
    d.mint_button.click()
    assert cockpit.portfolios.table.column("Live tokens") == ["2"]
    assert "Minted second" in d.feedback.value and d.secret.secret.value.startswith("etnb_")
    assert d.mint_name.value == "" and not d.mint_scopes[DEMO_READ].value  # form reset
    # The Activity tab draws when shown (not while hidden), with the requests just made.
    assert cockpit.activity.requests.row_keys == []
    cockpit.tabs.selected_index = 3
    assert "createAgentPortfolioUserTokenV2" in cockpit.activity.requests.column("Operation")
    assert all(f.traces and f.outputs for f in (cockpit.activity.activity,
                                                 cockpit.activity.lifetimes))
    # Panels shown in separate cells share the state of their client: a DelegationPanel
    # built before a portfolio existed shows it once another view creates it.
    late = DelegationPanel(owner_client)
    assert late.state is cockpit.state
    _create(cockpit, "beta0001")
    assert "beta0001" in [n for n, _ in late.portfolio.options]


def test_selecting_a_portfolio_drives_the_other_views(owner_client: EtoroClient) -> None:
    alpha = owner_client.agent_portfolios.create("alpha01", 500, scopes=[DEMO_READ],
                                                 token_name="a-token")
    beta = owner_client.agent_portfolios.create("beta0001", 500, scopes=[DEMO_READ],
                                                token_name="b-token")
    cockpit = Cockpit(owner_client, schedule=FakeTimer())
    assert cockpit.delegation.table.column("Token") == ["a-token"]  # the first, unselected
    cockpit.portfolios.table.click_row(beta.portfolio.id)  # a click in the grid
    assert cockpit.state.selected == beta.portfolio.id
    assert cockpit.delegation.portfolio.value == beta.portfolio.id
    assert cockpit.delegation.table.column("Token") == ["b-token"]
    assert cockpit.policies.table.selected == beta.portfolio.id
    assert "beta0001" in cockpit.policies.heading.value
    assert cockpit.activity.portfolio.value == beta.portfolio.id
    assert cockpit.portfolios.delete_choice.value == beta.portfolio.id
    assert "beta0001" in cockpit.status.value
    # Choosing in another view selects too, and the grid follows.
    cockpit.delegation.portfolio.value = alpha.portfolio.id
    assert cockpit.state.selected == alpha.portfolio.id
    assert cockpit.portfolios.table.selected == alpha.portfolio.id


def test_the_delete_dropdown_acts_on_what_it_shows(owner_client: EtoroClient) -> None:
    owner_client.agent_portfolios.create("alpha01", 500, scopes=[DEMO_READ])
    owner_client.agent_portfolios.create("beta0001", 500, scopes=[DEMO_READ])
    panel = PortfolioPanel(owner_client)
    # A browser shows a dropdown's first option when its value is None: the value must be it.
    shown = panel.delete_choice.options[0]
    assert panel.delete_choice.value == shown[1]
    panel.delete_button.click()
    assert panel.confirm.pending and f"Deleting {shown[0]} " in panel.confirm.message.value
    panel.confirm.confirm.click()
    assert [p.name for p in owner_client.agent_portfolios.list()] == ["beta0001"]
    assert f"Deleted {shown[0]}." in panel.feedback.value
    # After the delete the dropdown shows (and holds) the one that is left.
    assert panel.delete_choice.value == panel.delete_choice.options[0][1]
    assert panel.table.column("Name") == ["beta0001"]


def test_messages_clear_at_the_next_action_in_any_view(owner_client: EtoroClient) -> None:
    cockpit = Cockpit(owner_client, schedule=FakeTimer())
    _create(cockpit, "alpha01", DEMO_READ, DEMO_WRITE)
    p = cockpit.portfolios
    assert "Created alpha01" in p.feedback.value and p.secret.secret.value
    assert p.name.value == "" and not p.scopes[DEMO_WRITE].value  # the form was reset
    cockpit.delegation.revoke_button.click()  # the next action, in another view
    assert p.feedback.value == "" and p.secret.secret.value == "" and not p.secret.copy.text
    assert cockpit.delegation.confirm.pending
    cockpit.policies.pause_button.click()  # a pending confirmation elsewhere is dropped
    assert not cockpit.delegation.confirm.pending
    assert "Paused the agent of alpha01" in cockpit.policies.feedback.value
    cockpit.refresh_button.click()
    assert cockpit.policies.feedback.value == ""


def test_policy_edits_follow_the_consent_rules(owner_client: EtoroClient) -> None:
    made = owner_client.agent_portfolios.create("alpha01", 500, scopes=[DEMO_READ])
    cockpit = Cockpit(owner_client, schedule=FakeTimer())
    view = cockpit.policies
    view.limits["max_order_amount_usd"].value = "500"
    view.lists["denied_instruments"].value = "BTC, 1001"
    view.save_button.click()  # a first limit tightens: no consent
    assert not view.confirm.pending
    policy = owner_client.agent_portfolios.policy(made.portfolio.id)
    assert policy == RiskPolicy(max_order_amount_usd=500.0, denied_instruments=("BTC", 1001))
    assert view.table.column("Max order USD") == ["500.00"]
    assert view.table.column("Version") == ["1"]
    assert "policy v1: Max order USD 500.0" in cockpit.delegation.policy_line.value
    # Loosening asks first, in words, and records the consent with the change.
    view.limits["max_order_amount_usd"].value = "1,000"
    view.save_button.click()
    assert view.confirm.pending and "max_order_amount_usd: 500.0 -> 1000.0" in html.unescape(
        view.confirm.message.value)
    assert owner_client.agent_portfolios.policy(made.portfolio.id) == policy
    view.confirm.confirm.click()
    controls = owner_client.agent_portfolios.controls(made.portfolio.id)
    assert controls.version == 2 and controls.policy is not None
    assert controls.policy.max_order_amount_usd == 1000.0
    assert owner_client.ledger is not None
    events = frames.policy_events(owner_client.ledger, server_refusals=False)
    assert isinstance(events, pl.DataFrame)
    consents = [json.loads(d).get("consent") for d in events.filter(kind="policy_set")["detail"]]
    assert consents[0] is None and "loosens the risk policy of alpha01" in consents[1]
    # Tightening again needs none; a bad value names the field and changes nothing.
    view.limits["max_leverage"].value = "2"
    view.save_button.click()
    assert not view.confirm.pending
    assert owner_client.agent_portfolios.controls(made.portfolio.id).version == 3
    view.limits["max_leverage"].value = "two"
    view.save_button.click()
    assert "Max leverage: is a whole number" in view.policy_hint.value
    assert owner_client.agent_portfolios.controls(made.portfolio.id).version == 3


def test_pause_resume_and_stop_the_agent(owner_client: EtoroClient) -> None:
    made = owner_client.agent_portfolios.create("alpha01", 500, scopes=[DEMO_READ])
    cockpit = Cockpit(owner_client, schedule=FakeTimer())
    view = cockpit.policies
    view.pause_button.click()
    assert owner_client.agent_portfolios.controls(made.portfolio.id).paused
    assert view.resume_button.disabled is False and view.pause_button.disabled is True
    assert cockpit.portfolios.table.column("Agent") == ["paused"]
    view.resume_button.click()
    assert not owner_client.agent_portfolios.controls(made.portfolio.id).paused
    view.stop_button.click()
    assert view.confirm.pending and "revokes all 1 of its token(s)" in view.confirm.message.value
    view.confirm.confirm.click()
    assert owner_client.agent_portfolios.get(made.portfolio.id).tokens == ()
    assert owner_client.agent_portfolios.controls(made.portfolio.id).paused
    assert cockpit.delegation.table.column("Status") == ["revoked"]


def test_auto_refresh_keeps_within_the_read_quota(owner_client: EtoroClient) -> None:
    state = CockpitState(owner_client)
    timer = FakeTimer()
    auto = AutoRefresh(state, Quota(read_limit=60, write_limit=20), schedule=timer)
    # 60 reads a minute, half of it for the cockpit, 6 reads a refresh: at most every 12 s.
    assert auto.minimum == 12
    assert auto.every(2) == 12 and timer.pending[0][0] == 12
    timer.fire()
    assert state.revision == 1 and len(timer.pending) == 1  # refreshed, and rescheduled
    auto.stop()
    timer.fire()  # a tick that was already on its way does nothing once stopped
    assert state.revision == 1 and not timer.pending
    # The cockpit offers the quota's minimum and the longer usual intervals, no shorter one.
    cockpit = Cockpit(owner_client, schedule=timer)
    assert [v for _, v in cockpit.auto_choice.options] == [0, 12, 30, 60, 300]
    cockpit.auto_choice.value = 12
    assert cockpit.auto.interval == 12 and timer.pending[-1][0] == 12
    cockpit.close()
    assert cockpit.auto.interval == 0
    # One refresh makes no more reads than the quota arithmetic counts.
    assert owner_client.ledger is not None
    before = frames.usage(owner_client.ledger, phase="outcome").height
    state.refresh()
    assert frames.usage(owner_client.ledger, phase="outcome").height - before <= READS_PER_REFRESH


def test_one_error_format_says_no_word_twice() -> None:
    exc = APIError(status=403, error_code="Forbidden",
                   error_message="Forbidden: requests from 10.0.0.1 are not whitelisted",
                   request_id="r-1", operation="getPortfolio")
    assert error_text(exc) == ("403 Forbidden: requests from 10.0.0.1 are not whitelisted "
                               "(request id r-1)")
    plain = APIError(status=400, error_code="ValidationFailed", error_message="name is taken",
                     request_id="r-2", operation="create")
    assert error_text(plain) == "400 ValidationFailed: name is taken (request id r-2)"


def test_a_tab_panel_is_made_when_first_shown_and_then_follows_the_state(
        owner_client: EtoroClient) -> None:
    owner_client.agent_portfolios.create("alpha001", 500, scopes=[DEMO_READ])
    beta = owner_client.agent_portfolios.create("beta0001", 500, scopes=[DEMO_READ])
    cockpit = Cockpit(owner_client, schedule=FakeTimer())
    assert [cockpit.made(t) for t in TABS] == [True, False, False, False, False]
    assert all(not holder.children for holder in cockpit.tabs.children[1:])  # nothing built
    cockpit.portfolios.table.click_row(beta.portfolio.id)  # not the first: selected before the tabs exist
    cockpit.tabs.selected_index = TABS.index("Activity")  # shown: made, drawn, in its tab
    assert cockpit.made("Activity") and not cockpit.made("Delegation")
    assert cockpit.tabs.children[TABS.index("Activity")].children == (cockpit.activity,)
    assert cockpit.activity.portfolio.value == beta.portfolio.id  # the earlier selection
    assert len(cockpit.activity.charts.children) == 3  # drawn at once, not left for a later show
    cockpit.tabs.selected_index = TABS.index("Delegation")
    assert cockpit.delegation.portfolio.value == beta.portfolio.id
    assert cockpit.tabs.children[TABS.index("Delegation")].children == (cockpit.delegation,)


def test_confirmation_and_secret_parts_are_made_on_first_use(owner_client: EtoroClient) -> None:
    panel = PortfolioPanel(owner_client)
    assert panel.confirm.children == () and panel.secret.children == ()  # built empty
    panel.begin()  # an action clears them without making them
    assert panel.confirm.children == () and panel.secret.children == ()
    panel.name.value = "gamma001"
    panel.scopes[DEMO_WRITE].value = True
    panel.create_button.click()
    assert panel.confirm.pending and panel.confirm.layout.display == ""
    assert panel.confirm.children and "Please confirm" in panel.confirm.message.value
    panel.confirm.confirm.click()
    assert panel.secret.layout.display == "" and panel.secret.secret.value
    panel.secret.dismiss.click()
    assert panel.secret.secret.value == "" and panel.secret.layout.display == "none"
    assert panel.confirm.layout.display == "none" and not panel.confirm.pending


def test_a_cockpit_without_a_ledger_is_refused_at_build(
        server: SandboxServer, make_client: Callable[..., EtoroClient]) -> None:
    with pytest.raises(ValueError, match="ledger"):  # not later, when a tab is first shown
        Cockpit(make_client(server), schedule=FakeTimer())
