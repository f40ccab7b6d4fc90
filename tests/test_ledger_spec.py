"""The table specs (``etoro_nb.ledger.tables``) are what the literal migrations build, and
what the chain hashes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from etoro_nb.ledger import Ledger, chain_hash
from etoro_nb.ledger.schema import CHAINED, GENESIS, MIGRATIONS
from etoro_nb.ledger.sealing import STORED
from etoro_nb.ledger.tables import LIFECYCLE, TABLES, USAGE, Column, Table


def _table_info(conn: sqlite3.Connection, table: str) -> list[tuple[object, ...]]:
    """(name, type, not null, default, primary key) of each column."""
    return [row[1:] for row in conn.execute(f"PRAGMA table_info({table})")]


@pytest.mark.parametrize("table", sorted(TABLES))
def test_a_fresh_ledgers_tables_are_the_specs(tmp_path: Path, table: str) -> None:
    Ledger(tmp_path / "l.sqlite").close()
    spec = TABLES[table]
    built = sqlite3.connect(":memory:")
    built.executescript(spec.ddl())
    with sqlite3.connect(tmp_path / "l.sqlite") as migrated:
        assert _table_info(migrated, table) == _table_info(built, table)
        assert sorted((name, kind) for name, kind, *_ in _table_info(migrated, table)) == \
            sorted([(c.name, c.sql) for c in spec.columns] + [("prev_hash", "TEXT"),
                                                               ("row_hash", "TEXT")])
    assert CHAINED[table] == spec.names
    if table != "segments":
        assert STORED[table] == spec.stored


def test_the_first_migration_is_still_literal_history() -> None:
    # 0001 made lifecycle_events without phase: regenerating it from the spec would add it.
    assert "phase TEXT" not in MIGRATIONS["0001_events"].split("CREATE TABLE lifecycle_events")[1]
    assert MIGRATIONS["0004_lifecycle_phase"].startswith("ALTER TABLE lifecycle_events ADD COLUMN")


def test_the_spec_leaves_a_null_later_column_out_of_the_hash() -> None:
    row = [1, 10, "r", "token_minted", "p", "t", "n", "[]", "[]", None, None]
    assert LIFECYCLE.hashed_values([*row, None]) == row  # as hashed before phase existed
    assert LIFECYCLE.hashed_values([*row, "outcome"]) == [*row, "outcome"]
    usage = [1, 10, "intent", *([None] * 14)]
    assert USAGE.hashed_values(usage) == usage  # every usage column is hashed, null or not
    assert chain_hash(GENESIS, LIFECYCLE.hashed_values([*row, None])) == chain_hash(GENESIS, row)


def test_a_later_column_must_come_last() -> None:
    with pytest.raises(ValueError, match="x: a column not hashed when null must come last"):
        Table("x", (Column("a", "TEXT", hashed_when_null=False), Column("b", "TEXT")))
