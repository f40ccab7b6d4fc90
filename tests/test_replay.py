"""replay: hand-written lifecycle frames in, token states out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from etoro_nb.frames import LIFECYCLE_SCHEMA
from etoro_nb.frames.replay import expirations, replay

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _events(*rows: dict[str, Any]) -> pl.DataFrame:
    full = [{**dict.fromkeys(LIFECYCLE_SCHEMA), "seq": i + 1, **row,
             "detail": json.dumps(row["detail"]) if row.get("detail") is not None else None}
            for i, row in enumerate(rows)]
    return pl.DataFrame(full, schema=LIFECYCLE_SCHEMA, orient="row")


def _minted(token: str, portfolio: str = "p1", at: datetime = T0, **more: Any) -> dict[str, Any]:
    return {"ts": at, "kind": "token_minted", "portfolio_id": portfolio, "token_id": token,
            "token_name": f"bot-{token}", "scopes": ["a:read", "a:write"],
            "ips_whitelist": ["1.2.3.4"], **more}


def test_the_last_grant_is_the_minted_one_changed_by_each_update() -> None:
    states = replay(_events(
        {"ts": T0, "kind": "portfolio_created", "portfolio_id": "p1",
         "detail": {"name": "alpha"}},
        _minted("t1", expires_at=T0 + timedelta(days=30)),
        {"ts": T0 + timedelta(hours=1), "kind": "token_updated", "token_id": "t1",
         "detail": {"scopes": ["a:read"], "expires_at": "+3600s"}},
        {"ts": T0 + timedelta(hours=2), "kind": "token_updated", "token_id": "t1",
         "detail": {"ips_whitelist": None}},
    ))
    t1 = states["t1"]
    assert (t1.portfolio_name, t1.token_name, t1.minted_at) == ("alpha", "bot-t1", T0)
    assert (t1.minted_scopes, t1.minted_ips) == (["a:read", "a:write"], ["1.2.3.4"])
    assert (t1.scopes, t1.ips_whitelist) == (["a:read"], [])
    assert t1.expires_at == T0 + timedelta(hours=2)
    assert t1.ended_at is None


def test_a_token_ends_at_its_first_revocation_or_its_portfolios_deletion() -> None:
    states = replay(_events(
        _minted("t1"), _minted("t2"), _minted("t3", portfolio="p2"),
        {"ts": T0 + timedelta(days=2), "kind": "token_revoked", "token_id": "t1"},
        {"ts": T0 + timedelta(days=3), "kind": "token_revoked", "token_id": "t1"},
        {"ts": T0 + timedelta(days=1), "kind": "portfolio_deleted", "portfolio_id": "p1"},
        {"ts": T0 + timedelta(days=9), "kind": "portfolio_deleted", "portfolio_id": "p1"},
    ))
    assert states["t1"].revoked_at == T0 + timedelta(days=2)
    assert states["t1"].ended_at == T0 + timedelta(days=1)  # the deletion came first
    assert states["t2"].ended_at == T0 + timedelta(days=1) and states["t2"].revoked_at is None
    assert states["t3"].ended_at is None
    assert list(states) == ["t1", "t2", "t3"]  # mint order


def test_events_of_a_token_never_seen_minted_are_passed_over() -> None:
    states = replay(_events(
        {"ts": T0, "kind": "token_updated", "token_id": "ghost", "detail": {"scopes": []}},
        {"ts": T0, "kind": "token_revoked", "token_id": "ghost"},
    ))
    assert states == {}


def test_expirations_are_derived_once_passed_unless_ended_or_recorded() -> None:
    states = replay(_events(
        _minted("due", expires_at=T0 + timedelta(days=1)),
        _minted("later", expires_at=T0 + timedelta(days=10)),
        _minted("revoked", expires_at=T0 + timedelta(days=1)),
        _minted("recorded", expires_at=T0 + timedelta(days=5)),
        _minted("never"),
        {"ts": T0 + timedelta(hours=1), "kind": "token_revoked", "token_id": "revoked"},
        {"ts": T0 + timedelta(days=2), "kind": "token_expired", "token_id": "recorded"},
    ))
    assert states["recorded"].expires_at == T0 + timedelta(days=2)  # cut short when recorded
    derived = expirations(states, T0 + timedelta(days=3))
    assert [(d["token_id"], d["ts"], d["scopes"]) for d in derived] == \
        [("due", T0 + timedelta(days=1), ["a:read", "a:write"])]
    assert json.loads(derived[0]["detail"]) == {"derived": True}
    assert expirations(states, T0) == []
