"""Pieces every panel shares: the environment badge, inline feedback, the consent step,
and the one-time secret display."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from datetime import timedelta

import ipywidgets as w

from etoro_nb import scopes as scope_names
from etoro_nb.client import EtoroClient
from etoro_nb.errors import APIError, EtoroError
from etoro_nb.models import MintedToken
from widgets.copy_button import CopyButton


def environment_label(client: EtoroClient, *, real: bool = True) -> str:
    """SANDBOX, LIVE real or LIVE demo: what a panel talks to, in words."""
    if client.environment == "sandbox":
        return "SANDBOX · simulated money"
    return "LIVE real · real money" if real else "LIVE demo · practice account"


def panel_repr(panel: w.Widget, client: EtoroClient, detail: str) -> str:
    """A panel's text form (a notebook's text/plain output, a log line): its class, the
    environment and a summary. Never the widget tree, whose values may hold a secret."""
    return f"<{type(panel).__name__} · {environment_label(client)} · {detail}>"


def environment_badge(client: EtoroClient, *, real: bool = True) -> w.HTML:
    """SANDBOX, LIVE demo or LIVE real, unmistakably, at the top of every panel."""
    text = environment_label(client, real=real)
    colour = ("#1b7f3b" if client.environment == "sandbox" else "#b00020" if real else "#b26a00")
    return w.HTML(f'<span class="etoro-nb-env" style="background:{colour};color:white;'
                  f'padding:2px 8px;border-radius:4px;font-weight:bold;white-space:nowrap">{text}</span>')


def error_text(exc: EtoroError, *, request_id: bool = True) -> str:
    """One format for every error a view shows: ``status code: message (request id ...)``,
    with no word said twice (a message that starts with its own code loses that prefix).
    ``request_id=False`` leaves the id out (for outputs that must not change run to run)."""
    if not isinstance(exc, APIError):
        return str(exc)
    code = exc.error_code or ""
    message = (exc.error_message or "").strip()
    for prefix in {code, _REASONS.get(exc.status, "")} - {""}:
        if message.lower().startswith(prefix.lower()):
            message = message[len(prefix):].lstrip(" :-")
    head = " ".join(str(part) for part in (exc.status, code) if part)
    text = f"{head}: {message}" if message else head
    return f"{text} (request id {exc.request_id})" if request_id else text


_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            409: "Conflict", 429: "Too Many Requests", 500: "Internal Server Error"}


class Feedback(w.HTML):
    """Where a view says what happened: errors in one format (code, message, request id),
    never a traceback. A view clears it when its next action starts."""

    def show_error(self, exc: EtoroError | str) -> None:
        text = exc if isinstance(exc, str) else error_text(exc)
        self.value = f'<div class="etoro-nb-error" style="color:#b00020">{html.escape(text)}</div>'

    def show_ok(self, message: str) -> None:
        self.value = f'<div class="etoro-nb-ok" style="color:#1b7f3b">{html.escape(message)}</div>'

    def show_note(self, message: str) -> None:
        """A standing remark about the data shown (not the outcome of an action)."""
        self.value = f'<div class="etoro-nb-note" style="color:#555">{html.escape(message)}</div>'

    def clear(self) -> None:
        self.value = ""


def badge(text: str, colour: str) -> str:
    """A coloured status badge, as HTML (the text escaped)."""
    return (f'<span class="etoro-nb-badge" style="background:{colour};color:white;'
            f'padding:0 6px;border-radius:8px;font-size:90%">{html.escape(text)}</span>')


def two_columns(*cells: w.Widget) -> w.GridBox:
    """A compact form: labelled fields in two columns, filling the cell's width."""
    for cell in cells:
        if isinstance(cell, w.DOMWidget):
            cell.layout.width = "auto"
            cell.layout.min_width = "0"
            style = getattr(cell, "style", None)
            if style is not None and "description_width" in style.keys:
                style.description_width = "110px"
    return w.GridBox(list(cells), layout=w.Layout(
        grid_template_columns="repeat(2, minmax(0, 1fr))", grid_gap="2px 16px", width="100%"))


def scope_boxes(allowed: Iterable[str]) -> dict[str, w.Checkbox]:
    """One checkbox per scope, labelled with its short name (the full name as tooltip)."""
    return {s: w.Checkbox(value=False, description=scope_names.short(s), indent=False,
                          description_allow_html=False, tooltip=s,
                          layout=w.Layout(width="auto"))
            for s in allowed}


def scopes_cell(title: str, boxes: dict[str, w.Checkbox]) -> w.VBox:
    """The scope checkboxes as one cell of a two-column form, two boxes a row."""
    return w.VBox([w.HTML(f"<small>{html.escape(title)}</small>"),
                   w.GridBox(list(boxes.values()), layout=w.Layout(
                       grid_template_columns="repeat(2, auto)", width="100%"))])


def consent_text(scopes: Iterable[str], *, environment: str,
                 investment_usd: float | None = None) -> str | None:
    """Plain words for what a grant lets an agent do, when it lets it trade; else None."""
    parts = []
    for scope in scope_names.writes(scopes):  # reading needs no consent
        if scope.account == "demo":
            parts.append(scope.meaning)
            continue
        money = ("up to the invested amount" if investment_usd is None
                 else f"up to the invested {investment_usd:,.2f} USD")
        where = ("simulated in this sandbox" if environment == "sandbox"
                 else "REAL money on your live eToro account")
        parts.append(f"{scope.meaning}, moving {money} of your money ({where})")
    if not parts:
        return None
    return "The agent holding this token will be able to " + "; and ".join(parts) + "."


