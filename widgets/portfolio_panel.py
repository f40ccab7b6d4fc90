"""PortfolioPanel: the owner's agent portfolios in a grid, a create form, and delete with
consent. Selecting a row selects that portfolio in every view of the shared state."""

from __future__ import annotations

import html
from collections.abc import Iterable

import ipywidgets as w

from etoro_nb import rules
from etoro_nb.client import EtoroClient
from etoro_nb.errors import EtoroError, InvalidInputError
from widgets import tables
from widgets._common import (
    EXPIRY_CHOICES,
    ConfirmBox,
    Feedback,
    SecretReveal,
    consent_text,
    environment_badge,
    expiry,
    panel_repr,
    parse_ips,
    scope_boxes,
    scopes_cell,
    two_columns,
)
from widgets.grid import DataGrid
from widgets.state import CockpitState
from widgets.view import View


class PortfolioPanel(View):
    """Lists agent portfolios and creates or deletes them. Logic lives in plain methods
    (``create``, ``delete``, ``refresh``); the buttons only call them."""

    def __init__(self, client: EtoroClient, *, state: CockpitState | None = None) -> None:
        self.badge = environment_badge(client)
        self.table = DataGrid("portfolio_id", css_class="etoro-nb-portfolios",
                              empty="No agent portfolios yet.")
        self.name = w.Text(description="Name", placeholder="6 to 10 characters")
        self.name_hint = w.HTML()
        self.investment = w.BoundedFloatText(value=1000.0, min=0.0, max=1e9, step=100.0,
                                             description="Invest USD")
        self.description = w.Text(description="Description")
        self.token_name = w.Text(value="agent", description="Token name")
        self.scopes = scope_boxes(client.agent_portfolios.allowed_scopes())
        self.ips = w.Text(description="IP whitelist", placeholder="IPv4, comma-separated; "
                                                                   "empty: any address")
        self.expiry = w.Dropdown(options=EXPIRY_CHOICES, value=30, description="Expires in")
        self.form_hint = w.HTML()
        self.create_button = w.Button(description="Create portfolio", button_style="primary")
        self.delete_choice = w.Dropdown(description="Portfolio", options=[])
        self.delete_button = w.Button(description="Delete…", button_style="danger")
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.confirm = ConfirmBox()
        self.secret = SecretReveal()
        self.feedback = Feedback()
        self.name.observe(lambda _: self._check_name(), "value")
        self.create_button.on_click(lambda _: self.create())
        self.delete_button.on_click(lambda _: self.delete())
        self.refresh_button.on_click(lambda _: self.refresh())
        self.delete_choice.observe(lambda _: self._follow_choice(), "value")
        form = w.VBox([w.HTML("<b>New agent portfolio</b>"),
                       two_columns(self.name, self.investment, self.token_name, self.description,
                                   self.ips, self.expiry),
                       self.name_hint, scopes_cell("Scopes of its first token", self.scopes),
                       self.form_hint, self.create_button])
        super().__init__(client, state, [
            w.HBox([self.badge, self.refresh_button]), self.table, form,
            w.HBox([self.delete_choice, self.delete_button]),
            self.confirm, self.secret, self.feedback])
        self.table.observe(lambda c: self._select(c["new"]), "selected")
        self.start()

    def __repr__(self) -> str:
        return panel_repr(self, self.client, f"{len(self.delete_choice.options)} agent portfolio(s)")

    # -- state ----------------------------------------------------------------------------
    def render(self) -> None:
        """Redraw the grid and the delete choices from the shared state."""
        self.table.show(tables.portfolio_rows(self.state.data))
        self.delete_choice.options = [(p.name, p.id) for p in self.state.data.portfolios]
        self.follow_selection()

    def follow_selection(self) -> None:
        chosen = self.state.current()
        self.table.selected = chosen
        # The dropdown shows what Delete acts on: the selection, else the first portfolio
        # (a Dropdown whose value is None still shows its first option in the browser).
        self.delete_choice.value = chosen

    def _select(self, portfolio_id: str | None) -> None:
        if self.syncing:
            return
        if portfolio_id is None:  # a click that unselects the row: the views keep theirs
            self.table.selected = self.state.current()
        elif portfolio_id != self.state.selected:
            self.state.select(portfolio_id)

    def _follow_choice(self) -> None:
        chosen = self.delete_choice.value
        if not self.syncing and chosen is not None and chosen != self.state.selected:
            self.state.select(chosen)

    def _check_name(self) -> str | None:
        """The name's rules, and whether a portfolio of that name is known already: the
        problem, shown beside the form (None: the name will do)."""
        try:
            rules.portfolio_name(self.name.value)
        except InvalidInputError as exc:
            problem: str | None = f"name: {exc.rule}"
        else:
            taken = self._taken(self.state.data.names().values())
            problem = "name: already taken by one of your agent portfolios" if taken else None
        self.name_hint.value = (f'<span style="color:#b00020">{html.escape(problem)}</span>'
                                if problem else '<span style="color:#1b7f3b">name ✓</span>')
        return problem

    def _taken(self, names: Iterable[str]) -> bool:
        wanted = self.name.value.strip().casefold()
        return any(n.casefold() == wanted for n in names)

    def chosen_scopes(self) -> list[str]:
        return [s for s, box in self.scopes.items() if box.value]

    # -- actions --------------------------------------------------------------------------
    def create(self) -> None:
        """Check the form, then the name against the server; ask for consent when the
        grant lets the agent trade; create."""
        self.begin()
        problems = [p for p in [self._check_name()] if p]
        try:
            rules.positive(self.investment.value, "investment")
            rules.scopes(self.chosen_scopes())
            rules.ipv4_whitelist(parse_ips(self.ips.value))
        except InvalidInputError as exc:
            problems.append(f"{exc.field}: {exc.rule}")
        if not problems:
            try:  # the server's list now, not the grid's: another notebook may have made it
                if self._taken(p.name for p in self.client.agent_portfolios.list()):
                    problems.append("name: already taken by one of your agent portfolios")
            except EtoroError as exc:
                self.feedback.show_error(exc)
                return
        if problems:
            self.form_hint.value = ('<span class="etoro-nb-error" style="color:#b00020">Fix before '
                                    f'creating: {html.escape("; ".join(problems))}</span>')
            return
        consent = consent_text(self.chosen_scopes(), environment=self.client.environment,
                               investment_usd=self.investment.value)
        self.confirm.ask_if(consent, self._do_create)

    def _do_create(self, consent: str | None) -> None:
        try:
            created = self.client.agent_portfolios.create(
                self.name.value, self.investment.value, scopes=self.chosen_scopes(),
                token_name=self.token_name.value, description=self.description.value or None,
                ips_whitelist=parse_ips(self.ips.value),
                expires_at=expiry(self.expiry.value), consent=consent)
        except EtoroError as exc:
            self.feedback.show_error(exc)
            return
        self.secret.show(created.token)
        self._reset_form()
        if self.after_change(f"Created {created.portfolio.name} with token {created.token.name}."):
            self.state.select(created.portfolio.id)  # in the state only once it has loaded

    def _reset_form(self) -> None:
        self.name.value, self.description.value, self.ips.value = "", "", ""
        self.token_name.value, self.investment.value, self.expiry.value = "agent", 1000.0, 30
        for box in self.scopes.values():
            box.value = False
        self.name_hint.value = ""

    def delete(self) -> None:
        """Ask for confirmation, saying what will happen, then delete the portfolio the
        dropdown shows."""
        self.begin()
        portfolio_id = self.delete_choice.value
        if not portfolio_id:
            self.feedback.show_error("There is no agent portfolio to delete.")
            return
        rows = self.state.data.accounting.filter(portfolio_id=portfolio_id)
        portfolio = self.state.data.portfolio(portfolio_id)
        if portfolio is None:
            self.feedback.show_error("That portfolio is gone: refresh.")
            return
        row = rows.row(0, named=True) if rows.height else {"open_positions": 0,
                                                            "mirror_value_usd": 0.0}
        message = (f"Deleting {portfolio.name} revokes its {len(portfolio.tokens)} token(s) at "
                   f"once, closes its copy mirror ({row['open_positions']} open position(s)) "
                   f"and credits its value, about {row['mirror_value_usd']:,.2f} USD, back to "
                   "your real balance. This cannot be undone.")
        self.confirm.ask(message, lambda: self._do_delete(portfolio_id, portfolio.name))

    def _do_delete(self, portfolio_id: str, name: str) -> None:
        try:
            self.client.agent_portfolios.delete(portfolio_id)
        except EtoroError as exc:
            self.feedback.show_error(exc)
            return
        self.after_change(f"Deleted {name}.")
