"""Schema migrations for SQLite databases: a named registry, each applied once, recorded.

The ledger (``etoro_nb.ledger.schema``) and the sandbox's state (``etoro_nb.sandbox.store``)
are versioned the same way, after sqlite-utils' migrations: a registry maps names to SQL
scripts in the order they apply; each script runs in one transaction together with its row
in ``_migrations``, so a database is never half-migrated, and a database opened by several
processes at once applies each migration exactly once.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping

Migrations = Mapping[str, str]  # name -> SQL script, in the order they apply


def migrate(conn: sqlite3.Connection, migrations: Migrations) -> list[str]:
    """Apply every migration of ``migrations`` not yet recorded in ``conn``, each in its own
    transaction; returns the names applied now. ``conn`` must be in autocommit mode
    (``isolation_level=None``)."""
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, "
                 "applied_us INTEGER NOT NULL)")
    applied = []
    for name, sql in migrations.items():
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = conn.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone()
            if done is None:
                for statement in statements(sql):
                    conn.execute(statement)
                conn.execute("INSERT INTO _migrations (name, applied_us) VALUES (?, ?)",
                             (name, time.time_ns() // 1000))
                applied.append(name)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return applied


def applied(conn: sqlite3.Connection) -> list[str]:
    """The names of the migrations recorded in ``conn``, in the order they were applied."""
    try:
        rows = conn.execute("SELECT name FROM _migrations ORDER BY applied_us, name").fetchall()
    except sqlite3.OperationalError:  # never migrated
        return []
    return [str(r[0]) for r in rows]


def statements(sql: str) -> list[str]:
    """Split a script into statements (triggers keep their inner semicolons)."""
    out: list[str] = []
    buf = ""
    for line in sql.strip().splitlines():
        buf += line + "\n"
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    return [s for s in out if s]
