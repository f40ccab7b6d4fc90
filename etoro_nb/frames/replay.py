"""Replaying delegation changes: lifecycle events in, the state of every token out. The one
state machine behind ``tokens_from_ledger``, ``grants_from_ledger`` and the expirations
``lifecycle`` derives; pure (a frame in, values out), so any lifecycle frame can be
replayed, from a ledger or written by hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl


@dataclass
class TokenState:
    """One token as the events left it. ``scopes``, ``ips_whitelist`` and ``expires_at``
    are its last grant (minted, then each update that changed them; ``expires_at`` is also
    cut short by a recorded ``token_expired``); ``minted_*`` its first. ``revoked_at`` is
    its first revocation, ``deleted_at`` its portfolio's first deletion (before or after the
    mint), ``portfolio_name`` the name its portfolio was created with (None: not seen)."""

    token_id: str
    portfolio_id: str | None
    token_name: str | None
    minted_at: datetime | None
    minted_scopes: list[str]
    minted_ips: list[str]
    scopes: list[str]
    ips_whitelist: list[str]
    expires_at: datetime | None
    portfolio_name: str | None = None
    revoked_at: datetime | None = None
    deleted_at: datetime | None = None
    expiry_recorded: bool = False  # a token_expired event was recorded for it

    @property
    def ended_at(self) -> datetime | None:
        """When it stopped working other than by expiring: revoked or its portfolio
        deleted, whichever came first."""
        ends = [t for t in (self.revoked_at, self.deleted_at) if t is not None]
        return min(ends) if ends else None


def replay(events: pl.DataFrame) -> dict[str, TokenState]:
    """The state of each token minted in ``events`` (a lifecycle frame: ``kind``, ``ts``,
    ``portfolio_id``, ``token_id``, ``token_name``, ``scopes``, ``ips_whitelist``,
    ``expires_at``, ``detail``; changes known to be made, in order), by token id in mint
    order. Events of a token never seen minted are passed over."""
    names: dict[str, str | None] = {}
    deleted: dict[str, datetime] = {}
    found: dict[str, TokenState] = {}
    for e in events.iter_rows(named=True):
        kind, token_id = e["kind"], e["token_id"]
        detail = json.loads(e["detail"]) if e["detail"] else {}
        if kind == "portfolio_created":
            names[e["portfolio_id"]] = detail.get("name")
        elif kind == "portfolio_deleted":
            deleted.setdefault(e["portfolio_id"], e["ts"])
        elif kind == "token_minted":
            scopes, ips = list(e["scopes"] or []), list(e["ips_whitelist"] or [])
            found[token_id] = TokenState(token_id, e["portfolio_id"], e["token_name"], e["ts"],
                                         scopes, ips, list(scopes), list(ips), e["expires_at"])
        elif token_id not in found:
            continue  # a token this ledger never saw minted
        elif kind == "token_updated":
            token = found[token_id]
            if "scopes" in detail:
                token.scopes = list(detail["scopes"] or [])
            if "ips_whitelist" in detail:
                token.ips_whitelist = list(detail["ips_whitelist"] or [])
            if "expires_at" in detail:
                token.expires_at = absolute(detail["expires_at"], e["ts"])
        elif kind == "token_revoked":
            found[token_id].revoked_at = found[token_id].revoked_at or e["ts"]
        elif kind == "token_expired":  # recorded, not derived
            token = found[token_id]
            token.expiry_recorded = True
            token.expires_at = e["ts"] if token.expires_at is None else min(token.expires_at,
                                                                            e["ts"])
    for token in found.values():
        token.portfolio_name = names.get(token.portfolio_id or "")
        token.deleted_at = deleted.get(token.portfolio_id or "")
    return found


def absolute(value: str | None, at: datetime) -> datetime | None:
    """An expiry as an update gives it (ISO time, or ``+<seconds>s`` after ``at``)."""
    if value is None:
        return None
    if value.startswith("+") and value.endswith("s"):
        return at + timedelta(seconds=float(value[1:-1]))
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def expirations(states: dict[str, TokenState], now: datetime) -> list[dict[str, Any]]:
    """The expirations to derive at ``now``: one per token whose expiry has passed, that
    was neither revoked nor deleted with its portfolio, and whose expiry was not recorded
    (as a ``token_expired`` event's columns, carrying the minted grant)."""
    return [{"ts": t.expires_at, "kind": "token_expired", "portfolio_id": t.portfolio_id,
             "token_id": t.token_id, "token_name": t.token_name, "scopes": t.minted_scopes,
             "ips_whitelist": t.minted_ips, "expires_at": t.expires_at,
             "detail": json.dumps({"derived": True})}
            for t in states.values()
            if t.expires_at is not None and t.expires_at <= now and t.ended_at is None
            and not t.expiry_recorded]
