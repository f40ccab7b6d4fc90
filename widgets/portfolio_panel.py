"""PortfolioPanel: the owner's agent portfolios, a create form, and delete with consent."""

from __future__ import annotations

import html

import ipywidgets as w

from etoro_nb import frames, rules
from etoro_nb.client import EtoroClient
from etoro_nb.errors import EtoroError, InvalidInputError
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
)


class PortfolioPanel(w.VBox):
    """Lists agent portfolios and creates or deletes them. Logic lives in plain methods
    (``create``, ``delete``, ``refresh``); the buttons only call them."""

    def __init__(self, client: EtoroClient) -> None:
        self.client = client
        self.badge = environment_badge(client)
        self.table = w.HTML()
        self.name = w.Text(description="Name", placeholder="6 to 10 characters")
        self.name_hint = w.HTML()
        self.investment = w.BoundedFloatText(value=1000.0, min=0.0, max=1e9, step=100.0,
                                             description="Invest USD")
        self.description = w.Text(description="Description")
        self.token_name = w.Text(value="agent", description="Token name")
        self.scopes = {s: w.Checkbox(value=False, description=s, indent=False)
                       for s in client.agent_portfolios.allowed_scopes()}
        self.ips = w.Text(description="IP whitelist", placeholder="IPv4, comma-separated; "
                                                                   "empty: any address")
        self.expiry = w.Dropdown(options=EXPIRY_CHOICES, value=30, description="Expires in")
        self.form_hint = w.HTML()
        self.create_button = w.Button(description="Create portfolio", button_style="primary")
        self.delete_choice = w.Dropdown(description="Portfolio", options=[])
        self.delete_button = w.Button(description="Delete…", button_style="danger")
        self.confirm = ConfirmBox()
        self.secret = SecretReveal()
        self.feedback = Feedback()
        self.name.observe(lambda _: self._check_name(), "value")
        self.create_button.on_click(lambda _: self.create())
        self.delete_button.on_click(lambda _: self.delete())
        form = w.VBox([w.HTML("<b>New agent portfolio</b>"), w.HBox([self.name, self.name_hint]),
                       self.investment, self.description, self.token_name,
                       w.HTML("Scopes of its first token:"), *self.scopes.values(), self.ips,
                       self.expiry, self.form_hint, self.create_button])
        super().__init__([self.badge, self.table, form,
                          w.HBox([self.delete_choice, self.delete_button]),
                          self.confirm, self.secret, self.feedback])
        self.refresh()

    def __repr__(self) -> str:
        return panel_repr(self, self.client, f"{len(self.delete_choice.options)} agent portfolio(s)")

    # -- state ----------------------------------------------------------------------------
    def refresh(self) -> None:
        """Reload the table and the delete choices from the API."""
        try:
            table = frames.accounting(self.client)
            listed = frames.portfolios(self.client)
        except EtoroError as exc:
            self.feedback.show_error(exc)
            return
        tokens = dict(zip(listed["portfolio_id"], listed["token_count"], strict=True))
        rows = "".join(
            f"<tr><td>{html.escape(r['name'])}</td><td>{r['investment_usd']:,.2f}</td>"
            f"<td>{r['mirror_value_usd']:,.2f}</td><td>{r['mirror_id']}</td>"
            f"<td>{tokens.get(r['portfolio_id'], 0)}</td></tr>"
            for r in table.iter_rows(named=True))
        self.table.value = ("<table class='etoro-nb-portfolios'><tr><th>Name</th>"
                            "<th>Invested USD</th><th>Mirror value USD</th><th>Mirror</th>"
                            f"<th>Tokens</th></tr>{rows}</table>" if rows else
                            "<i>No agent portfolios yet.</i>")
        self.delete_choice.options = [(r["name"], r["portfolio_id"])
                                      for r in listed.iter_rows(named=True)]

    def _check_name(self) -> bool:
        try:
            rules.portfolio_name(self.name.value)
        except InvalidInputError as exc:
            self.name_hint.value = f'<span style="color:#b00020">{html.escape(exc.rule)}</span>'
            return False
        self.name_hint.value = '<span style="color:#1b7f3b">✓</span>'
        return True

    def chosen_scopes(self) -> list[str]:
        return [s for s, box in self.scopes.items() if box.value]

    # -- actions --------------------------------------------------------------------------
    def create(self) -> None:
        """Check the form; ask for consent when the grant lets the agent trade; create."""
        self.feedback.clear()
        problems = []
        if not self._check_name():
            problems.append("name")
        try:
            rules.positive(self.investment.value, "investment")
            rules.scopes(self.chosen_scopes())
            rules.ipv4_whitelist(parse_ips(self.ips.value))
        except InvalidInputError as exc:
            problems.append(f"{exc.field}: {exc.rule}")
        if problems:
            self.form_hint.value = ('<span style="color:#b00020">Fix before creating: '
                                    f'{html.escape("; ".join(problems))}</span>')
            return
        self.form_hint.value = ""
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
        self.feedback.show_ok(f"Created {created.portfolio.name} with token "
                              f"{created.token.name}.")
        self.refresh()

    def delete(self) -> None:
        """Ask for confirmation, saying what will happen, then delete."""
        portfolio_id = self.delete_choice.value
        if not portfolio_id:
            self.feedback.show_ok("Choose the portfolio to delete first.")
            return
        try:
            row = frames.accounting(self.client).filter(portfolio_id=portfolio_id).row(
                0, named=True)
            tokens = len(self.client.agent_portfolios.get(portfolio_id).tokens)
        except (EtoroError, IndexError) as exc:
            self.feedback.show_error(exc if isinstance(exc, EtoroError)
                                     else EtoroError("portfolio not found"))
            return
        message = (f"Deleting {row['name']} revokes its {tokens} token(s) at once, closes its "
                   f"copy mirror ({row['open_positions']} open position(s)) and credits its "
                   f"value, about {row['mirror_value_usd']:,.2f} USD, back to your real "
                   "balance. This cannot be undone.")
        self.confirm.ask(message, lambda: self._do_delete(portfolio_id, row["name"]))

    def _do_delete(self, portfolio_id: str, name: str) -> None:
        try:
            self.client.agent_portfolios.delete(portfolio_id)
        except EtoroError as exc:
            self.feedback.show_error(exc)
            return
        self.feedback.show_ok(f"Deleted {name}.")
        self.refresh()
