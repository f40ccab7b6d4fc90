"""Drafts: columnar copies of live rows, so a read of many live rows need not decode them one
by one from SQLite (Python's sqlite3 takes about a second for 200,000 rows).

A draft is a Parquet file ``<segments_dir>/drafts/<table>-<first>-<last>-<hash>.parquet``
holding rows ``first``..``last`` exactly as stored (hashes included), ``hash`` being the
start of the last row's ``row_hash``. Drafts are not part of the chain: they are a cache
that any process may write and ``Ledger.scan`` may use. A scan uses the drafts that follow
the last sealed row one after another, each only if SQLite's ``row_hash`` at its last row
is the one its name records (checked in the scan's read transaction, so it is the very
rows the snapshot holds), and reads the rows after the last draft from SQL. A draft that
does not match is ignored; one that cannot be read makes the scan read its rows from SQL.
``verify()`` checks every draft present against the rows it claims, so a tampered draft
cannot feed a frame without verification saying so.

Who writes them: the ledger's upkeep thread, whenever ``DRAFT_ROWS`` live rows have
accumulated past the last draft (in a child process, like a background seal: decoding
rows holds the GIL), and a reader that finds at least two drafts' worth of undrafted rows
(it has decoded them anyway). Full chunks only: the tail stays in SQL until it fills.

Concurrency. A draft is written under a unique temporary name, then renamed into place:
a reader sees a whole file or none. Two processes drafting the same rows write identical
rows under the same name; the second rename replaces an equal file. A seal makes the
drafts it covers obsolete (their first row is sealed); upkeep deletes them. A reader in
another process that listed such a draft in an older snapshot and finds it gone reads
those rows from SQL: its read transaction still holds them.
"""

from __future__ import annotations

import os
import re
import secrets
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from etoro_nb.ledger.chain import sealed_through
from etoro_nb.ledger.schema import SEALABLE
from etoro_nb.ledger.sealing import STORED, fsync_path

if TYPE_CHECKING:
    from etoro_nb.ledger.core import Ledger

DRAFT_ROWS = 5000  # rows per draft
DRAFT_TIMEOUT = 600.0
STALE_TEMP_SECONDS = 3600.0  # a temporary file this old was left by a process that died
_NAME = re.compile(r"^(?P<table>[a-z_]+)-(?P<first>\d{12})-(?P<last>\d{12})-(?P<hash>[0-9a-f]{16})"
                   r"\.parquet$")


@dataclass(frozen=True)
class Draft:
    """One draft file: rows ``first``..``last`` of ``table``, the last hashing to ``hash``
    (its first 16 hex digits)."""

    table: str
    first: int
    last: int
    hash: str
    path: Path


def drafts_dir(segments_dir: Path) -> Path:
    return segments_dir / "drafts"


def present(segments_dir: Path, table: str | None = None) -> list[Draft]:
    """The drafts on disk (of ``table``, default all), by table and first row."""
    try:
        names = os.listdir(drafts_dir(segments_dir))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        m = _NAME.match(name)
        if m and (table is None or m["table"] == table):
            found.append(Draft(m["table"], int(m["first"]), int(m["last"]), m["hash"],
                               drafts_dir(segments_dir) / name))
    return sorted(found, key=lambda d: (d.table, d.first, d.last))


def usable(conn: sqlite3.Connection, segments_dir: Path, table: str, after: int) -> list[Draft]:
    """The drafts that follow row ``after`` one after another and match the rows that
    ``conn``'s read transaction sees (by the last row's hash)."""
    by_first: dict[int, list[Draft]] = {}
    for draft in present(segments_dir, table):
        by_first.setdefault(draft.first, []).append(draft)
    chain: list[Draft] = []
    while after + 1 in by_first:
        for draft in sorted(by_first[after + 1], key=lambda d: -d.last):
            row = conn.execute(f"SELECT row_hash FROM {table} WHERE seq = ?",
                               (draft.last,)).fetchone()
            if row is not None and str(row[0]).startswith(draft.hash):
                chain.append(draft)
                after = draft.last
                break
        else:
            break
    return chain