class ConfirmBox(w.VBox):
    """A confirmation step: a message and Confirm / Cancel. Hidden until asked; its parts
    are made when first asked for (most panels are built and never confirm anything)."""

    def __init__(self) -> None:
        self._action: Callable[[], None] | None = None
        self._built: tuple[w.HTML, w.Button, w.Button] | None = None
        super().__init__([], layout=w.Layout(display="none"))

    def _made(self) -> tuple[w.HTML, w.Button, w.Button]:
        if self._built is None:
            message = w.HTML()
            confirm = w.Button(description="Confirm", button_style="warning")
            cancel = w.Button(description="Cancel")
            confirm.on_click(lambda _: self._run())
            cancel.on_click(lambda _: self.close_step())
            self._built = (message, confirm, cancel)
            self.children = [message, w.HBox([confirm, cancel])]
        return self._built

    @property
    def message(self) -> w.HTML:
        return self._made()[0]

    @property
    def confirm(self) -> w.Button:
        return self._made()[1]

    @property
    def cancel(self) -> w.Button:
        return self._made()[2]

    def ask(self, message: str, action: Callable[[], None]) -> None:
        self.message.value = ('<div class="etoro-nb-consent"><b>Please confirm.</b> '
                              f"{html.escape(message)}</div>")
        self._action = action
        self.layout.display = ""

    def ask_if(self, consent: str | None, action: Callable[[str | None], None]) -> None:
        """Run ``action(None)`` at once when no consent is needed, else ask first and run
        ``action(consent)`` on Confirm (the consent is then recorded with the change)."""
        if consent is None:
            action(None)
        else:
            self.ask(consent, lambda: action(consent))

    @property
    def pending(self) -> bool:
        return self._action is not None

    def _run(self) -> None:
        action = self._action
        self.close_step()
        if action is not None:
            action()

    def close_step(self) -> None:
        self._action = None
        if self._built is not None:
            self._built[0].value = ""
        self.layout.display = "none"


class _SecretText(w.Text):
    """The secret's field: ipywidgets' repr prints a widget's values, so a cell ending in
    this field (or in anything holding it) would store the secret in the notebook."""

    def __repr__(self) -> str:
        return f"<secret field: {'empty' if not self.value else 'holds a secret'}>"


class SecretReveal(w.VBox):
    """Shows a minted token's secret once, to copy; Dismiss wipes it from the widget state.
    The field fits its cell (long secrets scroll inside it). Its parts are made when first
    shown (or asked for)."""

    def __init__(self) -> None:
        self._built: tuple[w.HTML, w.Text, CopyButton, w.Button] | None = None
        super().__init__([], layout=w.Layout(width="100%", max_width="100%", display="none"))

    def _made(self) -> tuple[w.HTML, w.Text, CopyButton, w.Button]:
        if self._built is None:
            warning = w.HTML()
            secret = _SecretText(layout=w.Layout(width="auto", flex="1 1 auto", min_width="0"))
            secret.add_class("etoro-nb-secret-value")
            copy = CopyButton(label="Copy")
            dismiss = w.Button(description="I have copied it: dismiss", layout=w.Layout(width="auto"))
            dismiss.on_click(lambda _: self.clear())
            self._built = (warning, secret, copy, dismiss)
            self.children = [warning, w.HBox([secret, copy], layout=w.Layout(width="100%")), dismiss]
        return self._built

    def __repr__(self) -> str:
        return f"<SecretReveal: {'shown' if self.layout.display == '' else 'empty'}>"

    @property
    def warning(self) -> w.HTML:
        return self._made()[0]

    @property
    def secret(self) -> w.Text:
        return self._made()[1]

    @property
    def copy(self) -> CopyButton:
        return self._made()[2]

    @property
    def dismiss(self) -> w.Button:
        return self._made()[3]

    def show(self, token: MintedToken) -> None:
        self.warning.value = (
            f'<div class="etoro-nb-secret" style="color:#b26a00"><b>Copy this secret now for '
            f'token {html.escape(token.name)}.</b> It is shown once and never again; give it '
            f'only to the agent that will use it.</div>')
        self.secret.value = token.secret.get_secret_value()
        self.copy.text = self.secret.value
        self.layout.display = ""

    def clear(self) -> None:
        if self._built is not None:  # never shown: nothing to wipe
            warning, secret, copy, _ = self._built
            secret.value = ""
            copy.clear()
            warning.value = ""
        self.layout.display = "none"


def parse_ips(text: str) -> list[str] | None:
    """Comma- or space-separated IPv4 addresses; empty means no whitelist."""
    parts = [p for p in text.replace(",", " ").split() if p]
    return parts or None


def expiry(days: int | None) -> timedelta | None:
    """An expiry dropdown's value (days, or None for never) as ``expires_at`` takes it."""
    return None if days is None else timedelta(days=days)


EXPIRY_CHOICES: list[tuple[str, int | None]] = [
    ("never", None), ("1 day", 1), ("7 days", 7), ("30 days", 30), ("90 days", 90)]
