"""The resources: the risk policy in force, the token (scopes as the server gives them,
grant and expiry as the ledger recorded them) and the agent's recent activity from the
ledger (requests with the application that made them, and risk-boundary events). Each is
one JSON document; nothing in them is a secret (tokens are named by id)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import mcp_types as types

from etoro_nb.mcp.backend import Backend

RECENT = 50
MIME = "application/json"


def _policy(b: Backend) -> dict[str, Any]:
    c = b.controls
    return {
        "portfolio_id": b.portfolio_id, "account": b.account,
        "owner": None if c is None else {
            "version": c.version, "limits": c.policy.limits() if c.policy else None,
            "paused": c.paused, "reason": c.reason,
            "changed_at": _iso(c.changed_at), "virtual_balance_usd": c.virtual_balance_usd},
        "server": b.policy.limits() if b.policy is not None else None,
        "note": "every opening order is held to both policies; closes and cancels only to "
                "scope, pause and expiry",
    }


def _token(b: Backend) -> dict[str, Any]:
    out: dict[str, Any] = {
        "token_id": b.token_id, "portfolio_id": b.portfolio_id, "account": b.account,
        "environment": b.agent.environment, "application": b.application,
        "scopes": sorted(b.scopes), "refused": b.refused is not None,
        "refusal": None if b.refused is None else b.refused.message}
    ledger = b.ledger
    if ledger is not None and b.token_id is not None:
        from etoro_nb.frames.ledger import tokens_from_ledger

        rows = tokens_from_ledger(ledger).filter(token_id=b.token_id).to_dicts()
        if rows:
            row = rows[0]
            out.update(token_name=row["token_name"], portfolio_name=row["portfolio_name"],
                       granted_scopes=row["scopes"], expires_at=_iso(row["expires_at"]),
                       status=row["status"], revoked_at=_iso(row["revoked_at"]))
            return out
    out["expires_at"] = "unknown: the ledger did not see this token minted"
    return out


def _activity(b: Backend) -> dict[str, Any]:
    ledger = b.ledger
    if ledger is None:
        return {"requests": [], "policy_events": [], "note": "no ledger"}
    from etoro_nb.frames.ledger import policy_events, requests

    shown_requests: list[dict[str, Any]] = []
    if b.token_id is not None:
        shown_requests = (requests(ledger, token=b.token_id).tail(RECENT)
                          .select("ts", "application", "operation_id", "status", "error_code",
                                  "request_id").to_dicts())
    events = (policy_events(ledger, portfolio=b.portfolio_id) if b.portfolio_id
              else None)
    shown: list[dict[str, Any]] = []
    if events is not None:
        shown = (events.tail(RECENT).select("ts", "kind", "source", "rule", "limit", "attempted",
                                            "reason", "status", "error_code", "request_id",
                                            "application")
                 .to_dicts())
    return {"requests": [_jsonable(r) for r in shown_requests],
            "policy_events": [_jsonable(r) for r in shown]}


RESOURCES: dict[str, tuple[str, str, Callable[[Backend], dict[str, Any]]]] = {
    "etoro-nb://policy": ("policy", "The risk policy in force (the owner's and this server's) "
                          "and whether the owner paused the agent", _policy),
    "etoro-nb://token": ("token", "This token's scopes now, its grant and expiry", _token),
    "etoro-nb://activity": ("activity", f"The agent's last {RECENT} requests (with the "
                            "application that made each) and risk-boundary events, from the "
                            "ledger", _activity),
}


def listed() -> list[types.Resource]:
    return [types.Resource(uri=uri, name=name, description=text, mime_type=MIME)
            for uri, (name, text, _) in RESOURCES.items()]


def read(b: Backend, uri: str) -> str:
    """The resource's JSON (``KeyError`` for an unknown uri)."""
    return json.dumps(RESOURCES[uri][2](b), indent=1, sort_keys=True, default=str)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (_iso(v) if isinstance(v, datetime) else v) for k, v in row.items()}
