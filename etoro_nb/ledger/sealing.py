"""Sealing: closed history moves out of SQLite into immutable Parquet segments.

A seal runs in one transaction: it writes the table's rows to a Parquet file (fsynced,
then renamed into place), appends a ``segments`` row, itself chained, holding the file's
SHA-256 and the chain hashes at both ends, and only then deletes the rows from SQLite.
The database enforces that order: its triggers accept a ``segments`` row only if it names
the live rows that follow the previous segment (hashes at both ends, no gap), and refuse to
delete any row that no ``segments`` row holds. If the process dies before the commit, the
rows stay in SQLite and the stray file is never read (only files listed in ``segments``
are).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from etoro_nb.ledger.schema import CHAINED

if TYPE_CHECKING:
    from etoro_nb.ledger.core import Ledger

_TEXT = pl.String
STORED: dict[str, dict[str, pl.DataType | type[pl.DataType]]] = {
    "usage_events": {
        "seq": pl.Int64, "ts_us": pl.Int64, "phase": _TEXT, "request_id": _TEXT,
        "attempt": pl.Int64, "principal": _TEXT, "portfolio_id": _TEXT, "token_id": _TEXT,
        "token_fingerprint": _TEXT, "environment": _TEXT, "method": _TEXT, "route": _TEXT,
        "operation_id": _TEXT, "scope_required": _TEXT, "status": pl.Int64,
        "error_code": _TEXT, "latency_ms": pl.Float64, "prev_hash": _TEXT, "row_hash": _TEXT,
    },
    "lifecycle_events": {
        "seq": pl.Int64, "ts_us": pl.Int64, "request_id": _TEXT, "kind": _TEXT,
        "portfolio_id": _TEXT, "token_id": _TEXT, "token_name": _TEXT, "scopes": _TEXT,
        "ips_whitelist": _TEXT, "expires_at_us": pl.Int64, "detail": _TEXT, "phase": _TEXT,
        "prev_hash": _TEXT, "row_hash": _TEXT,
    },
}
for _table, _schema in STORED.items():
    assert tuple(_schema)[:-2] == CHAINED[_table], _table


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def seal(ledger: Ledger, table: str) -> dict[str, Any] | None:
    """Seal every live row of ``table``; returns the new segment, or None if empty."""
    if table not in STORED:
        raise ValueError(f"only {', '.join(STORED)} can be sealed")
    columns = ", ".join(STORED[table])

    def work() -> dict[str, Any] | None:
        conn = ledger._conn
        rows = conn.execute(f"SELECT {columns} FROM {table} ORDER BY seq").fetchall()
        if not rows:
            return None
        first, last = int(rows[0][0]), int(rows[-1][0])
        ledger.segments_dir.mkdir(parents=True, exist_ok=True)
        name = f"{table}-{first:012d}-{last:012d}.parquet"
        final = ledger.segments_dir / name
        tmp = final.with_name(name + ".tmp")
        frame = pl.DataFrame(rows, schema=STORED[table], orient="row")
        frame.write_parquet(tmp, compression="zstd", statistics=True)
        _fsync(tmp)
        os.replace(tmp, final)
        _fsync(ledger.segments_dir)
        segment = {"table_name": table, "first_seq": first, "last_seq": last,
                   "rows": len(rows), "file": name, "sha256": file_sha256(final),
                   "first_prev_hash": rows[0][-2], "last_hash": rows[-1][-1]}
        from etoro_nb.ledger.core import now_us

        # The segment first: the delete triggers let go only of rows a segment holds.
        ledger._insert_chained("segments", {**segment, "ts_us": now_us()})
        conn.execute(f"DELETE FROM {table} WHERE seq BETWEEN ? AND ?", (first, last))
        return segment

    result: dict[str, Any] | None = ledger._write(work)
    return result
