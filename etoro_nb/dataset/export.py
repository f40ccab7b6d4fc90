"""``export``: a ledger's sealed history into a dataset, incrementally (a PostgreSQL
ledger's rows: ``pg_export``).

Each segment the ledger chained and the dataset lacks is checked against its SHA-256 in
the chain, split by UTC day, and written as data files (aside, then renamed); the
ledger's manifest then lists them, with the segment's ``segments`` row. A segment is
exported once: exporting again adds only what was sealed since, and nothing at all when
nothing was. Exports of different ledgers into one dataset touch different files; two
exports of one ledger take turns (a lock per ledger). An export that dies leaves data
files its manifest does not list yet; the next export writes them again, identically.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import polars as pl

from etoro_nb.dataset import layout, pg_export, writing
from etoro_nb.dataset.writing import ExportResult
from etoro_nb.errors import LedgerError
from etoro_nb.ledger import Ledger
from etoro_nb.ledger.pg_connect import is_postgres
from etoro_nb.ledger.sealing import file_sha256

if TYPE_CHECKING:
    from etoro_nb.ledger.postgres import PostgresLedger

if TYPE_CHECKING:
    from etoro_nb.ledger.postgres import PostgresLedger

SAVE_EVERY = 64  # segments exported between manifest saves: bounds the work a crash redoes


def export(ledger: Ledger | str | Path, to: str | Path, *, owner: str | None = None,
           seal: bool = True) -> ExportResult:
    """Export the sealed history of ``ledger`` (a ``Ledger``, a ledger file, or a
    PostgreSQL ledger's ``postgresql://`` URL) into the dataset at ``to`` (made if
    missing). ``seal`` first seals the live rows, so everything recorded so far is
    exported; without it only what is already sealed. A PostgreSQL ledger is never sealed:
    every row committed so far is exported, in export batches (``pg_export``), whatever
    ``seal`` says. ``owner`` labels the ledger in the dataset (default: the label it
    already has there, else the ledger file's name without its suffix, or the database's
    name)."""
    if isinstance(ledger, Ledger):
        if ledger.backend == "postgresql":
            return _export_postgres(ledger, Path(to), owner)
        return _export(ledger, Path(to), owner, seal)
    if is_postgres(ledger):
        with Ledger.open(str(ledger)) as shared:
            return _export_postgres(shared, Path(to), owner)
    path = Path(ledger)
    if not path.is_file():
        raise LedgerError(f"no ledger at {path}")
    with Ledger(path, seal_threshold=None) as opened:
        return _export(opened, Path(to), owner, seal)


def _export_postgres(ledger: Ledger, root: Path, owner: str | None) -> ExportResult:
    return pg_export.export_postgres(cast("PostgresLedger", ledger), root, owner)


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
    return writing.write_parts(pl.read_parquet(source), root, table, ledger_id)
