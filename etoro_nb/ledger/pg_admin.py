"""Setting up a PostgreSQL ledger: its migrations and its roles (``etoro-nb ledger
init-postgres URL --writer-role NAME``, run once by an administrator).

Migrations run as in SQLite (``etoro_nb.migrations``): each once, in order, in one
transaction with its row in ``_migrations``; a transaction-scoped advisory lock makes
processes that open a new ledger at once apply each exactly once.

Roles. The connecting role of the URL given to ``init_postgres`` owns the tables (an
administrator). The writer role (made if missing, with LOGIN and no password: set one, or
a certificate, as your server's authentication asks) may only read and INSERT: every
privilege on the ledger's tables is revoked from it and from PUBLIC, then SELECT and
INSERT granted; it can't create objects in the schema, so it can't shadow a table. The
triggers refuse UPDATE, DELETE and TRUNCATE even to the owner: only a superuser (who can
disable triggers) can remove rows, and that is what checkpoints detect. An optional
reader role gets SELECT only (an auditor's).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from etoro_nb.errors import LedgerError
from etoro_nb.ledger.pg_schema import LEDGER_TABLES, pg_migrations

if TYPE_CHECKING:
    import psycopg

_MIGRATION_LOCK = 0x65746F726F6E62  # "etoronb": one key for every ledger's migrations
_ALL = (*LEDGER_TABLES, "_migrations")


def applied(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    """The migrations recorded in the ledger, in the order applied ([] if none)."""
    exists = conn.execute("SELECT to_regclass('_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return []
    rows = conn.execute("SELECT name FROM _migrations ORDER BY applied_us, name").fetchall()
    return [str(r[0]) for r in rows]


def missing(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    """The ledger migrations not yet applied, in order."""
    done = set(applied(conn))
    return [name for name in pg_migrations() if name not in done]


def migrate(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    """Apply the ledger migrations ``conn``'s database lacks; returns their names."""
    try:
        migrations = pg_migrations()
    except LookupError as exc:
        raise LedgerError(str(exc)) from None
    done = []
    for name, sql in migrations.items():
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, "
                         "applied_us BIGINT NOT NULL)")
            if conn.execute("SELECT 1 FROM _migrations WHERE name = %s", (name,)).fetchone():
                continue
            conn.execute(sql.encode())
            conn.execute("INSERT INTO _migrations (name, applied_us) VALUES (%s, %s)",
                         (name, time.time_ns() // 1000))
            done.append(name)
    return done


def _role_exists(conn: psycopg.Connection[tuple[object, ...]], role: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


def grant_roles(conn: psycopg.Connection[tuple[object, ...]], writer: str,
                reader: str | None = None) -> None:
    """Make (if missing) and grant the writer role (SELECT and INSERT only) and the reader
    role (SELECT only), in one transaction."""
    from psycopg import sql

    with conn.transaction():
        for role in (r for r in (writer, reader) if r):
            if not _role_exists(conn, role):
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
            who = sql.Identifier(role)
            database = conn.execute("SELECT current_database()").fetchone()
            conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(str(database[0] if database else "")), who))
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(who))
            conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA public FROM {}").format(who))
        tables = sql.SQL(", ").join(sql.Identifier(t) for t in _ALL)
        conn.execute(sql.SQL("REVOKE ALL ON {} FROM PUBLIC").format(tables))
        grants: list[tuple[str | None, bool]] = [(writer, True), (reader, False)]
        for grantee, inserts in grants:
            if not grantee:
                continue
            who = sql.Identifier(grantee)
            conn.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(tables, who))
            conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(tables, who))
            if inserts:
                events = sql.SQL(", ").join(sql.Identifier(t) for t in (
                    "usage_events", "lifecycle_events", "token_fingerprints"))
                conn.execute(sql.SQL("GRANT INSERT ON {} TO {}").format(events, who))


def init_postgres(url: str, writer_role: str, reader_role: str | None = None) -> list[str]:
    """Create or bring up to date the ledger at ``url`` (connecting as its administrator)
    and grant its roles; returns the migrations applied now."""
    from etoro_nb.ledger.pg_connect import connect, redact

    conn = connect(url)
    try:
        done = migrate(conn)
        grant_roles(conn, writer_role, reader_role)
    except Exception as exc:
        raise LedgerError(f"cannot set up the ledger at {redact(url)}: {exc}") from None
    finally:
        conn.close()
    return done
