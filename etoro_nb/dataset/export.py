"""``export``: a ledger's sealed history into a dataset, incrementally.

Each segment the ledger chained and the dataset lacks is checked against its SHA-256 in
the chain, split by UTC day, and written as data files (aside, then renamed); the
ledger's manifest then lists them, with the segment's ``segments`` row. A segment is
exported once: exporting again adds only what was sealed since, and nothing at all when
nothing was. Exports of different ledgers into one dataset touch different files; two
exports of one ledger take turns (a lock per ledger). An export that dies leaves data
files its manifest does not list yet; the next export writes them again, identically.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from etoro_nb.dataset import layout
from etoro_nb.errors import LedgerError
from etoro_nb.ledger import Ledger
from etoro_nb.ledger.sealing import STORED, file_sha256

SAVE_EVERY = 64  # segments exported between manifest saves: bounds the work a crash redoes


@dataclass(frozen=True)
class ExportResult:
    """What one export did: segments and rows it added, data files written, and what the
    dataset holds of this ledger now."""

    ledger_id: str
    owner: str
    segments_added: int
    rows_added: int
    files_written: int
    segments_total: int
    rows_total: int

    def __str__(self) -> str:
        if not self.segments_added:
            return (f"nothing to export from {self.owner} (ledger {self.ledger_id}): the dataset "
                    f"already holds its {self.segments_total} segments ({self.rows_total} rows)")
        return (f"exported {self.rows_added} rows of {self.owner} (ledger {self.ledger_id}) from "
                f"{self.segments_added} segments into {self.files_written} files; the dataset "
                f"holds {self.segments_total} segments ({self.rows_total} rows) of it")


def export(ledger: Ledger | str | Path, to: str | Path, *, owner: str | None = None,
           seal: bool = True) -> ExportResult:
    """Export the sealed history of ``ledger`` (a ``Ledger`` or a ledger file) into the
    dataset at ``to`` (made if missing). ``seal`` first seals the live rows, so everything
    recorded so far is exported; without it only what is already sealed. ``owner`` labels
    the ledger in the dataset (default: the label it already has there, else the ledger
    file's name without its suffix)."""
    if isinstance(ledger, Ledger):
        return _export(ledger, Path(to), owner, seal)
    path = Path(ledger)
    if not path.is_file():
        raise LedgerError(f"no ledger at {path}")
    with Ledger(path, seal_threshold=None) as opened:
        return _export(opened, Path(to), owner, seal)


def _export(ledger: Ledger, root: Path, owner: str | None, seal: bool) -> ExportResult:
    from etoro_nb.ledger.checkpoint import ledger_identity

    if seal:
        for table in layout.TABLES:
            ledger.seal(table)
    ledger_id = ledger_identity(ledger)
    every = ledger.segments()
    root.mkdir(parents=True, exist_ok=True)
    with layout.locked(root, ledger_id):
        path = layout.manifest_path(root, ledger_id)
        manifest = (layout.read_manifest(path) if path.exists() else
                    layout.Manifest(ledger_id, owner or ledger.path.stem, str(ledger.path)))
        _same_history(manifest, every)
        changed = owner is not None and owner != manifest.owner
        manifest.owner = owner or manifest.owner
        # The segments chain links segments of both tables: keep every row of it, in order.
        todo = [s for s in every if s["seq"] not in manifest.exported]
        rows = files = 0
        for n, seg in enumerate(todo, 1):
            parts = (_export_segment(ledger, root, ledger_id, seg)
                     if seg["table_name"] in layout.TABLES else [])
            manifest.segments.append({**seg, "parts": [p.to_json() for p in parts]})
            rows += sum(p.rows for p in parts)
            files += len(parts)
            if n % SAVE_EVERY == 0:
                layout.write_manifest(root, manifest)
        if todo or changed or not path.exists():
            layout.write_manifest(root, manifest)
    return ExportResult(ledger_id, manifest.owner, len(todo), rows, files,
                        len(manifest.segments), sum(p.rows for p in manifest.parts()))


def _same_history(manifest: layout.Manifest, segments: list[dict[str, Any]]) -> None:
    """Refuse a ledger whose segments differ from those its manifest lists (a copy of the
    ledger that went its own way has the same identity and another history)."""
    chained = {int(s["seq"]): s["row_hash"] for s in segments}
    for seg in manifest.segments:
        if chained.get(int(seg["seq"])) != seg["row_hash"]:
            raise LedgerError(
                f"the dataset's manifest of ledger {manifest.ledger_id} lists segments row "
                f"{seg['seq']}, which this ledger does not hold as it was exported: it is "
                "another ledger with the same identity (a copy?), or its history was changed")


def _export_segment(ledger: Ledger, root: Path, ledger_id: str,
                    seg: dict[str, Any]) -> list[layout.Part]:
    table = str(seg["table_name"])
    source = ledger.segments_dir / seg["file"]
    if not source.is_file():
        raise LedgerError(f"segment {seg['file']} of {ledger.path} is missing; nothing of it "
                          "was exported")
    if file_sha256(source) != seg["sha256"]:
        raise LedgerError(f"segment {seg['file']} of {ledger.path} was altered (its SHA-256 is "
                          "not the one in the chain); nothing of it was exported: run "
                          "`etoro-nb ledger verify` on the ledger")
    frame = _conformed(pl.read_parquet(source), table, ledger_id)
    day = pl.from_epoch(pl.col("ts_us") // layout.DAY_US * 86_400, time_unit="s").dt.date()
    parts = []
    for piece in frame.with_columns(_day=day).partition_by("_day", maintain_order=True):
        on = piece["_day"][0]
        piece = piece.drop("_day")
        first, last = int(piece["seq"][0]), int(piece["seq"][-1])
        name = layout.part_name(table, on, ledger_id, first, last)
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        parts.append(layout.Part(name, table, on, first, last, piece.height,
                                 _write_part(piece, target)))
    return parts


def _conformed(frame: pl.DataFrame, table: str, ledger_id: str) -> pl.DataFrame:
    """A segment's rows in the table's stored schema (a column added after it was sealed
    reads as null), with ``ledger_id`` first."""
    missing = [pl.lit(None, dtype).alias(c) for c, dtype in STORED[table].items()
               if c not in frame.columns]
    return (frame.with_columns(missing).with_columns(pl.lit(ledger_id).alias(layout.LEDGER_COLUMN))
            .select(list(layout.schema(table))).cast(pl.Schema(layout.schema(table))))


def _write_part(piece: pl.DataFrame, target: Path) -> str:
    """Write a data file aside and rename it into place; its SHA-256."""
    buffer = io.BytesIO()
    piece.write_parquet(buffer, compression="zstd", statistics=True)
    data = buffer.getvalue()
    layout.write_aside(target, data)
    return hashlib.sha256(data).hexdigest()
