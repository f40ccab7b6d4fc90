"""The ledger's schema on PostgreSQL: the same table specs (``tables``) and the same
migration list (``schema.MIGRATIONS``, by name and order) as SQLite, translated.

Types: SQLite's INTEGER is BIGINT (microsecond timestamps pass 2**31), REAL is DOUBLE
PRECISION (SQLite's REAL is 8 bytes too, so a float hashes the same on both), TEXT is
TEXT. Every chained table is made from its spec (``pg_create``).

Each SQLite migration has a PostgreSQL translation of the same name, applied once each, in
order, each in one transaction with its row in ``_migrations``:

- ``0001_events``: the tables, from the specs, without the columns added later (those a
  row hashes only when set), plus ``token_fingerprints``, ``ledger_meta`` and the random
  key of token fingerprints, shared by every host writing the ledger;
- ``0002_append_only``: triggers refuse every UPDATE, DELETE and TRUNCATE of the ledger's
  tables (a PostgreSQL ledger is never sealed: its rows stay on the server);
- ``0003_seal_guard``: the ledger's random identity (checkpoints name it), kept; and no
  ``segments`` row is accepted;
- a migration that adds columns or widens a CHECK (``0004_lifecycle_phase``,
  ``0006_policy_events``, and any later ``ADD COLUMN``): the tables are brought to their
  specs, adding missing later columns and restating each CHECK (PostgreSQL can alter a
  CHECK in place: no table is rebuilt).

A migration of any other kind has no translation yet: opening a PostgreSQL ledger then
fails naming it, and ``tests/test_ledger_postgres.py`` fails first.
"""

from __future__ import annotations

from etoro_nb.ledger.schema import LEDGER_ID, MIGRATIONS
from etoro_nb.ledger.tables import TABLES, Column, Table

FINGERPRINT_KEY = "fingerprint_key"  # the ledger_meta key of the token-fingerprint key
LEDGER_TABLES = ("usage_events", "lifecycle_events", "segments", "token_fingerprints",
                 "ledger_meta")
_TYPES = {"INTEGER": "BIGINT", "TEXT": "TEXT", "REAL": "DOUBLE PRECISION"}


def pg_column(column: Column) -> str:
    """A column's definition in PostgreSQL: its translated type and the spec's constraint."""
    constraint = f" {column.constraint}" if column.constraint else ""
    return f"{column.name} {_TYPES[column.sql]}{constraint}"


def pg_create(table: Table, *, later: bool = True) -> str:
    """``CREATE TABLE`` from a spec: its columns, the chain hashes, then (``later``) the
    columns added later."""
    lines = [pg_column(c) for c in table.columns if c.hashed_when_null]
    lines += ["prev_hash TEXT NOT NULL", "row_hash TEXT NOT NULL"]
    if later:
        lines += [pg_column(c) for c in table.columns if not c.hashed_when_null]
    body = ",\n    ".join(lines)
    return f"CREATE TABLE {table.name} (\n    {body}\n);"


def _random_hex(chars: int) -> str:
    """SQL for ``chars`` random hex digits (from the core's gen_random_uuid: no extension)."""
    uuids = " || ".join(["replace(gen_random_uuid()::text, '-', '')"] * (-(-chars // 32)))
    return f"left({uuids}, {chars})"


def _events() -> str:
    tables = [pg_create(TABLES[name], later=False)
              for name in ("usage_events", "lifecycle_events", "segments")]
    return "\n".join([
        "CREATE TABLE ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
        *tables,
        "CREATE TABLE token_fingerprints (fingerprint TEXT PRIMARY KEY, token_id TEXT NOT NULL, "
        "portfolio_id TEXT NOT NULL, ts_us BIGINT NOT NULL);",
        "CREATE INDEX usage_by_request ON usage_events (request_id, attempt);",
        f"INSERT INTO ledger_meta (key, value) VALUES ('{FINGERPRINT_KEY}', {_random_hex(64)});",
    ])


def _append_only() -> str:
    out = ["""CREATE FUNCTION ledger_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % rows cannot be %', TG_TABLE_NAME,
        CASE TG_OP WHEN 'UPDATE' THEN 'changed' WHEN 'DELETE' THEN 'deleted'
                   ELSE 'truncated' END
        USING ERRCODE = 'insufficient_privilege';
END $$;"""]
    for table in LEDGER_TABLES:
        if table == "ledger_meta":
            continue  # its identity is guarded by 0003; other keys may be set by an admin
        out.append(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION ledger_refuse();")
        out.append(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse();")
    return "\n".join(out)


def _seal_guard() -> str:
    return "\n".join([
        f"INSERT INTO ledger_meta (key, value) VALUES ('{LEDGER_ID}', {_random_hex(32)}) "
        "ON CONFLICT (key) DO NOTHING;",
        """CREATE FUNCTION ledger_keeps_identity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.key IN ('ledger_id', 'fingerprint_key') THEN
        RAISE EXCEPTION 'a ledger keeps its identity: % cannot change', OLD.key
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
END $$;""",
        "CREATE TRIGGER ledger_meta_keeps_identity BEFORE UPDATE OR DELETE ON ledger_meta "
        "FOR EACH ROW EXECUTE FUNCTION ledger_keeps_identity();",
        "CREATE TRIGGER ledger_meta_no_truncate BEFORE TRUNCATE ON ledger_meta "
        "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse();",
        """CREATE FUNCTION ledger_not_sealed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a PostgreSQL ledger is not sealed: its rows stay on the server'
        USING ERRCODE = 'insufficient_privilege';
END $$;""",
        "CREATE TRIGGER segments_not_sealed BEFORE INSERT ON segments "
        "FOR EACH ROW EXECUTE FUNCTION ledger_not_sealed();",
        "CREATE INDEX segments_by_table ON segments (table_name, last_seq);",
    ])


def _to_spec() -> str:
    """Bring every chained table to its spec: the later columns, and every CHECK restated
    (PostgreSQL names a column's CHECK ``<table>_<column>_check``)."""
    out = []
    for table in TABLES.values():
        for column in table.columns:
            if not column.hashed_when_null:
                out.append(f"ALTER TABLE {table.name} ADD COLUMN IF NOT EXISTS {pg_column(column)};")
            if "CHECK" in column.constraint:
                check = column.constraint[column.constraint.index("CHECK"):]
                name = f"{table.name}_{column.name}_check"
                out.append(f"ALTER TABLE {table.name} DROP CONSTRAINT IF EXISTS {name}, "
                           f"ADD CONSTRAINT {name} {check};")
    return "\n".join(out)


_TRANSLATED = {"0001_events": _events, "0002_append_only": _append_only,
               "0003_seal_guard": _seal_guard, "0006_policy_events": _to_spec}


def translate(name: str, sqlite_sql: str) -> str:
    """The PostgreSQL translation of one SQLite migration (LookupError: none)."""
    if name in _TRANSLATED:
        return _TRANSLATED[name]()
    if "ADD COLUMN" in sqlite_sql.upper():
        return _to_spec()
    raise LookupError(f"the ledger migration {name} has no PostgreSQL translation yet "
                      "(etoro_nb/ledger/pg_schema.py)")


def pg_migrations() -> dict[str, str]:
    """The ledger's migrations for PostgreSQL: ``schema.MIGRATIONS``' names, in order."""
    return {name: translate(name, sql) for name, sql in MIGRATIONS.items()}
