"""Delegation changes in the ledger: an intent before the request, its outcome after.

The intent is committed before the request that makes a change is sent, and a
``LedgerError`` there stops the request (the ledger fails closed, as for usage events).
After the answer come the outcomes under the intent's ``request_id``: the changes made
(a create makes a portfolio and its first token), or one ``failed`` row when nothing
changed for sure (a refusal, a request never sent, or a reconciliation that found nothing
made). After an ambiguous failure (no answer, a 5xx) nothing more is written and the
intent stays *unfinished* (``frames.unfinished_changes``) until someone looks.

A change already made must reach its caller (a minted secret exists only in the answer),
so an outcome the ledger refuses is a ``LedgerWarning`` and a logged error, not an
exception: the caller gets the result, and the ledger shows the change as unfinished.
"""

from __future__ import annotations

import logging
import uuid
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from etoro_nb.errors import (
    APIError,
    InvalidInputError,
    LedgerError,
    LedgerWarning,
    RealMoneyNotAllowedError,
    ServerError,
)
from etoro_nb.ledger import Ledger
from etoro_nb.models import MintedToken, UserToken

log = logging.getLogger("etoro_nb.client")

# Errors raised before a request left the client: the change was certainly not made.
NEVER_SENT_ERRORS = (LedgerError, InvalidInputError, RealMoneyNotAllowedError)


def _us(at: datetime | None) -> int | None:
    return None if at is None else int(at.timestamp() * 1_000_000)


def grant_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """The token columns of a create or mint request body: what the intent asks for."""
    expires = body.get("expiresAt")
    return {"token_name": body.get("userTokenName"), "scopes": body.get("scopeNames"),
            "ips_whitelist": body.get("ipsWhitelist"),
            "expires_at_us": _us(datetime.fromisoformat(expires.replace("Z", "+00:00")))
            if isinstance(expires, str) else None}


def token_fields(token: UserToken) -> dict[str, Any]:
    """The token columns of a token as it exists."""
    return {"token_id": token.id, "token_name": token.name, "scopes": list(token.scopes),
            "ips_whitelist": list(token.ips_whitelist), "expires_at_us": _us(token.expires_at)}


def proves_nothing_changed(error: BaseException) -> bool:
    """An error after which the change is known not to have been made: the server answered
    with a refusal (not a 5xx, with no earlier attempt unanswered), or nothing was sent."""
    if isinstance(error, NEVER_SENT_ERRORS):
        return True
    return (isinstance(error, APIError) and not isinstance(error, ServerError)
            and not error.ambiguous_before)


@dataclass(frozen=True)
class Change:
    """One delegation change begun: the request id its intent and outcomes share."""

    kind: str
    request_id: str
    portfolio_id: str | None = None
    token_id: str | None = None


class ChangeLog:
    """Records one client's delegation changes (a client without a ledger records none)."""

    def __init__(self, ledger: Ledger | None, clock: Callable[[], datetime]) -> None:
        self.ledger = ledger
        self.clock = clock

    def __repr__(self) -> str:
        return f"ChangeLog({self.ledger!r})"

    def intent(self, kind: str, *, request_id: str | None = None,
               portfolio_id: str | None = None, token_id: str | None = None,
               detail: Mapping[str, Any] | None = None, **columns: Any) -> Change:
        """Commit the intent before the request; a ``LedgerError`` here means the request
        must not be sent. The change's request id is ``request_id``, else a new one: send
        the request with it."""
        change = Change(kind, request_id or str(uuid.uuid4()), portfolio_id, token_id)
        self._append("intent", change, portfolio_id=portfolio_id, token_id=token_id,
                     detail=dict(detail) if detail else None, **columns)
        return change

    def outcome(self, change: Change, kind: str | None = None, *,
                token: UserToken | None = None, portfolio_id: str | None = None,
                token_id: str | None = None, detail: Mapping[str, Any] | None = None) -> None:
        """Record a change made (``kind``, default the intent's). A minted token's
        fingerprint is learnt, so its agent's requests are attributed to it. Never raises
        ``LedgerError``: the change happened, so its caller must still get the result."""
        pid = portfolio_id or change.portfolio_id
        columns: dict[str, Any] = {"token_id": token_id or change.token_id}
        if token is not None:
            columns.update(token_fields(token))
        try:
            if isinstance(token, MintedToken) and self.ledger is not None:
                self.ledger.learn_token(token.secret.get_secret_value(), token.id, pid or "")
            self._append("outcome", change, kind=kind, portfolio_id=pid,
                         detail=dict(detail) if detail else None, **columns)
        except LedgerError as exc:
            log.error("%s (request id %s) was made but not recorded: %s", change.kind,
                      change.request_id, exc)
            warnings.warn(LedgerWarning(
                f"{kind or change.kind} was made, but the ledger could not record it ({exc}); "
                f"it shows as unfinished under request id {change.request_id}"), stacklevel=2)

    def failed(self, change: Change, error: BaseException, *,
               made_nothing: bool = False) -> None:
        """Record that the change was not made, when ``made_nothing`` (the caller checked)
        or the error proves it; otherwise the intent stays unfinished. Never raises: the
        caller is about to raise ``error``."""
        if not (made_nothing or proves_nothing_changed(error)):
            return
        what = (f"{type(error).__name__} {error.status} {error.error_code or ''}".rstrip()
                if isinstance(error, APIError) else type(error).__name__)
        try:
            self._append("failed", change, portfolio_id=change.portfolio_id,
                         token_id=change.token_id, detail={"error": what})
        except LedgerError as exc:
            log.error("could not record that %s (request id %s) failed: %s", change.kind,
                      change.request_id, exc)

    def _append(self, phase: str, change: Change, *, kind: str | None = None,
                **columns: Any) -> None:
        if self.ledger is None:
            return
        self.ledger.append_lifecycle(phase=phase, kind=kind or change.kind,
                                     request_id=change.request_id,
                                     ts_us=_us(self.clock()), **columns)

