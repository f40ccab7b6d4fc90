"""PoliciesPanel: each agent portfolio's risk policy and whether its agent runs; edit the
selected one's limits (loosening asks for consent, as widening a scope does), pause and
resume its agent, or stop it (pause, then revoke every token: one confirmation)."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w

from etoro_nb.agent.controls import Controls
from etoro_nb.agent.policy import RiskPolicy
from etoro_nb.client import EtoroClient
from etoro_nb.errors import EtoroError, InvalidInputError
from widgets import tables
from widgets._common import ConfirmBox, Feedback, environment_badge, panel_repr, two_columns
from widgets.grid import DataGrid
from widgets.state import CockpitState
from widgets.view import View

NUMBERS: dict[str, tuple[str, type]] = {
    "max_order_amount_usd": ("Max order USD", float),
    "max_leverage": ("Max leverage", int),
    "max_open_positions": ("Max positions", int),
    "max_gross_exposure_usd": ("Max exposure USD", float),
    "max_gross_exposure_share": ("Max exposure share", float),
    "max_orders_per_day": ("Orders per day", int),
    "max_orders_per_hour": ("Orders per hour", int),
    "max_daily_loss_usd": ("Daily loss USD", float),
}
"""The limits the form edits, with their labels and types (empty field: no limit)."""
LISTS = {"denied_instruments": "Denied", "allowed_instruments": "Allowed only"}


class PoliciesPanel(View):
    """Risk boundaries of the selected agent portfolio (``client.agent_portfolios``'s
    ``set_policy`` / ``pause`` / ``resume`` / ``stop_agent``), kept in the ledger."""

    def __init__(self, client: EtoroClient, *, state: CockpitState | None = None) -> None:
        if client.ledger is None:
            raise ValueError("PoliciesPanel reads policies from the client's ledger: "
                             "connect() with one")
        self.badge = environment_badge(client)
        self.table = DataGrid("portfolio_id", css_class="etoro-nb-policies",
                              empty="No agent portfolios yet.")
        self.heading = w.HTML()
        self.limits = {name: w.Text(description=label, placeholder="no limit")
                       for name, (label, _) in NUMBERS.items()}
        self.lists = {name: w.Text(description=label, placeholder="ids or symbols, comma-separated")
                      for name, label in LISTS.items()}
        self.stop_loss = w.Checkbox(description="Require a stop loss", indent=False)
        self.save_button = w.Button(description="Save policy", button_style="primary")
        self.pause_button = w.Button(description="Pause agent", icon="pause")
        self.resume_button = w.Button(description="Resume agent", icon="play")
        self.stop_button = w.Button(description="Stop agent…", button_style="danger")
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.policy_hint = w.HTML()
        self.confirm = ConfirmBox()
        self.feedback = Feedback()
        self._shown: tuple[str, int] | None = None
        self.table.observe(lambda c: self._select(c["new"]), "selected")
        self.save_button.on_click(lambda _: self.save())
        self.pause_button.on_click(lambda _: self.pause())
        self.resume_button.on_click(lambda _: self.resume())
        self.stop_button.on_click(lambda _: self.stop())
        self.refresh_button.on_click(lambda _: self.refresh())
        super().__init__(client, state, [
            w.HBox([self.badge, self.refresh_button]), self.table, self.heading,
            two_columns(*self.limits.values(), *self.lists.values(), self.stop_loss),
            self.policy_hint,
            w.HBox([self.save_button, self.pause_button, self.resume_button, self.stop_button]),
            self.confirm, self.feedback])
        self.start()

    def __repr__(self) -> str:
        c = self.controls()
        name = self.state.data.names().get(c.portfolio_id, "(none)") if c else "(none)"
        detail = "no policy" if c is None or c.policy is None else f"policy v{c.version}"
        paused = ", paused" if c is not None and c.paused else ""
        return panel_repr(self, self.client, f"portfolio {name}: {detail}{paused}")

    # -- state ----------------------------------------------------------------------------
    def controls(self) -> Controls | None:
        """The selected portfolio's controls (None: no portfolio)."""
        pid = self.state.current()
        if pid is None:
            return None
        return self.state.data.controls.get(pid) or Controls(pid)

    def render(self) -> None:
        self.table.show(tables.policy_rows(self.state.data))
        self.follow_selection()

    def follow_selection(self) -> None:
        c = self.controls()
        self.table.selected = c.portfolio_id if c else None
        enabled = c is not None
        for button in (self.save_button, self.pause_button, self.resume_button, self.stop_button):
            button.disabled = not enabled
        if c is None:
            self.heading.value = "<i>Create an agent portfolio to set its risk policy.</i>"
            return
        name = html.escape(self.state.data.names()[c.portfolio_id])
        state = "paused" if c.paused else "running"
        version = f"policy version {c.version}" if c.policy else "no policy yet (no limits)"
        self.heading.value = (f"<b>{name}</b>: agent {tables.status(state)} · {version}"
                              + (f" · {html.escape(c.reason or '')}" if c.paused else ""))
        self.pause_button.disabled, self.resume_button.disabled = c.paused, not c.paused
        shown = (c.portfolio_id, c.version)
        if shown != self._shown:  # a refresh keeps what the owner is typing
            self._shown = shown
            self._load(c.policy or RiskPolicy())

    def _load(self, policy: RiskPolicy) -> None:
        limits = policy.limits()
        for name, field in self.limits.items():
            field.value = "" if limits.get(name) is None else str(limits[name])
        for name, field in self.lists.items():
            field.value = ", ".join(map(str, limits.get(name) or ()))
        self.stop_loss.value = policy.require_stop_loss

    def _select(self, portfolio_id: str | None) -> None:
        if self.syncing:
            return
        if portfolio_id is None:
            self.table.selected = self.state.current()
        elif portfolio_id != self.state.selected:
            self.state.select(portfolio_id)

    def edited(self) -> RiskPolicy:
        """The policy the form describes: its fields over the current policy's others."""
        current = (self.controls() or Controls("")).policy or RiskPolicy()
        data: dict[str, Any] = {k: v for k, v in current.model_dump().items()
                                if k not in NUMBERS and k not in LISTS}
        for name, (label, kind) in NUMBERS.items():
            data[name] = _number(self.limits[name].value, label, kind)
        for name, field in self.lists.items():
            items = [_instrument(x) for x in field.value.replace(";", ",").split(",") if x.strip()]
            data[name] = tuple(items) if items else None
        data["require_stop_loss"] = bool(self.stop_loss.value)
        return RiskPolicy(**data)

    # -- actions --------------------------------------------------------------------------
    def save(self) -> None:
        """Save the form as the next policy version; loosening asks for consent first."""
        self.begin()
        c = self.controls()
        if c is None:
            return
        try:
            new = self.edited()
        except InvalidInputError as exc:
            self.policy_hint.value = (f'<span class="etoro-nb-error" style="color:#b00020">'
                                      f'{html.escape(exc.field)}: {html.escape(exc.rule)}</span>')
            return
        old = c.policy or RiskPolicy()
        if c.policy is not None and not old.changes(new):
            self.feedback.show_ok("Nothing to change.")
            return
        loosens = old.loosened_by(new)
        name = self.state.data.names()[c.portfolio_id]
        consent = None if not loosens else (
            f"This loosens the risk policy of {name}: " + "; ".join(loosens)
            + ". Its agent may then trade within these wider limits.")
        self.confirm.ask_if(consent, lambda given: self._do_save(c.portfolio_id, new, given))

    def _do_save(self, portfolio_id: str, policy: RiskPolicy, consent: str | None) -> None:
        try:
            saved = self.client.agent_portfolios.set_policy(portfolio_id, policy, consent=consent)
        except EtoroError as exc:
            self.feedback.show_error(exc)
            return
        self.after_change(f"Saved policy version {saved.version} for "
                          f"{self.state.data.names().get(portfolio_id, portfolio_id)}.")

    def pause(self) -> None:
        self._control("pause", "Paused")

    def resume(self) -> None:
        self._control("resume", "Resumed")

    def _control(self, method: str, done: str) -> None:
        self.begin()
        c = self.controls()
        if c is None:
            return
        try:
            getattr(self.client.agent_portfolios, method)(c.portfolio_id)
        except EtoroError as exc:
            self.feedback.show_error(exc)
            return
        self.after_change(f"{done} the agent of {self.state.data.names()[c.portfolio_id]}.")

    def stop(self) -> None:
        """Pause the agent, then revoke every token of the portfolio, behind one confirmation."""
        self.begin()
        c = self.controls()
        if c is None:
            return
        portfolio = self.state.data.portfolio(c.portfolio_id)
        assert portfolio is not None
        message = (f"Stopping the agent of {portfolio.name} pauses it, then revokes all "
                   f"{len(portfolio.tokens)} of its token(s): every agent holding one is refused "
                   "at its very next request. This cannot be undone.")
        self.confirm.ask(message, lambda: self._do_stop(portfolio.id, portfolio.name))

    def _do_stop(self, portfolio_id: str, name: str) -> None:
        try:
            revoked = self.client.agent_portfolios.stop_agent(portfolio_id)
        except EtoroError as exc:
            self.feedback.show_error(exc)
            return
        self.after_change(f"Stopped the agent of {name}: paused, {len(revoked)} token(s) revoked.")


def _number(text: str, label: str, kind: type) -> float | int | None:
    text = text.strip().replace(",", "").replace("_", "")
    if not text:
        return None
    try:
        return kind(text)  # type: ignore[no-any-return]
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise InvalidInputError(label, f"is {what}, or empty for no limit; got {text!r}") from None


def _instrument(text: str) -> int | str:
    """An instrument id (digits) or a symbol."""
    text = text.strip()
    return int(text) if text.isdigit() else text
