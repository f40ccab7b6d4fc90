"""Cockpit: one app, five tabs (Portfolios, Delegation, Policies, Activity, Playground) over
one shared state, with one refresh and an optional quota-aware auto-refresh."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

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
        if client.ledger is None:  # said at once, not when the Policies or Activity tab is shown
            raise ValueError("Cockpit reads policies and activity from the client's ledger: "
                             "connect() with one")
        self.client = client
        self.state = CockpitState.of(client)
        self.state.ensure()
        self.portfolios = PortfolioPanel(client, state=self.state)
        # The other tabs' panels are made when first shown (or asked for): a tab nobody
        # opens costs nothing, and the cockpit comes up in about the time of its data.
        self._makers: dict[str, Callable[[], w.Widget]] = {
            "Delegation": lambda: DelegationPanel(client, state=self.state),
            "Policies": lambda: PoliciesPanel(client, state=self.state),
            "Activity": self._make_activity,
            "Playground": lambda: PlaygroundPanel(client, state=self.state)}
        self._made: dict[str, w.Widget] = {"Portfolios": self.portfolios}
        self.tabs = w.Tab(children=[self.portfolios, *(w.VBox() for _ in TABS[1:])], titles=TABS)
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

    @property
    def delegation(self) -> DelegationPanel:
        return self._panel("Delegation")  # type: ignore[no-any-return]

    @property
    def policies(self) -> PoliciesPanel:
        return self._panel("Policies")  # type: ignore[no-any-return]

    @property
    def activity(self) -> ActivityPanel:
        return self._panel("Activity")  # type: ignore[no-any-return]

    @property
    def playground(self) -> PlaygroundPanel:
        return self._panel("Playground")  # type: ignore[no-any-return]

    def made(self, tab: str) -> bool:
        """Whether the tab's panel exists yet (it is made when first shown or asked for)."""
        return tab in self._made

    def _panel(self, tab: str) -> Any:
        """The tab's panel, made now if it was not (in its place in the tab)."""
        if tab not in self._made:
            panel = self._made[tab] = self._makers[tab]()
            self.tabs.children[TABS.index(tab)].children = (panel,)
        return self._made[tab]

    def _make_activity(self) -> ActivityPanel:
        """Made hidden, following the selection made before it existed; drawn when shown."""
        panel = ActivityPanel(self.client, state=self.state, hidden=True)
        panel.follow_selection()
        return panel

    def _tab_shown(self, index: int | None) -> None:
        """A tab's panel is made when first shown; the Activity tab draws its charts when
        it is shown, not while hidden."""
        if index is not None and index > 0:
            self._panel(TABS[index])
        if index == TABS.index("Activity"):
            self.activity.show_again()
        elif self.made("Activity"):
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
