"""Cockpit: one app, five tabs (Portfolios, Delegation, Policies, Activity, Playground) over
one shared state, with one refresh and an optional quota-aware auto-refresh."""

from __future__ import annotations

import html

import ipywidgets as w

from etoro_nb.client import EtoroClient
from etoro_nb.ratelimit import Quota
from widgets._common import environment_badge, panel_repr
from widgets.activity_panel import ActivityPanel
from widgets.auto_refresh import CHOICES, AutoRefresh, Schedule, thread_timer
from widgets.delegation_panel import DelegationPanel
from widgets.playground_panel import PlaygroundPanel
from widgets.policies_panel import PoliciesPanel
from widgets.portfolio_panel import PortfolioPanel
from widgets.state import CockpitState

TABS = ("Portfolios", "Delegation", "Policies", "Activity", "Playground")


class Cockpit(w.VBox):
    """Every view of one client in tabs. Selecting a portfolio in the Portfolios grid (or
    any view's portfolio choice) drives Delegation, Policies and Activity; an action in
    any tab shows at once in the others. The root has the DOM class ``enb-cockpit``."""

    def __init__(self, client: EtoroClient, *, schedule: Schedule = thread_timer) -> None:
        self.client = client
        self.state = CockpitState.of(client)
        self.state.ensure()
        self.portfolios = PortfolioPanel(client, state=self.state)
        self.delegation = DelegationPanel(client, state=self.state)
        self.policies = PoliciesPanel(client, state=self.state)
        self.activity = ActivityPanel(client, state=self.state, hidden=True)
        self.playground = PlaygroundPanel(client, state=self.state)
        self.tabs = w.Tab(children=[self.portfolios, self.delegation, self.policies,
                                    self.activity, self.playground], titles=TABS)
        self.refresh_button = w.Button(description="Refresh all", icon="refresh",
                                       button_style="info")
        self.auto = AutoRefresh(self.state, client.config.quota or Quota(), schedule=schedule)
        self.auto_choice = w.Dropdown(
            description="Auto-refresh", value=0,
            options=[("off", 0), *((_every(s), s) for s in sorted(
                {int(self.auto.minimum), *(c for c in CHOICES[1:] if c > self.auto.minimum)}))])
        self.status = w.HTML()
        self.tabs.observe(lambda c: self._tab_shown(c["new"]), "selected_index")
        self._tab_shown(self.tabs.selected_index)
        self.refresh_button.on_click(lambda _: self.refresh())
        self.auto_choice.observe(lambda c: self.auto.every(c["new"]), "value")
        self.state.observe(lambda _: self._status(), "revision")
        self.state.observe(lambda _: self._status(), "selected")
        self.state.observe(lambda _: self._status(), "error")
        header = w.HBox([environment_badge(client), self.refresh_button, self.auto_choice,
                         self.status], layout=w.Layout(align_items="center", grid_gap="8px"))
        super().__init__([header, self.tabs], layout=w.Layout(width="100%"))
        self.add_class("enb-cockpit")
        self._status()

    def __repr__(self) -> str:
        n = len(self.state.data.portfolios)
        return panel_repr(self, self.client, f"{n} agent portfolio(s), tabs {', '.join(TABS)}")

    def refresh(self) -> None:
        """Reload the shared state: every tab redraws."""
        self.state.begin_action()
        self.state.refresh()

    def close(self) -> None:
        auto = getattr(self, "auto", None)  # None: closed before it was built
        if auto is not None:
            auto.stop()
        super().close()

    def _tab_shown(self, index: int | None) -> None:
        """The Activity tab draws its charts when it is shown, not while hidden."""
        if index == TABS.index("Activity"):
            self.activity.show_again()
        else:
            self.activity.hidden = True

    def _status(self) -> None:
        data = self.state.data
        chosen = data.names().get(self.state.selected or "", "none")
        at = "never" if data.at is None else f"{data.at:%Y-%m-%d %H:%M:%S} UTC"
        error = (f' · <span class="etoro-nb-error" style="color:#b00020">refresh failed: '
                 f'{html.escape(self.state.error)}</span>' if self.state.error else "")
        self.status.value = (f'<span class="enb-status">Selected: <b>{html.escape(chosen)}</b> · '
                             f"{len(data.portfolios)} portfolio(s) · refreshed {at}{error}</span>")


def _every(seconds: int) -> str:
    return f"every {seconds} s" if seconds < 60 else f"every {seconds // 60} min"