def write(segments_dir: Path, table: str, rows: pl.DataFrame) -> list[Draft]:
    """Write the full ``DRAFT_ROWS`` chunks of ``rows`` (consecutive stored rows of
    ``table``, hashes included, starting where the drafts so far end) as drafts."""
    out = []
    directory = drafts_dir(segments_dir)
    directory.mkdir(parents=True, exist_ok=True)
    for start in range(0, rows.height - DRAFT_ROWS + 1, DRAFT_ROWS):
        chunk = rows.slice(start, DRAFT_ROWS)
        first, last = int(chunk["seq"][0]), int(chunk["seq"][-1])
        last_hash = str(chunk["row_hash"][-1])[:16]
        final = directory / f"{table}-{first:012d}-{last:012d}-{last_hash}.parquet"
        if not final.exists():
            tmp = final.with_name(f"{final.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
            try:
                chunk.write_parquet(tmp, compression="lz4", statistics=True)
                fsync_path(tmp)  # a torn draft after a crash would only be read from SQL
                os.replace(tmp, final)
            finally:
                tmp.unlink(missing_ok=True)
        out.append(Draft(table, first, last, last_hash, final))
    return out


def draft_due(conn: sqlite3.Connection, segments_dir: Path, table: str) -> int:
    """In ``conn``'s read transaction: write drafts of the full chunks of undrafted live
    rows of ``table``; returns the rows drafted."""
    after = sealed_through(conn, table)
    chain = usable(conn, segments_dir, table, after)
    start = chain[-1].last if chain else after
    newest = int(conn.execute(f"SELECT max(seq) FROM {table}").fetchone()[0] or 0)
    due = (newest - start) // DRAFT_ROWS * DRAFT_ROWS
    if due <= 0:
        return 0
    columns = ", ".join(STORED[table])
    rows = conn.execute(f"SELECT {columns} FROM {table} WHERE seq > ? ORDER BY seq LIMIT ?",
                        (start, due)).fetchall()
    frame = pl.DataFrame(rows, schema=STORED[table], orient="row")
    return sum(d.last - d.first + 1 for d in write(segments_dir, table, frame))


def undrafted(conn: sqlite3.Connection, segments_dir: Path, table: str) -> int:
    """Live rows of ``table`` after its last usable draft (a cheap count: seq numbers)."""
    after = sealed_through(conn, table)
    chain = usable(conn, segments_dir, table, after)
    newest = int(conn.execute(f"SELECT max(seq) FROM {table}").fetchone()[0] or 0)
    return newest - (chain[-1].last if chain else after)


def prune(conn: sqlite3.Connection, segments_dir: Path) -> int:
    """Delete the drafts a seal made obsolete (their first row is sealed) and temporary
    files left by a process that died; returns the files deleted."""
    sealed = {t: sealed_through(conn, t) for t in SEALABLE}
    gone = 0
    for draft in present(segments_dir):
        if draft.table in sealed and draft.first <= sealed[draft.table]:
            draft.path.unlink(missing_ok=True)
            gone += 1
    directory = drafts_dir(segments_dir)
    if directory.exists():
        for tmp in directory.glob("*.tmp"):
            try:
                if time.time() - tmp.stat().st_mtime > STALE_TEMP_SECONDS:
                    tmp.unlink(missing_ok=True)
                    gone += 1
            except FileNotFoundError:
                pass
    return gone


def upkeep(ledger: Ledger) -> None:
    """The upkeep thread's job: delete obsolete drafts, and draft the live rows of every
    table with ``DRAFT_ROWS`` or more undrafted, in a child process."""
    with ledger._reading() as conn:
        prune(conn, ledger.segments_dir)
        due = [t for t in SEALABLE if undrafted(conn, ledger.segments_dir, t) >= DRAFT_ROWS]
    if not due:
        return
    package_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
    subprocess.run([sys.executable, "-m", "etoro_nb.ledger.drafts", str(ledger.path),
                    str(ledger.segments_dir), str(DRAFT_ROWS), *due],
                   capture_output=True, timeout=DRAFT_TIMEOUT, env=env, check=True)


def main(argv: list[str]) -> int:
    """``python -m etoro_nb.ledger.drafts LEDGER SEGMENTS_DIR ROWS TABLE...``: draft the due
    rows of each table, ``ROWS`` per draft."""
    global DRAFT_ROWS
    path, segments_dir, rows, *tables = argv
    DRAFT_ROWS = int(rows)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        for table in tables:
            draft_due(conn, Path(segments_dir), table)
        conn.execute("COMMIT")
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
