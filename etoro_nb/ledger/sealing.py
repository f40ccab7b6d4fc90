"""Sealing: closed history moves out of SQLite into immutable Parquet segments.

A seal first drafts its segment without holding the write lock: it reads the rows to seal
in a read snapshot and writes them to a Parquet file (fsynced, renamed into place under a
name no other seal uses; in a child process when sealing in the background). Then one
short transaction checks that nobody sealed those rows meanwhile and appends a
``segments`` row, itself chained, holding the file's SHA-256 and the chain hashes at both
ends. Last, the sealed rows are deleted from SQLite, a few hundred per transaction when the
seal runs in the background, so no append waits long for the lock. Until then a sealed row
is in both places and readers take it from its segment (every live read is of rows after
the last segment).

The database enforces that order: its triggers (``0003_seal_guard``) accept a ``segments``
row only if it names the live rows that follow the previous segment (hashes at both ends,
no gap), and refuse to delete any row that no ``segments`` row holds. If the process dies
before the segment is committed, the rows stay in SQLite and the stray file is never read
(only files listed in ``segments`` are); if it dies after, the next seal finishes the
deletion.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from etoro_nb.errors import LedgerError
from etoro_nb.ledger.chain import now_us, sealed_through
from etoro_nb.ledger.schema import SEALABLE
from etoro_nb.ledger.tables import TABLES

if TYPE_CHECKING:
    from etoro_nb.ledger.core import Ledger

TIDY_ROWS = 250  # sealed rows deleted per transaction in the background: ~2 ms of lock
DRAFT_TIMEOUT = 600.0
STORED: dict[str, dict[str, pl.DataType | type[pl.DataType]]] = {
    name: TABLES[name].stored for name in SEALABLE}
"""The stored rows' polars schema (columns, then the chain hashes), from the table specs."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_path(path: Path) -> None:
    """Flush a file (or a directory's entries) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class _Draft:
    """A segment written to disk but not yet in the chain."""

    after: int  # the last row sealed before this draft (0: none)
    path: Path
    segment: dict[str, Any]


def seal(ledger: Ledger, table: str, *, through: int | None = None,
         background: bool = False) -> dict[str, Any] | None:
    """Seal the live rows of ``table`` (those up to row ``through``, default all); returns
    the new segment, or None if there was nothing to seal or another seal got there first.
    ``background``: the upkeep thread's seal, which must not slow the requests of this
    process: the segment is drafted by a child process (decoding thousands of rows into a
    frame holds the GIL for tens of milliseconds) and the sealed rows are deleted
    ``TIDY_ROWS`` per transaction.
    """
    if table not in STORED:
        raise ValueError(f"only {', '.join(STORED)} can be sealed")
    if background:
        draft = _draft_aside(ledger, table, through)
    else:
        with ledger._reading() as conn:
            draft = draft_segment(conn, ledger.segments_dir, table, through)
    segment = None
    try:
        if draft is not None:
            segment = ledger._write(lambda: _commit(ledger, table, draft))
    finally:
        if draft is not None and segment is None:
            draft.path.unlink(missing_ok=True)
    tidy(ledger, table, rows=TIDY_ROWS if background else None)
    ledger._upkeep.checkpoint()  # the deletions wrote as much WAL as the rows take
    return segment


def draft_segment(conn: sqlite3.Connection, segments_dir: Path, table: str,
                  through: int | None) -> _Draft | None:
    """Write the segment file of the live rows (up to ``through``) as ``conn``'s open read
    transaction sees them, without taking the write lock."""
    columns = ", ".join(STORED[table])
    after = sealed_through(conn, table)
    rows = conn.execute(f"SELECT {columns} FROM {table} WHERE seq > ? AND seq <= ? ORDER BY seq",
                        (after, through if through is not None else 2**62)).fetchall()
    if not rows:
        return None
    frame = pl.DataFrame(rows, schema=STORED[table], orient="row")
    first, last = int(frame["seq"][0]), int(frame["seq"][-1])
    segments_dir.mkdir(parents=True, exist_ok=True)
    # A name of its own: a seal that loses the race deletes its file, never the winner's.
    name = f"{table}-{first:012d}-{last:012d}-{secrets.token_hex(4)}.parquet"
    final = segments_dir / name
    tmp = final.with_name(name + ".tmp")
    try:
        frame.write_parquet(tmp, compression="zstd", statistics=True)
        fsync_path(tmp)
        os.replace(tmp, final)
        fsync_path(segments_dir)
    finally:
        tmp.unlink(missing_ok=True)
    return _Draft(after, final, {
        "table_name": table, "first_seq": first, "last_seq": last, "rows": frame.height,
        "file": name, "sha256": file_sha256(final), "first_prev_hash": frame["prev_hash"][0],
        "last_hash": frame["row_hash"][-1]})


def _draft_aside(ledger: Ledger, table: str, through: int | None) -> _Draft | None:
    """``draft_segment`` run by a child process (``python -m etoro_nb.ledger.sealing``)."""
    package_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
    try:
        out = subprocess.run(
            [sys.executable, "-m", "etoro_nb.ledger.sealing", str(ledger.path),
             str(ledger.segments_dir), table, str(through if through is not None else "")],
            capture_output=True, text=True, timeout=DRAFT_TIMEOUT, env=env, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise LedgerError(f"could not draft a segment of {ledger.path}: {exc}") from None
    if out.returncode != 0:
        raise LedgerError(f"could not draft a segment of {ledger.path}: "
                          f"{out.stderr.strip()[-500:]}")
    found = json.loads(out.stdout)
    return None if found is None else _Draft(found["after"], Path(found["path"]),
                                             found["segment"])


def main(argv: list[str]) -> int:
    """``python -m etoro_nb.ledger.sealing LEDGER SEGMENTS_DIR TABLE THROUGH``: draft a
    segment and print it as JSON (null if there was nothing to seal)."""
    path, segments_dir, table, through = argv
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        draft = draft_segment(conn, Path(segments_dir), table, int(through) if through else None)
        conn.execute("COMMIT")
    finally:
        conn.close()
    print(json.dumps(None if draft is None else {"after": draft.after, "path": str(draft.path),
                                                 "segment": draft.segment}))
    return 0


def _commit(ledger: Ledger, table: str, draft: _Draft) -> dict[str, Any] | None:
    """In the write transaction: chain the drafted segment, unless the table changed."""
    conn = ledger._conn
    segment = draft.segment
    if sealed_through(conn, table) != draft.after:
        return None  # sealed meanwhile by another process
    stored = conn.execute(f"SELECT row_hash FROM {table} WHERE seq = ?",
                          (segment["last_seq"],)).fetchone()
    if stored is None or stored[0] != segment["last_hash"]:
        return None
    ledger._insert_chained("segments", {**segment, "ts_us": now_us()})
    return segment


def tidy(ledger: Ledger, table: str, *, rows: int | None = None) -> None:
    """Delete the rows of ``table`` already in a segment, ``rows`` per transaction (default
    all in one), letting waiting appends take the lock between transactions."""
    def delete_some() -> bool:
        conn = ledger._conn
        sealed = sealed_through(conn, table)
        first = conn.execute(f"SELECT min(seq) FROM {table}").fetchone()[0]
        if first is None or first > sealed:
            return False
        last = sealed if rows is None else min(sealed, first + rows - 1)
        conn.execute(f"DELETE FROM {table} WHERE seq <= ?", (last,))
        return last < sealed

    while ledger._write(delete_some):
        time.sleep(0.0005)  # hand the lock to an append waiting for it


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
