"""The frames the ActivityPanel draws from (``frames.grants``, ``frames.least_privilege``,
``shaping.scope_usage_frame``, ``shaping.token_lifetimes_frame``) against plain-Python
references written from their docstrings, on random small inputs: nulls, blanks,
duplicates, empty frames, naive and aware times. Their polars code is folded into few
steps for speed; these pin down that every row, value, dtype and the order stay as
documented."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from etoro_nb import frames
from etoro_nb.charts import shaping
from etoro_nb.scopes import PREFIX

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SCOPES = [f"{PREFIX}trade.demo:read", f"{PREFIX}trade.demo:write", f"{PREFIX}x", "other:y", ""]
TOKEN_IDS = ["t1", "t2", "t3", "a-very-long-token-id-0001"]
LABEL_IDS = ["t1", "t2", "t3", "a-long-id-01"]  # and token ids that need no cutting

PROPERTY = settings(max_examples=150, deadline=None, derandomize=True)


def maybe(*values: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from([None, *values])


# times around NOW, a microsecond either side of the boundaries that matter
instants = st.builds(lambda days, us: NOW + timedelta(days=days, microseconds=us),
                     st.sampled_from([-30, -7, -1, 0, 1, 6, 7, 8]), st.sampled_from([-1, 0, 1]))
times = st.one_of(st.none(), instants)


def _frame(rows: list[dict[str, Any]], schema: pl.Schema) -> pl.DataFrame:
    return frames.frame_of(rows, schema)


def _sort_key(*values: Any) -> tuple[Any, ...]:
    """polars' default order: nulls first."""
    return tuple(item for v in values for item in (v is not None, "" if v is None else v))


# -- grants -------------------------------------------------------------------------------
token_rows = st.lists(st.fixed_dictionaries({
    "portfolio_id": maybe("p1", "p2"), "portfolio_name": maybe("alpha", ""),
    "token_id": maybe(*TOKEN_IDS), "token_name": maybe("bot", ""),
    "scopes": st.one_of(st.none(), st.lists(maybe(*SCOPES), max_size=4)),
    "status": maybe("active", "revoked"),
}), max_size=8)


def grants_reference(tokens: pl.DataFrame) -> pl.DataFrame:
    """One row per token and non-null scope, in the tokens' order."""
    return _frame([{**row, "scope": scope} for row in tokens.iter_rows(named=True)
                   for scope in row["scopes"] or [] if scope is not None], frames.GRANTS_SCHEMA)


@PROPERTY
@given(token_rows)
def test_grants_matches_reference(rows: list[dict[str, Any]]) -> None:
    tokens = _frame(rows, frames.TOKENS_SCHEMA)
    assert_frame_equal(frames.grants(tokens), grants_reference(tokens), check_exact=True)


# -- least privilege ----------------------------------------------------------------------
grant_rows = st.lists(st.fixed_dictionaries({
    "portfolio_id": maybe("p1", "p2"), "portfolio_name": maybe("alpha"),
    "token_id": maybe(*TOKEN_IDS), "token_name": maybe("bot", "other", ""),
    "scope": maybe(*SCOPES), "status": maybe("active"),
}), max_size=8)
usage_rows = st.lists(st.fixed_dictionaries({
    "ts": times, "phase": maybe("outcome", "intent"), "principal": maybe("agent", "owner"),
    "token_id": maybe(*TOKEN_IDS, "unknown"), "scope_required": maybe(*SCOPES),
    "status": maybe(200, 201, 299, 300, 403, 404),
}), max_size=25)
windows = st.sampled_from([None, NOW - timedelta(days=1), NOW, NOW.replace(tzinfo=None),
                           (NOW + timedelta(days=1)).date()])


