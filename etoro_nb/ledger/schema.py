"""The ledger's schema, as named migrations applied once each and recorded.

Each migration runs in one transaction together with its row in ``_migrations``, so a
ledger is never half-migrated. Event tables are append-only: triggers in the database
refuse every UPDATE, and every DELETE except while a seal moves rows into a segment.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

USAGE_COLUMNS = (
    "seq", "ts_us", "phase", "request_id", "attempt", "principal", "portfolio_id", "token_id",
    "token_fingerprint", "environment", "method", "route", "operation_id", "scope_required",
    "status", "error_code", "latency_ms",
)
LIFECYCLE_COLUMNS = (
    "seq", "ts_us", "request_id", "kind", "portfolio_id", "token_id", "token_name", "scopes",
    "ips_whitelist", "expires_at_us", "detail",
)
SEGMENT_COLUMNS = (
    "seq", "ts_us", "table_name", "first_seq", "last_seq", "rows", "file", "sha256",
    "first_prev_hash", "last_hash",
)
CHAINED = {"usage_events": USAGE_COLUMNS, "lifecycle_events": LIFECYCLE_COLUMNS,
           "segments": SEGMENT_COLUMNS}
SEALABLE = ("usage_events", "lifecycle_events")
REAL_COLUMNS = frozenset({"latency_ms"})
GENESIS = "0" * 64

_V1 = """
CREATE TABLE ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE ledger_state (id INTEGER PRIMARY KEY CHECK (id = 1), sealing INTEGER NOT NULL);
INSERT INTO ledger_state (id, sealing) VALUES (1, 0);
CREATE TABLE usage_events (
    seq INTEGER PRIMARY KEY,
    ts_us INTEGER NOT NULL,
    phase TEXT NOT NULL CHECK (phase IN ('intent', 'outcome')),
    request_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    principal TEXT NOT NULL CHECK (principal IN ('owner', 'agent')),
    portfolio_id TEXT,
    token_id TEXT,
    token_fingerprint TEXT,
    environment TEXT NOT NULL CHECK (environment IN ('sandbox', 'live')),
    method TEXT NOT NULL,
    route TEXT NOT NULL,
    operation_id TEXT NOT NULL,
    scope_required TEXT,
    status INTEGER,
    error_code TEXT,
    latency_ms REAL,
    prev_hash TEXT NOT NULL,
    row_hash TEXT NOT NULL
);
CREATE TABLE lifecycle_events (
    seq INTEGER PRIMARY KEY,
    ts_us INTEGER NOT NULL,
    request_id TEXT,
    kind TEXT NOT NULL CHECK (kind IN ('portfolio_created', 'portfolio_deleted', 'token_minted',
                                       'token_updated', 'token_revoked', 'token_expired')),
    portfolio_id TEXT,
    token_id TEXT,
    token_name TEXT,
    scopes TEXT,
    ips_whitelist TEXT,
    expires_at_us INTEGER,
    detail TEXT,
    prev_hash TEXT NOT NULL,
    row_hash TEXT NOT NULL
);
CREATE TABLE segments (
    seq INTEGER PRIMARY KEY,
    ts_us INTEGER NOT NULL,
    table_name TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    file TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    first_prev_hash TEXT NOT NULL,
    last_hash TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    row_hash TEXT NOT NULL
);
CREATE TABLE token_fingerprints (
    fingerprint TEXT PRIMARY KEY,
    token_id TEXT NOT NULL,
    portfolio_id TEXT NOT NULL,
    ts_us INTEGER NOT NULL
);
CREATE INDEX usage_by_request ON usage_events (request_id, attempt);
"""


def _append_only_triggers() -> str:
    out = []
    for table in ("usage_events", "lifecycle_events", "segments", "token_fingerprints"):
        out.append(f"""
CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: {table} rows cannot be changed'); END;""")
        guard = ("" if table not in SEALABLE else
                 " WHEN (SELECT sealing FROM ledger_state WHERE id = 1) = 0")
        out.append(f"""
CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}{guard}
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: {table} rows cannot be deleted'); END;""")
    return "\n".join(out)


MIGRATIONS: dict[str, str] = {
    "0001_events": _V1,
    "0002_append_only": _append_only_triggers(),
}


def migrate(conn: sqlite3.Connection, on_applied: Callable[[str], None] | None = None) -> None:
    """Apply every migration not yet recorded, each in its own transaction."""
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, "
                 "applied_us INTEGER NOT NULL)")
    for name, sql in MIGRATIONS.items():
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = conn.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone()
            if done is None:
                for statement in _statements(sql):
                    conn.execute(statement)
                conn.execute("INSERT INTO _migrations (name, applied_us) VALUES (?, ?)",
                             (name, time.time_ns() // 1000))
                if on_applied is not None:
                    on_applied(name)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def _statements(sql: str) -> list[str]:
    """Split a script into statements (triggers keep their inner semicolons)."""
    out: list[str] = []
    buf = ""
    for line in sql.strip().splitlines():
        buf += line + "\n"
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    return [s for s in out if s]
