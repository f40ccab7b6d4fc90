"""DelegationPanel: the selected portfolio's tokens in a grid (status badges, expiry,
whitelist, over-privilege); mint, edit and revoke them."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w
import polars as pl

from etoro_nb import frames, rules
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

KEEP = "keep"


class DelegationPanel(View):
    """Tokens of one agent portfolio at a time (the selected one): who may do what, until
    when."""

    def __init__(self, client: EtoroClient, *, state: CockpitState | None = None) -> None:
        self.badge = environment_badge(client)
        self.portfolio = w.Dropdown(description="Portfolio", options=[])
        self.table = DataGrid("token_id", css_class="etoro-nb-tokens", empty="No tokens.")
        allowed = client.agent_portfolios.allowed_scopes()
        self.mint_name = w.Text(description="Token name")
        self.mint_scopes = scope_boxes(allowed)
        self.mint_ips = w.Text(description="IP whitelist", placeholder="empty: any address")
        self.mint_expiry = w.Dropdown(options=EXPIRY_CHOICES, value=30, description="Expires in")
        self.mint_button = w.Button(description="Mint token", button_style="primary")
        self.token = w.Dropdown(description="Token", options=[])
        self.edit_scopes = scope_boxes(allowed)
        self.edit_ips = w.Text(description="IP whitelist")
        self.edit_expiry = w.Dropdown(options=[("keep as is", KEEP), *EXPIRY_CHOICES],
                                      value=KEEP, description="Expires in")
        self.update_button = w.Button(description="Save changes")
        self.revoke_button = w.Button(description="Revoke…", button_style="danger")
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.policy_line = w.HTML()
        self.form_hint = w.HTML()
        self.confirm = ConfirmBox()
        self.secret = SecretReveal()
        self.feedback = Feedback()
        self._tokens = pl.DataFrame(schema=frames.TOKENS_SCHEMA)
        self.portfolio.observe(lambda c: self._choose(c["new"]), "value")
        self.table.observe(lambda c: self._token_clicked(c["new"]), "selected")
        self.token.observe(lambda _: self._load_token(), "value")
        self.mint_button.on_click(lambda _: self.mint())
        self.update_button.on_click(lambda _: self.update())
        self.revoke_button.on_click(lambda _: self.revoke())
        self.refresh_button.on_click(lambda _: self.refresh())
        super().__init__(client, state, [
            w.HBox([self.badge, self.portfolio, self.refresh_button]), self.policy_line, self.table,
            w.HTML("<b>Mint a token</b>"),
            two_columns(self.mint_name, self.mint_expiry, self.mint_ips,
                        scopes_cell("Scopes", self.mint_scopes)),
            self.mint_button,
            w.HTML("<b>Edit or revoke the selected token</b>"),
            two_columns(self.token, self.edit_expiry, self.edit_ips,
                        scopes_cell("Scopes", self.edit_scopes)),
            w.HBox([self.update_button, self.revoke_button]),
            self.form_hint, self.confirm, self.secret, self.feedback])
        self.start()

    def __repr__(self) -> str:
        chosen = dict((v, k) for k, v in self.portfolio.options).get(self.portfolio.value)
        counts = self._tokens.group_by("status").len().sort("status").iter_rows()
        detail = ", ".join(f"{n} {status}" for status, n in counts) or "no tokens"
        return panel_repr(self, self.client, f"portfolio {chosen or '(none)'}: {detail}")

    # -- state ----------------------------------------------------------------------------
    def render(self) -> None:
        data = self.state.data
        self.portfolio.options = [(p.name, p.id) for p in data.portfolios]
        self.follow_selection(force=True)

    def follow_selection(self, *, force: bool = False) -> None:
        """Show the selected portfolio's tokens (the first portfolio's when none is)."""
        chosen = self.state.current()
        if chosen not in {v for _, v in self.portfolio.options}:
            return  # not drawn yet: render comes next
        changed = chosen != self.portfolio.value
        self.portfolio.value = chosen
        if force or changed:
            self.show_tokens()

    def _choose(self, portfolio_id: str | None) -> None:
        if not self.syncing and portfolio_id is not None and portfolio_id != self.state.selected:
            self.state.select(portfolio_id)

    def show_tokens(self) -> None:
        pid = self.portfolio.value
        tokens = self.state.data.tokens
        self._tokens = tokens.filter(pl.col("portfolio_id") == pid) if pid else tokens.clear()
        self.table.show(tables.token_rows(self._tokens, self._unused_scopes()))
        self.policy_line.value = tables.policy_summary(self.state.data, pid)
        live = self._tokens.filter(pl.col("status").is_in(["active", "expiring", "expired"]))
        chosen = self.token.value
        self.token.options = [(t["token_name"], t["token_id"])
                              for t in live.sort("token_name").iter_rows(named=True)]
        ids = live["token_id"].to_list()
        self.token.value = chosen if chosen in ids else (ids[0] if ids else None)
        self._load_token()

    def _unused_scopes(self) -> dict[str, list[str]]:
        """Granted scopes a token never used while using others, from the ledger (empty
        without one). A token not used at all yet is not flagged: it may be brand new."""
        ledger = self.client.ledger
        if ledger is None or self._tokens.is_empty():
            return {}
        usage = frames.usage(ledger, phase="outcome", portfolio=self.portfolio.value)
        assert isinstance(usage, pl.DataFrame)
        verdicts = frames.least_privilege(frames.grants(self._tokens), usage)
        active = set(verdicts.filter(verdict="needed")["token_id"])
        out: dict[str, list[str]] = {}
        for r in verdicts.filter(verdict="unused").iter_rows(named=True):
            if r["token_id"] in active:
                out.setdefault(r["token_id"], []).append(r["scope"])
        return out

    def _token_clicked(self, token_id: str | None) -> None:
        if not self.syncing and token_id is not None and token_id in {v for _, v in self.token.options}:
            self.token.value = token_id

    def _selected(self) -> dict[str, Any] | None:
        if self.token.value is None:
            return None
        rows = self._tokens.filter(pl.col("token_id") == self.token.value)
        return None if rows.is_empty() else rows.row(0, named=True)

    def _load_token(self) -> None:
        token = self._selected()
        self.table.selected = token["token_id"] if token else None
        for scope, box in self.edit_scopes.items():
            box.value = bool(token and scope in token["scopes"])
        self.edit_ips.value = ", ".join(token["ips_whitelist"]) if token else ""
        self.edit_expiry.value = KEEP

    # -- actions --------------------------------------------------------------------------
    def mint(self) -> None:
        self.begin()
        scopes = [s for s, box in self.mint_scopes.items() if box.value]
        try:
            if self.portfolio.value is None:
                raise InvalidInputError("portfolio", "create or select an agent portfolio first")
            rules.token_name(self.mint_name.value, "token name")
            rules.scopes(scopes)
            rules.ipv4_whitelist(parse_ips(self.mint_ips.value))
        except InvalidInputError as exc:
            self.form_hint.value = (f'<span class="etoro-nb-error" style="color:#b00020">'
                                    f'{html.escape(exc.field)}: {html.escape(exc.rule)}</span>')
            return
        consent = consent_text(scopes, environment=self.client.environment)
        self.confirm.ask_if(consent, lambda given: self._do_mint(scopes, given))

    def _do_mint(self, scopes: list[str], consent: str | None) -> None:
        try:
            token = self.client.agent_portfolios.mint_token(
                self.portfolio.value, self.mint_name.value, scopes=scopes,
                ips_whitelist=parse_ips(self.mint_ips.value),
                expires_at=expiry(self.mint_expiry.value), consent=consent)
        except EtoroError as exc:
            self.feedback.show_error(exc)
            return
        self.secret.show(token)
        self.mint_name.value, self.mint_ips.value, self.mint_expiry.value = "", "", 30
        for box in self.mint_scopes.values():
            box.value = False
        self.after_change(f"Minted {token.name}.")

    def update(self) -> None:
        """Save scope, whitelist and expiry changes; widening to a write scope needs consent."""
        self.begin()
        token = self._selected()
        if token is None:
            self.feedback.show_error("Select a token to change first.")
            return
        scopes = [s for s, box in self.edit_scopes.items() if box.value]
        changes: dict[str, Any] = {}
        if set(scopes) != set(token["scopes"]):
            changes["scopes"] = scopes
        ips = parse_ips(self.edit_ips.value) or []
        if set(ips) != set(token["ips_whitelist"]):
            changes["ips_whitelist"] = ips
        if self.edit_expiry.value != KEEP:
            changes["expires_at"] = expiry(self.edit_expiry.value)
        if not changes:
            self.feedback.show_ok("Nothing to change.")
            return
        added = set(scopes) - set(token["scopes"])
        consent = consent_text(added, environment=self.client.environment) if added else None
        self.confirm.ask_if(consent, lambda given: self._do_update(token, changes, given))

    def _do_update(self, token: dict[str, Any], changes: dict[str, Any],
                   consent: str | None) -> None:
        try:
            self.client.agent_portfolios.update_token(token["portfolio_id"], token["token_id"],
                                                      consent=consent, **changes)
        except EtoroError as exc:
            self.feedback.show_error(exc)
            return
        self.after_change(f"Updated {token['token_name']}.")

    def revoke(self) -> None:
        self.begin()
        token = self._selected()
        if token is None:
            self.feedback.show_error("Select a token to revoke first.")
            return
        message = (f"Revoking {token['token_name']} stops the agent holding it at its very next "
                   "request. Its open positions stay open. This cannot be undone.")
        self.confirm.ask(message, lambda: self._do_revoke(token))

    def _do_revoke(self, token: dict[str, Any]) -> None:
        try:
            self.client.agent_portfolios.revoke_token(token["portfolio_id"], token["token_id"])
        except EtoroError as exc:
            self.feedback.show_error(exc)
            return
        self.after_change(f"Revoked {token['token_name']}.")
