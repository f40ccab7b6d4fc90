"""View: what every panel shares: the shared state it renders, and the rules for messages.

A view renders from ``CockpitState`` only (``render``, on every new revision) and follows
its selected portfolio (``follow_selection``). An action starts with ``begin()``: every
view of the state then clears the messages, hints, pending confirmations and secrets of
earlier actions. After a change, ``after_change`` refreshes the state (so every view
shows it) and then says what happened (and whether the refresh failed)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ipywidgets as w

from etoro_nb.client import EtoroClient
from widgets._common import ConfirmBox, Feedback, SecretReveal
from widgets.state import CockpitState


class View(w.VBox):
    """Base of the panels; subclasses set ``feedback`` and implement ``render``."""

    feedback: Feedback

    def __init__(self, client: EtoroClient, state: CockpitState | None,
                 children: list[w.Widget]) -> None:
        self.client = client
        self.state = state if state is not None else CockpitState.of(client)
        self.syncing = False
        super().__init__(children)

    def start(self) -> None:
        """Observe the state and draw it (loading it first if no view has yet)."""
        self.state.observe(lambda _: self._synced(self.render), "revision")
        self.state.observe(lambda _: self._synced(self.follow_selection), "selected")
        self.state.observe(lambda _: self._stale(), "action")
        self.state.observe(lambda c: self._refresh_failed(c["new"]), "error")
        if self.state.revision:  # loaded already: draw it (a first load draws through
            self._synced(self.render)  # the revision it makes)
        else:
            self.state.ensure()
        if self.state.error:
            self.feedback.show_error(self.state.error)

    def render(self) -> None:
        raise NotImplementedError

    @contextmanager
    def quiet(self) -> Iterator[None]:
        """While the view sets its own controls from the state: their change handlers
        must not act as if the reader had changed them (``syncing`` is True)."""
        before, self.syncing = self.syncing, True
        try:
            yield
        finally:
            self.syncing = before

    def _synced(self, draw: Any) -> None:
        with self.quiet():
            draw()

    def follow_selection(self) -> None:
        """Show the state's selected portfolio (views that follow one override this)."""

    def refresh(self) -> None:
        """Reload the shared state: every view of it redraws."""
        self.begin()
        self.state.refresh()

    def begin(self) -> None:
        """Start an action: messages of earlier actions, in every view, are cleared."""
        self.state.begin_action()

    def after_change(self, message: str) -> bool:
        """Refresh the state, then say what was done; returns whether the refresh loaded.
        A failed refresh is said too (over the success, the reader would take the stale
        views for the new state)."""
        if self.state.refresh():
            self.feedback.show_ok(message)
            return True
        self.feedback.show_error(f"{message} The views still show the data from before it: "
                                 f"refreshing failed: {self.state.error}")
        return False

    def _stale(self) -> None:
        self.feedback.clear()
        for name in ("form_hint", "policy_hint"):
            hint = getattr(self, name, None)
            if isinstance(hint, w.HTML):
                hint.value = ""
        for part in self._parts(ConfirmBox):
            part.close_step()
        for secret in self._parts(SecretReveal):
            secret.clear()

    def _parts(self, kind: type[Any]) -> list[Any]:
        return [v for v in vars(self).values() if isinstance(v, kind)]

    def _refresh_failed(self, error: str) -> None:
        if error:
            self.feedback.show_error(error)
