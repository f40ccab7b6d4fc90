"""DelegationPanel: per portfolio, its tokens with status and badges; mint, edit, revoke."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w
import polars as pl

from etoro_nb import frames, rules
from etoro_nb import scopes as scope_names
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

KEEP = "keep"


class DelegationPanel(w.VBox):
    """Tokens of one agent portfolio at a time: who may do what, until when."""

    def __init__(self, client: EtoroClient) -> None:
        self.client = client
        self.badge = environment_badge(client)
        self.portfolio = w.Dropdown(description="Portfolio", options=[])
        self.table = w.HTML()
        allowed = client.agent_portfolios.allowed_scopes()
        # mint
        self.mint_name = w.Text(description="Token name")
        self.mint_scopes = {s: w.Checkbox(value=False, description=s, indent=False)
                            for s in allowed}
        self.mint_ips = w.Text(description="IP whitelist", placeholder="empty: any address")
        self.mint_expiry = w.Dropdown(options=EXPIRY_CHOICES, value=30, description="Expires in")
        self.mint_button = w.Button(description="Mint token", button_style="primary")
        # edit and revoke
        self.token = w.Dropdown(description="Token", options=[])
        self.edit_scopes = {s: w.Checkbox(value=False, description=s, indent=False)
                            for s in allowed}
        self.edit_ips = w.Text(description="IP whitelist")
        self.edit_expiry = w.Dropdown(options=[("keep as is", KEEP), *EXPIRY_CHOICES],
                                      value=KEEP, description="Expires in")
        self.update_button = w.Button(description="Save changes")
        self.revoke_button = w.Button(description="Revoke…", button_style="danger")
        self.confirm = ConfirmBox()
        self.secret = SecretReveal()
        self.feedback = Feedback()
        self.portfolio.observe(lambda _: self.show_tokens(), "value")
        self.token.observe(lambda _: self._load_token(), "value")
        self.mint_button.on_click(lambda _: self.mint())
        self.update_button.on_click(lambda _: self.update())
        self.revoke_button.on_click(lambda _: self.revoke())
        self._tokens = pl.DataFrame(schema=frames.TOKENS_SCHEMA)
        super().__init__([
            self.badge, self.portfolio, self.table,
            w.VBox([w.HTML("<b>Mint a token</b>"), self.mint_name,
                    *self.mint_scopes.values(), self.mint_ips, self.mint_expiry,
                    self.mint_button]),
            w.VBox([w.HTML("<b>Edit or revoke a token</b>"), self.token,
                    *self.edit_scopes.values(), self.edit_ips, self.edit_expiry,
                    w.HBox([self.update_button, self.revoke_button])]),
            self.confirm, self.secret, self.feedback])
        self.refresh()

    def __repr__(self) -> str:
        chosen = dict((v, k) for k, v in self.portfolio.options).get(self.portfolio.value)
        counts = self._tokens.group_by("status").len().sort("status").iter_rows()
        detail = ", ".join(f"{n} {status}" for status, n in counts) or "no tokens"
        return panel_repr(self, self.client, f"portfolio {chosen or '(none)'}: {detail}")

    # -- state ----------------------------------------------------------------------------
    def refresh(self) -> None:
        try:
            listed = self.client.agent_portfolios.list()
        except EtoroError as exc:
            self.feedback.show_error(exc)
            return
        current = self.portfolio.value
        self.portfolio.options = [(p.name, p.id) for p in listed]
        ids = [p.id for p in listed]
        self.portfolio.value = current if current in ids else (ids[0] if ids else None)
        self.show_tokens()

    def show_tokens(self) -> None:
        pid = self.portfolio.value
        try:
            tokens = frames.tokens(self.client)
        except EtoroError as exc:
            self.feedback.show_error(exc)
            return
        self._tokens = tokens.filter(pl.col("portfolio_id") == pid) if pid else tokens.clear()
        unused = self._unused_scopes()
        rows = []
        for t in self._tokens.sort("token_name").iter_rows(named=True):
            badges = []
            if t["status"] == "expiring":
                badges.append(_badge("expiring soon", "#b26a00"))
            if t["status"] in ("expired", "revoked"):
                badges.append(_badge(t["status"], "#666"))
            if unused.get(t["token_id"]):
                badges.append(_badge(f"over-privileged: {len(unused[t['token_id']])} unused "
                                     "scope(s)", "#b00020"))
            expiry = ("never" if t["expires_at"] is None
                      else f"{t['expires_at']:%Y-%m-%d %H:%M} UTC")
            rows.append(f"<tr><td>{html.escape(t['token_name'])}</td>"
                        f"<td>{html.escape(', '.join(scope_names.short(s) for s in t['scopes']))}"
                        f"</td><td>{t['status']}</td><td>{expiry}</td>"
                        f"<td>{html.escape(', '.join(t['ips_whitelist']) or 'any')}</td>"
                        f"<td>{' '.join(badges)}</td></tr>")
        self.table.value = ("<table class='etoro-nb-tokens'><tr><th>Token</th><th>Scopes</th>"
                            "<th>Status</th><th>Expires</th><th>Whitelist</th><th></th></tr>"
                            + "".join(rows) + "</table>") if rows else "<i>No tokens.</i>"
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
        grants = frames.grants(self._tokens)
        usage = frames.usage(ledger, phase="outcome")
        assert isinstance(usage, pl.DataFrame)
        verdicts = frames.least_privilege(grants, usage)
        active = set(verdicts.filter(verdict="needed")["token_id"])
        out: dict[str, list[str]] = {}
        for r in verdicts.filter(verdict="unused").iter_rows(named=True):
            if r["token_id"] in active:
                out.setdefault(r["token_id"], []).append(r["scope"])
        return out

    def _selected(self) -> dict[str, Any] | None:
        if self.token.value is None:
            return None
        rows = self._tokens.filter(pl.col("token_id") == self.token.value)
        return None if rows.is_empty() else rows.row(0, named=True)

    def _load_token(self) -> None:
        token = self._selected()
        for scope, box in self.edit_scopes.items():
            box.value = bool(token and scope in token["scopes"])
        self.edit_ips.value = ", ".join(token["ips_whitelist"]) if token else ""
        self.edit_expiry.value = KEEP

    # -- actions --------------------------------------------------------------------------
    def mint(self) -> None:
        self.feedback.clear()
        scopes = [s for s, box in self.mint_scopes.items() if box.value]
        try:
            rules.token_name(self.mint_name.value, "token name")
            rules.scopes(scopes)
            rules.ipv4_whitelist(parse_ips(self.mint_ips.value))
        except InvalidInputError as exc:
            self.feedback.value = (f'<span style="color:#b00020">{html.escape(exc.field)}: '
                                   f'{html.escape(exc.rule)}</span>')
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
        self.feedback.show_ok(f"Minted {token.name}.")
        self.show_tokens()

    def update(self) -> None:
        """Save scope, whitelist and expiry changes; widening to a write scope needs consent."""
        token = self._selected()
        if token is None:
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
        self.feedback.show_ok(f"Updated {token['token_name']}.")
        self.show_tokens()

    def revoke(self) -> None:
        token = self._selected()
        if token is None:
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
        self.feedback.show_ok(f"Revoked {token['token_name']}.")
        self.show_tokens()


def _badge(text: str, colour: str) -> str:
    return (f'<span class="etoro-nb-badge" style="border:1px solid {colour};color:{colour};'
            f'padding:0 4px;border-radius:3px">{html.escape(text)}</span>')
