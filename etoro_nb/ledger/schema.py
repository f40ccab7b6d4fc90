"""The ledger's schema, as named migrations (``MIGRATIONS``) that ``etoro_nb.migrations``
applies once each, in one transaction with their record, so a ledger is never half-migrated.

Event tables are append-only: triggers in the database refuse every UPDATE and every
DELETE, except the DELETE of a row that a ``segments`` row already holds
(``0003_seal_guard``). A ``segments`` row is accepted only if it continues its table's
segments and names live rows exactly (first row's ``prev_hash``, last row's ``row_hash``,
no gap), so no flag or forged segment lets a row go that no segment holds.

The triggers stop mistakes and casual edits, not an attacker: anyone who can write the
file can drop them. What proves integrity is the hash chain (``verify``) and, for the
newest rows, a signed checkpoint kept elsewhere (``checkpoint``).

The columns of each table are specified once, in ``tables``; the names here are made from
those specs. ``0003_seal_guard`` also
gives each ledger a random identity (``ledger_meta.ledger_id``) that checkpoints name.
"""

from __future__ import annotations

from etoro_nb.ledger.tables import AGENT_KINDS as AGENT_KINDS  # re-exported
from etoro_nb.ledger.tables import DELEGATION_KINDS as DELEGATION_KINDS  # re-exported
from etoro_nb.ledger.tables import LIFECYCLE, SEGMENTS, TABLES, USAGE

# The columns of each chained table, from its spec (``tables``).
USAGE_COLUMNS = USAGE.names
LIFECYCLE_COLUMNS = LIFECYCLE.names
SEGMENT_COLUMNS = SEGMENTS.names
CHAINED = {name: table.names for name, table in TABLES.items()}
SEALABLE = ("usage_events", "lifecycle_events")
REAL_COLUMNS = frozenset().union(*(table.real for table in TABLES.values()))
GENESIS = "0" * 64
LEDGER_ID = "ledger_id"  # the ledger_meta key of the ledger's random identity

# The migrations are history: literal, never regenerated from the specs (a ledger made by
# them must match the specs: tests/test_ledger_spec.py).
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
        out.append(_no_update(table))
        guard = ("" if table not in SEALABLE else
                 " WHEN (SELECT sealing FROM ledger_state WHERE id = 1) = 0")
        out.append(f"""
CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}{guard}
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: {table} rows cannot be deleted'); END;""")
    return "\n".join(out)


def _no_update(table: str) -> str:
    return f"""
CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: {table} rows cannot be changed'); END;"""


def _guarded_delete(table: str) -> str:
    """A sealable table's rows go only once a segment holds them (``0003_seal_guard``)."""
    refuse_delete = (f"the ledger is append-only: {table} rows cannot be deleted unless a "
                     "sealed segment holds them")
    return f"""
CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
WHEN NOT EXISTS (SELECT 1 FROM segments WHERE table_name = '{table}'
                 AND OLD.seq BETWEEN first_seq AND last_seq)
BEGIN SELECT RAISE(ABORT, '{refuse_delete}'); END;"""


def _segments_hold(table: str) -> str:
    """A segment of a sealable table is accepted only if it names its live rows exactly."""
    refuse_segment = (f"a segment must hold the live {table} rows that follow the previous "
                      "segment, with their chain hashes")
    return f"""
CREATE TRIGGER segments_hold_{table} BEFORE INSERT ON segments
WHEN NEW.table_name = '{table}' AND (
    NEW.first_seq <> 1 + coalesce((SELECT max(last_seq) FROM segments
                                   WHERE table_name = '{table}'), 0)
    OR NEW.last_seq < NEW.first_seq
    OR NEW.rows <> NEW.last_seq - NEW.first_seq + 1
    OR NOT EXISTS (SELECT 1 FROM {table} WHERE seq = NEW.first_seq
                   AND prev_hash = NEW.first_prev_hash)
    OR NOT EXISTS (SELECT 1 FROM {table} WHERE seq = NEW.last_seq AND row_hash = NEW.last_hash)
    OR (SELECT count(*) FROM {table} WHERE seq BETWEEN NEW.first_seq AND NEW.last_seq)
       <> NEW.rows)
BEGIN SELECT RAISE(ABORT, '{refuse_segment}'); END;"""


