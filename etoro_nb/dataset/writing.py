"""Writing a dataset's data files, whichever ledger the rows come from, and what an
export reports.

A ledger's stored rows (its columns, then the chain hashes) are conformed to the table's
stored schema with ``ledger_id`` first, split by UTC day, and each day written as one
Parquet file named by the ledger and the rows it holds (``layout.part_name``), aside then
renamed: a file rewritten by a repeated export holds the same rows, byte for byte.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from etoro_nb.dataset import layout
from etoro_nb.ledger.sealing import STORED


@dataclass(frozen=True)
class ExportResult:
    """What one export did: segments (a SQLite ledger's) or export batches (a PostgreSQL
    ledger's) and rows it added, data files written, and what the dataset holds of this
    ledger now."""

    ledger_id: str
    owner: str
    segments_added: int
    rows_added: int
    files_written: int
    segments_total: int
    rows_total: int
    batches_added: int = 0
    batches_total: int = 0

    def __str__(self) -> str:
        unit, added, total = (("segments", self.segments_added, self.segments_total)
                              if self.segments_total or not self.batches_total else
                              ("export batches", self.batches_added, self.batches_total))
        if not added:
            return (f"nothing to export from {self.owner} (ledger {self.ledger_id}): the dataset "
                    f"already holds its {total} {unit} ({self.rows_total} rows)")
        return (f"exported {self.rows_added} rows of {self.owner} (ledger {self.ledger_id}) from "
                f"{added} {unit} into {self.files_written} files; the dataset holds {total} "
                f"{unit} ({self.rows_total} rows) of it")


def conformed(frame: pl.DataFrame, table: str, ledger_id: str) -> pl.DataFrame:
    """Stored rows in the table's stored schema (a column added after they were written
    reads as null), with ``ledger_id`` first."""
    missing = [pl.lit(None, dtype).alias(c) for c, dtype in STORED[table].items()
               if c not in frame.columns]
    return (frame.with_columns(missing).with_columns(pl.lit(ledger_id).alias(layout.LEDGER_COLUMN))
            .select(list(layout.schema(table))).cast(pl.Schema(layout.schema(table))))


def write_parts(frame: pl.DataFrame, root: Path, table: str, ledger_id: str) -> list[layout.Part]:
    """Write ``frame`` (stored rows of ``table``, in ``seq`` order) under ``root`` as one data
    file per run of rows on one UTC day; the files, in row order.

    Runs, not days: rows are numbered in commit order and stamped when they were made, so
    near midnight a row of the day before may follow one of the day after (writers on
    several hosts, or a commit that waited). Each file then holds consecutive rows, and
    the files, read in order, walk the chain."""
    frame = conformed(frame, table, ledger_id)
    day = pl.from_epoch(pl.col("ts_us") // layout.DAY_US * 86_400, time_unit="s").dt.date()
    parts = []
    runs = frame.with_columns(_day=day).with_columns(_run=pl.col("_day").rle_id())
    for piece in runs.partition_by("_run", maintain_order=True):
        on = piece["_day"][0]
        piece = piece.drop("_day", "_run")
        first, last = int(piece["seq"][0]), int(piece["seq"][-1])
        name = layout.part_name(table, on, ledger_id, first, last)
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        parts.append(layout.Part(name, table, on, first, last, piece.height,
                                 _write_part(piece, target)))
    return parts


def _write_part(piece: pl.DataFrame, target: Path) -> str:
    """Write a data file aside and rename it into place; its SHA-256."""
    buffer = io.BytesIO()
    piece.write_parquet(buffer, compression="zstd", statistics=True)
    data = buffer.getvalue()
    layout.write_aside(target, data)
    return hashlib.sha256(data).hexdigest()
