"""``verify``: a dataset checked against its manifests, end to end.

For each ledger: its ``segments`` chain is recomputed from the rows its manifest keeps
(every row from the first, hashes linked); each data file listed must exist with the
SHA-256 listed, hold the rows listed, of that ledger and day; and the rows of each table,
file after file, must recompute the ledger's hash chain from the first segment's
``first_prev_hash`` to the last one's ``last_hash``, which the chained ``segments`` rows
vouch for. A data file in the table folders that no manifest lists fails the check too
(engines reading the folder would count its rows). The first problem is named.

Like ``etoro-nb ledger verify`` without a checkpoint, this proves internal consistency:
the dataset holds, unchanged, rows that chain as the ledgers chained them. Comparing the
manifest's heads with a ledger's signed checkpoint proves they are that ledger's rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from etoro_nb.dataset import layout
from etoro_nb.ledger.chain import chain_hash
from etoro_nb.ledger.schema import CHAINED, GENESIS
from etoro_nb.ledger.tables import TABLES


class _Broken(Exception):
    pass


@dataclass(frozen=True)
class DatasetVerification:
    """What ``verify`` found: ``ok``, what it checked, the first problem if any."""

    ok: bool
    ledgers: int
    files_checked: int
    rows_checked: int
    problem: str | None = None

    def __str__(self) -> str:
        if not self.ok:
            return f"dataset verification FAILED: {self.problem}"
        return (f"dataset verified: {self.ledgers} ledger(s), {self.rows_checked} rows in "
                f"{self.files_checked} files, each ledger's chains intact and every file as "
                "its manifest lists it (internal consistency: compare the manifests' heads "
                "with the ledgers' checkpoints to prove they are those ledgers' rows)")


class _Walk:
    """One chain walked row by row: sequence, link and hash of each row."""

    def __init__(self, table: str, ledger_id: str) -> None:
        self.table, self.ledger_id, self.spec = table, ledger_id, TABLES[table]
        self.prev, self.expect, self.rows = GENESIS, 1, 0

    def check(self, rows: Sequence[Sequence[Any]], where: str) -> None:
        for row in rows:
            values, prev_hash, row_hash = list(row[:-2]), row[-2], row[-1]
            seq = values[0]
            named = f"{self.table} row {seq} of ledger {self.ledger_id} {where}"
            if seq != self.expect:
                raise _Broken(f"{self.table} row {self.expect} of ledger {self.ledger_id} is "
                              f"missing {where} (the next row found is {seq})")
            if prev_hash != self.prev:
                raise _Broken(f"{named}: its link to row {seq - 1} is broken")
            if chain_hash(self.prev, self.spec.hashed_values(values)) != row_hash:
                raise _Broken(f"{named} was altered: its hash does not match its contents")
            self.prev, self.expect, self.rows = row_hash, self.expect + 1, self.rows + 1


def verify(root: str | Path) -> DatasetVerification:
    """Check the dataset at ``root`` (see the module's docstring)."""
    root = Path(root)
    counts = {"files": 0, "rows": 0}
    try:
        if not layout.manifests_dir(root).is_dir():
            raise _Broken(f"no dataset at {root} (no {layout.MANIFESTS} folder)")
        try:
            manifests = layout.read_manifests(root)
        except ValueError as exc:
            raise _Broken(str(exc)) from None
        for manifest in manifests:
            _check_ledger(root, manifest, counts)
        listed = {p.path for m in manifests for p in m.parts()}
        strays = [f for f in layout.data_files(root) if f not in listed]
        if strays:
            raise _Broken(f"{strays[0]} is in no manifest ({len(strays)} such file(s)): an "
                          "export interrupted before its manifest was saved (export again), "
                          "or a file put there by hand")
    except _Broken as broken:
        return DatasetVerification(False, 0, counts["files"], counts["rows"], str(broken))
    return DatasetVerification(True, len(manifests), counts["files"], counts["rows"])


def _check_ledger(root: Path, manifest: layout.Manifest, counts: dict[str, int]) -> None:
    ledger = manifest.ledger_id
    segments = _Walk("segments", ledger)
    names = CHAINED["segments"]
    segments.check([[s[c] for c in (*names, "prev_hash", "row_hash")] for s in manifest.segments],
                   f"in manifest {ledger}.json")
    walks = {t: _Walk(t, ledger) for t in layout.TABLES}
    for seg in manifest.segments:
        table = seg["table_name"]
        if table not in walks:
            continue
        walk = walks[table]
        if seg["first_seq"] != walk.expect or seg["first_prev_hash"] != walk.prev:
            raise _Broken(f"segment {seg['file']} of ledger {ledger} does not continue the "
                          f"{table} chain at row {walk.expect}")
        for part in (layout.Part.from_json(p) for p in seg["parts"]):
            _check_part(root, ledger, part, walk)
            counts["files"] += 1
            counts["rows"] += part.rows
        if walk.expect - 1 != seg["last_seq"] or walk.prev != seg["last_hash"]:
            raise _Broken(f"the files of segment {seg['file']} of ledger {ledger} do not hold "
                          f"its {table} rows {seg['first_seq']}-{seg['last_seq']} as chained")


def _check_part(root: Path, ledger: str, part: layout.Part, walk: _Walk) -> None:
    path = root / part.path
    if not path.is_file():
        raise _Broken(f"{part.path} is missing (listed in manifest {ledger}.json)")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != part.sha256:
        raise _Broken(f"{part.path} was altered: its SHA-256 is not the one manifest "
                      f"{ledger}.json lists")
    frame = _conformed(pl.read_parquet(data), part)
    stored = list(layout.schema(part.table))
    others = frame.filter(pl.col(layout.LEDGER_COLUMN) != ledger).height
    days = frame.select(pl.from_epoch(pl.col("ts_us") // layout.DAY_US * 86_400, time_unit="s")
                        .dt.date().unique())["ts_us"].to_list()
    if others or days != [part.day]:
        raise _Broken(f"{part.path} holds rows of another ledger or day than its name says")
    walk.check(frame.select(stored[1:]).rows(), f"in {part.path}")


def _conformed(frame: pl.DataFrame, part: layout.Part) -> pl.DataFrame:
    """A data file's rows in the stored column order. A file written before a column was
    added to its table lacks it: null there, as its rows were hashed without it."""
    stored = layout.schema(part.table)
    missing = [c for c in stored if c not in frame.columns]
    extra = [c for c in frame.columns if c not in stored]
    if extra:
        raise _Broken(f"{part.path} has columns this version does not know ({', '.join(extra)}): "
                      "verify it with the version that wrote it, or a newer one")
    if set(missing) - set(TABLES[part.table].later) or frame.height != part.rows:
        raise _Broken(f"{part.path} does not hold the {part.rows} rows its manifest lists")
    return frame.with_columns(pl.lit(None, stored[c]).alias(c) for c in missing).select(
        list(stored))