def _seal_guard() -> str:
    """Deleting is allowed only for rows a segment holds; a segment must hold real rows.

    Replaces the ``ledger_state.sealing`` flag of ``0002``, which anyone could set."""
    out = ["DROP TRIGGER IF EXISTS usage_events_no_delete;",
           "DROP TRIGGER IF EXISTS lifecycle_events_no_delete;",
           "DROP TABLE ledger_state;",
           # The delete trigger finds a row's segment per row: a lookup, not a scan.
           "CREATE INDEX segments_by_table ON segments (table_name, last_seq);"]
    for table in SEALABLE:
        out.append(_guarded_delete(table))
        out.append(_segments_hold(table))
    tables = ", ".join(f"'{t}'" for t in SEALABLE)
    out.append(f"""
CREATE TRIGGER segments_of_sealable_tables BEFORE INSERT ON segments
WHEN NEW.table_name NOT IN ({tables})
BEGIN SELECT RAISE(ABORT, 'only {" and ".join(SEALABLE)} rows can be sealed'); END;""")
    out.append(f"""
INSERT OR IGNORE INTO ledger_meta (key, value) VALUES ('{LEDGER_ID}', lower(hex(randomblob(16))));""")
    for event in ("UPDATE", "DELETE"):
        out.append(f"""
CREATE TRIGGER ledger_meta_keeps_identity_{event.lower()} BEFORE {event} ON ledger_meta
WHEN OLD.key = '{LEDGER_ID}'
BEGIN SELECT RAISE(ABORT, 'a ledger keeps its identity: {LEDGER_ID} cannot change'); END;""")
    return "\n".join(out)


def _policy_events() -> str:
    """Widen ``lifecycle_events.kind`` to the agent kinds (``tables.AGENT_KINDS``).

    SQLite cannot alter a CHECK, so the table is rebuilt: every live row is copied as it
    is (same seq, values and hashes, so the chain, its sealed segments and any checkpoint
    still verify), the old table goes (with its triggers), the new one takes its name, and
    its append-only and seal-guard triggers are made again. The segments trigger that
    reads the table is dropped first and made again last, so nothing names a missing
    table in between."""
    table = "lifecycle_events"
    draft = f"{table}_0006"
    columns = ("seq, ts_us, request_id, kind, portfolio_id, token_id, token_name, scopes, "
               "ips_whitelist, expires_at_us, detail, prev_hash, row_hash, phase")
    return "\n".join([
        f"DROP TRIGGER segments_hold_{table};",
        f"""CREATE TABLE {draft} (
    seq INTEGER PRIMARY KEY,
    ts_us INTEGER NOT NULL,
    request_id TEXT,
    kind TEXT NOT NULL CHECK (kind IN ('portfolio_created', 'portfolio_deleted', 'token_minted',
                                       'token_updated', 'token_revoked', 'token_expired',
                                       'policy_set', 'agent_paused', 'agent_resumed',
                                       'policy_refused', 'order_booked', 'book_reconciled',
                                       'session_stopped')),
    portfolio_id TEXT,
    token_id TEXT,
    token_name TEXT,
    scopes TEXT,
    ips_whitelist TEXT,
    expires_at_us INTEGER,
    detail TEXT,
    prev_hash TEXT NOT NULL,
    row_hash TEXT NOT NULL,
    phase TEXT CHECK (phase IN ('intent', 'outcome', 'failed'))
);""",
        f"INSERT INTO {draft} ({columns}) SELECT {columns} FROM {table} ORDER BY seq;",
        f"DROP TABLE {table};",
        f"ALTER TABLE {draft} RENAME TO {table};",
        _no_update(table), _guarded_delete(table), _segments_hold(table),
    ])


MIGRATIONS: dict[str, str] = {
    "0001_events": _V1,
    "0002_append_only": _append_only_triggers(),
    "0003_seal_guard": _seal_guard(),
    # A delegation change is recorded as an intent before its request and an outcome (or
    # 'failed') after; rows from before this migration (NULL) were recorded after the fact.
    "0004_lifecycle_phase": "ALTER TABLE lifecycle_events ADD COLUMN phase TEXT "
                            "CHECK (phase IN ('intent', 'outcome', 'failed'));",
    "0006_policy_events": _policy_events(),
    # The application a request was made by (``ClientConfig.application``); rows from before
    # it (NULL) hash as they did, so old ledgers and their segments still verify.
    "0007_request_application": "ALTER TABLE usage_events ADD COLUMN application TEXT;",
}
