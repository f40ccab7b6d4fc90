"""One migration runner for the ledger's schema and the sandbox's state."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from etoro_nb import migrations
from etoro_nb.ledger import Ledger
from etoro_nb.ledger.schema import MIGRATIONS as LEDGER_MIGRATIONS
from etoro_nb.sandbox.store import MIGRATIONS as SANDBOX_MIGRATIONS
from etoro_nb.sandbox.store import STATE_V1, Store


def _conn(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def test_a_failing_migration_leaves_nothing_behind_and_applies_later(tmp_path: Path) -> None:
    conn = _conn(tmp_path / "db.sqlite")
    good = {"0001_t": "CREATE TABLE t (x INTEGER);"}
    assert migrations.migrate(conn, good) == ["0001_t"]
    broken = {**good, "0002_u": "CREATE TABLE u (x INTEGER);\nINSERT INTO nowhere VALUES (1);"}
    with pytest.raises(sqlite3.OperationalError, match="nowhere"):
        migrations.migrate(conn, broken)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "u" not in tables  # the first statement of 0002 was rolled back with it
    assert migrations.applied(conn) == ["0001_t"]
    fixed = {**good, "0002_u": "CREATE TABLE u (x INTEGER);"}
    assert migrations.migrate(conn, fixed) == ["0002_u"]
    assert migrations.migrate(conn, fixed) == []  # each once
    assert migrations.applied(conn) == ["0001_t", "0002_u"]


def test_the_sandbox_state_records_its_schema_version(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "state.sqlite"), seed=1)
    store.close()
    assert migrations.applied(_conn(tmp_path / "state.sqlite")) == list(SANDBOX_MIGRATIONS)


def test_a_state_file_from_before_versions_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    old = _conn(path)
    old.executescript(STATE_V1)  # as sandboxes made it before the schema had versions
    old.execute("INSERT INTO meta (key, value) VALUES ('made_by', 'an older sandbox')")
    old.close()
    store = Store(str(path), seed=1)
    assert store.get_meta("made_by") == "an older sandbox"
    store.close()
    assert migrations.applied(_conn(path)) == list(SANDBOX_MIGRATIONS)


def test_the_ledger_is_versioned_by_the_same_runner(tmp_path: Path) -> None:
    Ledger(tmp_path / "l.sqlite").close()
    assert migrations.applied(_conn(tmp_path / "l.sqlite")) == list(LEDGER_MIGRATIONS)