def _at(value: datetime | date | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return None if value is None else shaping.utc(value)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def least_privilege_reference(grants: pl.DataFrame, usage: pl.DataFrame,
                              since: datetime | date | None,
                              until: datetime | date | None) -> pl.DataFrame:
    """Every grant row (granted) and every counted pair without one; names from the token's
    first grant row; suggested scopes: those used, as often as they have rows; by token
    then scope."""
    start, end = _at(since), _at(until)
    counts: dict[tuple[str, str], list[int]] = {}
    for u in usage.iter_rows(named=True):
        scope = u["scope_required"]
        if (u["phase"] != "outcome" or u["principal"] != "agent" or u["token_id"] is None
                or scope is None or not scope.startswith(PREFIX)):
            continue
        if (start is not None or end is not None) and u["ts"] is None:
            continue
        if (start is not None and u["ts"] < start) or (end is not None and u["ts"] >= end):
            continue
        count = counts.setdefault((u["token_id"], scope), [0, 0])
        count[0] += u["status"] is not None and 200 <= u["status"] <= 299
        count[1] += u["status"] == 403
    names: dict[str, tuple[Any, Any]] = {}
    for g in grants.iter_rows(named=True):
        if g["token_id"] is not None:
            names.setdefault(g["token_id"], (g["portfolio_id"], g["token_name"]))
    pairs = [(g["token_id"], g["scope"], True) for g in grants.iter_rows(named=True)]
    granted = {(t, s) for t, s, _ in pairs}
    pairs += [(t, s, False) for t, s in counts if (t, s) not in granted]
    rows = []
    for token, scope, is_granted in pairs:
        used, refused = counts.get((token, scope), [0, 0])
        rows.append({"token_id": token, "scope": scope, "granted": is_granted, "used": used,
                     "refused": refused,
                     "verdict": "needed" if used else "unused" if is_granted else "missing"})
    for row in rows:
        row["portfolio_id"], row["token_name"] = names.get(row["token_id"], (None, None))
        row["suggested_scopes"] = sorted(r["scope"] for r in rows
                                         if r["used"] and r["token_id"] == row["token_id"])
    rows.sort(key=lambda r: _sort_key(r["token_id"], r["scope"]))
    return _frame(rows, frames.LEAST_PRIVILEGE_SCHEMA)


@PROPERTY
@given(grant_rows, usage_rows, windows, windows)
def test_least_privilege_matches_reference(grant_list: list[dict[str, Any]],
                                           usage_list: list[dict[str, Any]],
                                           since: datetime | date | None,
                                           until: datetime | date | None) -> None:
    grants = _frame(grant_list, frames.GRANTS_SCHEMA)
    usage = _frame([{**dict.fromkeys(frames.USAGE_SCHEMA), **u} for u in usage_list],
                   frames.USAGE_SCHEMA)
    assert_frame_equal(frames.least_privilege(grants, usage, since=since, until=until),
                       least_privilege_reference(grants, usage, since, until), check_exact=True)


# -- scope usage --------------------------------------------------------------------------
least_rows = st.lists(st.fixed_dictionaries({
    "portfolio_id": maybe("p1"), "token_id": maybe(*LABEL_IDS, *TOKEN_IDS),
    "token_name": maybe("bot", "b", ""), "scope": maybe(*SCOPES), "granted": maybe(True, False),
    "used": maybe(0, 1, 12), "refused": maybe(0, 2), "verdict": maybe("needed", "unused", ""),
    "suggested_scopes": st.just([]),
}), max_size=12)


def _label(name: str | None, token_id: str) -> str:
    short = token_id if len(token_id) <= 10 else token_id[:8] + "…"
    return f"{name} ({short})" if name else short


def scope_usage_reference(least: pl.DataFrame) -> pl.DataFrame:
    """Every token x scope pair of the rows with both, tokens by (first given) name then id,
    scopes by name; each pair from its last row."""
    given = [r for r in least.iter_rows(named=True)
             if r["token_id"] is not None and r["scope"] is not None]
    names: dict[str, str | None] = {}
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for r in given:
        if names.get(r["token_id"]) is None:
            names[r["token_id"]] = r["token_name"]
        cells[(r["token_id"], r["scope"])] = r
    rows = []
    for token in sorted(names, key=lambda t: (names[t] or "", t)):
        for scope in sorted({s for _, s in cells}):
            cell = cells.get((token, scope))
            used = (cell or {}).get("used") or 0
            refused = (cell or {}).get("refused") or 0
            granted = bool((cell or {}).get("granted"))
            rows.append({
                "token_id": token, "token": _label(names[token], token), "scope": scope,
                "scope_label": scope.removeprefix(PREFIX),
                "state": "used" if used > 0 else "granted, unused" if granted
                else "refused" if refused > 0 else "not granted",
                "granted": granted, "used": used, "refused": refused,
                "verdict": "not granted" if cell is None else cell["verdict"] or "",
                "text": str(used) if used else f"✕{refused}" if refused else ""})
    return _frame(rows, shaping.SCOPE_USAGE_SCHEMA)


@PROPERTY
@given(least_rows)
def test_scope_usage_frame_matches_reference(rows: list[dict[str, Any]]) -> None:
    least = _frame(rows, frames.LEAST_PRIVILEGE_SCHEMA)
    assert_frame_equal(shaping.scope_usage_frame(least), scope_usage_reference(least),
                       check_exact=True)


# -- token lifetimes ----------------------------------------------------------------------
lifetime_rows = st.lists(st.fixed_dictionaries({
    "portfolio_name": maybe("alpha", "beta", ""), "token_id": maybe(*LABEL_IDS, *TOKEN_IDS),
    "token_name": maybe("bot", ""), "application": maybe("mcp:x", ""),
    "scopes": st.one_of(st.none(), st.lists(st.sampled_from(SCOPES), max_size=3)),
    "created_at": times, "expires_at": times,
    "revoked_at": st.one_of(st.none(), st.none(), instants),
    "status": maybe("active", "revoked", "expired"),
}), max_size=8, unique_by=lambda r: r["token_id"])  # ids are unique, as frames.tokens gives them
zones = st.sampled_from(["UTC", None, "America/New_York"])


def token_lifetimes_reference(tokens: pl.DataFrame, now: datetime,
                              within: timedelta) -> pl.DataFrame:
    """Per token with an id: its status at ``now`` (revoked if its status says so), its span
    and how it ends; by whether it has a start, portfolio name (none last), start and id."""
    now = shaping.utc(now)
    rows = []
    for r in tokens.iter_rows(named=True):
        if r["token_id"] is None:
            continue
        created, expires, revoked_at = (None if r[c] is None else shaping.utc(r[c])
                                        for c in ("created_at", "expires_at", "revoked_at"))
        status = ("revoked" if r["status"] == "revoked"
                  else frames.token_status(expires, revoked_at, now, within))
        ended = min((t for t in (expires, revoked_at) if t is not None), default=None)
        if status == "revoked":
            end, ends = ended or now, "revoked" if ended else "revoked (time unknown)"
        else:
            end = expires or now
            ends = "never expires" if expires is None else "expired" if status == "expired" else "expires"
        scopes = ", ".join(r["scopes"] or [])
        rows.append({
            "token_id": r["token_id"], "token": _label(r["token_name"], r["token_id"]),
            "portfolio": r["portfolio_name"] or "—", "application": r["application"] or "unknown",
            "scopes": scopes or "—", "status": status, "start": created, "end": end, "ends": ends,
            "duration_ms": None if created is None else (end - created).total_seconds() * 1000,
            "_name": r["portfolio_name"]})
    rows.sort(key=lambda r: (r["start"] is None, "\uffff" if r["_name"] is None else r["_name"],
                             r["start"] or now, r["token_id"]))
    return _frame([{k: v for k, v in row.items() if k != "_name"} for row in rows],
                  shaping.TOKEN_LIFETIMES_SCHEMA)


@PROPERTY
@given(lifetime_rows, zones, st.sampled_from([NOW, NOW.replace(tzinfo=None),
                                               NOW.astimezone(timezone(timedelta(hours=-3)))]),
       st.sampled_from([timedelta(days=7), timedelta(0)]))
def test_token_lifetimes_frame_matches_reference(rows: list[dict[str, Any]], zone: str | None,
                                                 now: datetime, within: timedelta) -> None:
    tokens = _frame([{**dict.fromkeys(frames.TOKENS_SCHEMA), **r} for r in rows],
                    frames.TOKENS_SCHEMA)
    times_ = ["created_at", "expires_at", "revoked_at"]
    tokens = tokens.with_columns(pl.col(times_).dt.replace_time_zone(None) if zone is None
                                 else pl.col(times_).dt.convert_time_zone(zone))
    got = shaping.token_lifetimes_frame(tokens, now=now, expiring_within=within)
    expected = token_lifetimes_reference(tokens, now, within)
    # polars' float division may differ from timedelta.total_seconds() in the last bits
    assert_frame_equal(got.drop("duration_ms"), expected.drop("duration_ms"), check_exact=True)
    assert_frame_equal(got.select("duration_ms"), expected.select("duration_ms"), check_exact=False,
                       rel_tol=1e-12, abs_tol=0)
