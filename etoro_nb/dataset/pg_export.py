"""``export`` of a PostgreSQL ledger: its rows into a dataset, incrementally.

A PostgreSQL ledger is never sealed, so an export copies rows, not segments. For each
table it adds the rows after the dataset's watermark (the last row exported, its ``seq``
and hash, kept in the ledger's manifest) up to the table's head when the export began,
in export batches of at most ``BATCH_ROWS`` rows. A batch's rows are written as data files
per UTC day, named by the ledger and the rows they hold, as a SQLite ledger's are; the
manifest lists the batch (first and last row, the first row's ``prev_hash``, the last
row's hash) and its files, and is saved after each batch. Exporting again adds only rows
appended since, and nothing at all (not a byte) when there are none.

What it relies on (``ledger.postgres``): an append takes its table's advisory lock, reads
the head, inserts rows numbered after it and commits, and the lock is let go only once
that commit is visible. So row n + 1 is committed after row n was visible: every snapshot
sees a gapless prefix of each chain, and no row can later appear below a head an export
has read. No settle time is needed for order. Durability is another matter: the lock
goes before the commit's flush, so a row can be seen before it is on disk, and a server
crash then loses it. The transaction that reads the heads therefore commits a WAL message
synchronously: its flush covers every commit that snapshot saw, so nothing exported can
be lost by a crash afterwards (no waiting: it is one flush, shared with the writers').

Checks made before anything is written: the watermark row is still in the ledger with
the hash exported (else this is not the history exported: a copy of the database that
went its own way, or rows a superuser removed or rewrote), and each batch's rows are
consecutive and each links to the one before (``prev_hash``), from the watermark's hash.
``verify`` recomputes the hashes. Data files of this ledger that its manifest does not
list are left by an export that died before saving its manifest: the next export of the
ledger (holding its lock) removes them before it writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import polars as pl

from etoro_nb.dataset import layout, writing
from etoro_nb.dataset.writing import ExportResult
from etoro_nb.errors import LedgerError
from etoro_nb.ledger.chain import now_us
from etoro_nb.ledger.schema import GENESIS
from etoro_nb.ledger.sealing import STORED

if TYPE_CHECKING:
    from etoro_nb.ledger.postgres import PostgresLedger

BATCH_ROWS = 100_000  # rows per export batch: bounds memory and the work a crash redoes


def export_postgres(ledger: PostgresLedger, root: Path, owner: str | None, *,
                    batch_rows: int = BATCH_ROWS) -> ExportResult:
    """Add the rows of ``ledger`` the dataset at ``root`` lacks (see the module)."""
    from etoro_nb.ledger.checkpoint import ledger_identity

    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, not {batch_rows}")
    ledger_id = ledger_identity(ledger)
    root.mkdir(parents=True, exist_ok=True)
    with layout.locked(root, ledger_id):
        path = layout.manifest_path(root, ledger_id)
        manifest = (layout.read_manifest(path) if path.exists() else
                    layout.Manifest(ledger_id, owner or _database(ledger.where), ledger.where))
        if manifest.segments:
            raise LedgerError(f"the dataset holds sealed segments of ledger {ledger_id}: that is a "
                              f"SQLite ledger with the identity of the one at {ledger.where}")
        changed = owner is not None and owner != manifest.owner
        manifest.owner = owner or manifest.owner
        heads = _settled_heads(ledger, manifest)
        _remove_unlisted(root, manifest)
        added = [batch for table in layout.TABLES
                 for batch in _export_table(ledger, root, manifest, table, heads[table],
                                            batch_rows)]
        if changed or not path.exists():
            layout.write_manifest(root, manifest)
    return ExportResult(ledger_id, manifest.owner, 0, sum(b["rows"] for b in added),
                        sum(len(b["parts"]) for b in added), 0,
                        sum(p.rows for p in manifest.parts()), len(added), len(manifest.batches))


def _database(where: str) -> str:
    """The default owner label of a PostgreSQL ledger: its database's name."""
    return urlsplit(where).path.strip("/") or "postgresql"


def _settled_heads(ledger: PostgresLedger, manifest: layout.Manifest) -> dict[str, int]:
    """Each table's last row now, once the watermarks are found in the ledger as exported,
    and flushed to disk (see the module)."""
    marks = manifest.heads()
    heads = {}
    with ledger.snapshot() as conn:
        for table in layout.TABLES:
            mark = marks.get(table)
            if mark is not None:
                row = conn.execute(f"SELECT row_hash FROM {table} WHERE seq = %s",
                                   (mark["seq"],)).fetchone()
                if row is None or row[0] != mark["hash"]:
                    raise LedgerError(
                        f"the dataset's manifest of ledger {manifest.ledger_id} ends its {table} "
                        f"at row {mark['seq']}, which the ledger at {ledger.where} does not hold "
                        "as it was exported: rows were removed or rewritten on the server (verify "
                        "it against a checkpoint), or it is a copy that went its own way")
            top = conn.execute(f"SELECT coalesce(max(seq), 0) FROM {table}").fetchone()
            heads[table] = int(top[0]) if top else 0
        conn.execute("SET LOCAL synchronous_commit = on")
        conn.execute("SELECT pg_logical_emit_message(true, 'etoro-nb export', '')")
    return heads


def _remove_unlisted(root: Path, manifest: layout.Manifest) -> None:
    """Remove this ledger's data files the manifest does not list (an export of it died
    before saving its manifest; no other export of it runs: the caller holds its lock)."""
    listed = {p.path for p in manifest.parts()}
    mine = f"{manifest.ledger_id}-"
    for name in layout.data_files(root):
        if name not in listed and name.rsplit("/", 1)[-1].startswith(mine):
            (root / name).unlink(missing_ok=True)


def _export_table(ledger: PostgresLedger, root: Path, manifest: layout.Manifest, table: str,
                  head: int, batch_rows: int) -> list[dict[str, Any]]:
    """Export ``table``'s rows after its watermark up to ``head``, batch by batch, saving the
    manifest after each; the batches added."""
    mark = manifest.heads().get(table, {"seq": 0, "hash": GENESIS})
    after, prev = int(mark["seq"]), str(mark["hash"])
    added = []
    while after < head:
        through = min(head, after + batch_rows)
        frame = _rows(ledger, table, after, through)
        _check_links(frame, table, after, through, prev, ledger.where)
        parts = writing.write_parts(frame, root, table, manifest.ledger_id)
        last = str(frame["row_hash"][-1])
        batch = {"table": table, "first_seq": after + 1, "first_prev_hash": prev,
                 "last_seq": through, "last_hash": last, "rows": frame.height,
                 "exported_us": now_us(), "parts": [p.to_json() for p in parts]}
        manifest.batches.append(batch)
        layout.write_manifest(root, manifest)
        added.append(batch)
        after, prev = through, last
    return added


def _rows(ledger: PostgresLedger, table: str, after: int, through: int) -> pl.DataFrame:
    """The stored rows (columns, then chain hashes) ``after`` < seq <= ``through``, in order."""
    columns = list(STORED[table])
    query = (f"SELECT {', '.join(columns)} FROM {table} WHERE seq > %s AND seq <= %s "
             "ORDER BY seq")
    with ledger.snapshot() as conn, conn.cursor(binary=True) as cur:
        rows = cur.execute(query, (after, through)).fetchall()
    return pl.DataFrame(rows, schema=STORED[table], orient="row")


def _check_links(frame: pl.DataFrame, table: str, after: int, through: int, prev: str,
                 where: str) -> None:
    """The rows are ``after + 1`` to ``through``, each linked to the one before."""
    seqs = frame["seq"].to_list()
    if seqs != list(range(after + 1, through + 1)):
        gone = next((n for n, seq in enumerate(seqs, after + 1) if seq != n), len(seqs) + after + 1)
        raise LedgerError(f"{table} row {gone} is missing from the ledger at {where}: run "
                          f"`etoro-nb ledger verify` on it; rows from {after + 1} on were not "
                          "exported")
    links = pl.concat([pl.Series([prev]), frame["row_hash"].head(-1)])
    broken = (frame["prev_hash"] != links).arg_true()
    if broken.len():
        seq = after + 1 + int(broken[0])
        raise LedgerError(f"{table} row {seq} of the ledger at {where} does not link to row "
                          f"{seq - 1}: run `etoro-nb ledger verify` on it; rows from {after + 1} "
                          "on were not exported")
