"""``verify``: a dataset checked against its manifests, end to end.

For each ledger: its ``segments`` chain is recomputed from the rows its manifest keeps
(every row from the first, hashes linked); each data file listed must exist with the
SHA-256 listed, hold the rows listed, of that ledger and day; and the rows of each table,
file after file, must recompute the ledger's hash chain from the first segment's
``first_prev_hash`` to the last one's ``last_hash``, which the chained ``segments`` rows
vouch for. A PostgreSQL ledger's manifest lists export batches instead of segments: the
rows of each table, batch after batch, must recompute its chain from the genesis hash,
each batch starting where the one before ended (its ``first_prev_hash`` is that one's
``last_hash``), as a SQLite ledger's chain is walked through its segments.
A data file in the table folders that no manifest lists fails the check too
(engines reading the folder would count its rows). The first problem is named.

Without checkpoints this proves internal consistency, as ``etoro-nb ledger verify`` does
without one: the dataset holds, unchanged, rows that chain as the ledgers chained them.
Given the ledgers' signed checkpoints, each checkpointed head the dataset has exported is
checked too: the row at that sequence number has the signed hash, which covers every row
before it, so no exported row up to it was removed or rewritten.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from etoro_nb.dataset import layout
from etoro_nb.ledger.schema import CHAINED
from etoro_nb.ledger.tables import TABLES
from etoro_nb.ledger.verify import _Broken, _Chain

if TYPE_CHECKING:
    from etoro_nb.ledger.checkpoint import Checkpoint


@dataclass(frozen=True)
class DatasetVerification:
    """What ``verify`` found: ``ok``, what it checked, the first problem if any."""

    ok: bool
    ledgers: int
    files_checked: int
    rows_checked: int
    problem: str | None = None
    checkpoints_checked: int = 0
    ledgers_proven: int = 0

    def __str__(self) -> str:
        if not self.ok:
            return f"dataset verification FAILED: {self.problem}"
        done = (f"dataset verified: {self.ledgers} ledger(s), {self.rows_checked} rows in "
                f"{self.files_checked} files, each ledger's chains intact and every file as "
                "its manifest lists it")
        if self.checkpoints_checked:
            return (f"{done}; {self.checkpoints_checked} signed checkpoint(s) of "
                    f"{self.ledgers_proven} ledger(s) match: no exported row up to their heads "
                    "was removed or rewritten")
        return (f"{done} (internal consistency: give the ledgers' checkpoints to prove they "
                "are those ledgers' rows)")


@dataclass
class _Tally:
    files: int = 0
    rows: int = 0
    walks: dict[tuple[str, str], _Chain] = field(default_factory=dict)


def verify(root: str | Path, checkpoints: Sequence[Checkpoint] | None = None, *,
           source: str = "the checkpoint file") -> DatasetVerification:
    """Check the dataset at ``root`` (see the module's docstring), and against
    ``checkpoints`` (read with ``checkpoint.read_checkpoints``) if given: at least one must
    be of a ledger the dataset holds."""
    root = Path(root)
    tally = _Tally()
    mine: list[Checkpoint] = []
    try:
        if not layout.manifests_dir(root).is_dir():
            raise _Broken(f"no dataset at {root} (no {layout.MANIFESTS} folder)")
        try:
            manifests = layout.read_manifests(root)
        except ValueError as exc:
            raise _Broken(str(exc)) from None
        mine = _checkpoints_of(manifests, checkpoints, source)
        for manifest in manifests:
            _check_ledger(root, manifest, tally, [c for c in mine
                                                  if c.ledger_id == manifest.ledger_id])
        listed = {p.path for m in manifests for p in m.parts()}
        strays = [f for f in layout.data_files(root) if f not in listed]
        if strays:
            raise _Broken(f"{strays[0]} is in no manifest ({len(strays)} such file(s)): an "
                          "export interrupted before its manifest was saved (export again), "
                          "or a file put there by hand")
        for checkpoint in mine:
            _check_heads(checkpoint, tally, source)
    except _Broken as broken:
        return DatasetVerification(False, 0, tally.files, tally.rows, str(broken))
    return DatasetVerification(True, len(manifests), tally.files, tally.rows,
                               checkpoints_checked=len(mine),
                               ledgers_proven=len({c.ledger_id for c in mine}))


def _checkpoints_of(manifests: list[layout.Manifest], checkpoints: Sequence[Checkpoint] | None,
                    source: str) -> list[Checkpoint]:
    if checkpoints is None:
        return []
    ids = {m.ledger_id for m in manifests}
    mine = [c for c in checkpoints if c.ledger_id in ids]
    if not mine:
        raise _Broken(f"no checkpoint in {source} is of a ledger this dataset holds")
    return mine


def _check_heads(checkpoint: Checkpoint, tally: _Tally, source: str) -> None:
    """Each head the dataset has exported must be the signed row; heads past the export
    (rows still live in the ledger, or sealed since) have nothing here to check."""
    which = f"the checkpoint of {checkpoint.ts.isoformat()} ({source} line {checkpoint.line})"
    for table, head in checkpoint.heads.items():
        walk = tally.walks.get((checkpoint.ledger_id, table))
        if walk is None or not head.seq or head.seq > walk.expect - 1:
            continue
        if walk.seen.get(head.seq) != head.hash:
            raise _Broken(f"{table} row {head.seq} of ledger {checkpoint.ledger_id} differs from "
                          f"{which}: rows up to it were rewritten (their hashes recomputed)")


def _check_ledger(root: Path, manifest: layout.Manifest, tally: _Tally,
                  checkpoints: list[Checkpoint]) -> None:
    ledger = manifest.ledger_id
    wanted: dict[str, set[int]] = {t: set() for t in ("segments", *layout.TABLES)}
    for checkpoint in checkpoints:
        for table, head in checkpoint.heads.items():
            wanted.setdefault(table, set()).add(head.seq)
    walks = {t: _Chain(t, wanted[t]) for t in wanted}
    tally.walks.update({(ledger, t): w for t, w in walks.items()})
    segments = walks["segments"]
    names = CHAINED["segments"]
    segments.check([[s[c] for c in (*names, "prev_hash", "row_hash")] for s in manifest.segments],
                   f"in manifest {ledger}.json")  # names its ledger
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
            tally.files += 1
            tally.rows += part.rows
        if walk.expect - 1 != seg["last_seq"] or walk.prev != seg["last_hash"]:
            raise _Broken(f"the files of segment {seg['file']} of ledger {ledger} do not hold "
                          f"its {table} rows {seg['first_seq']}-{seg['last_seq']} as chained")
    for batch in manifest.batches:
        _check_batch(root, ledger, batch, walks, tally)


def _check_batch(root: Path, ledger: str, batch: dict[str, Any], walks: dict[str, _Chain],
                 tally: _Tally) -> None:
    """An export batch of a PostgreSQL ledger: it continues its table's chain where the
    batch before it ended (its first row links to that one's last hash), and its files
    hold its rows, chained."""
    table, first, last = batch["table"], batch["first_seq"], batch["last_seq"]
    walk = walks.get(table)
    if walk is None:
        raise _Broken(f"manifest {ledger}.json lists an export batch of an unknown table {table!r}")
    which = f"the export batch of {table} rows {first}-{last} of ledger {ledger}"
    if first != walk.expect or batch["first_prev_hash"] != walk.prev:
        raise _Broken(f"{which} does not continue the {table} chain at row {walk.expect}")
    for part in (layout.Part.from_json(p) for p in batch["parts"]):
        _check_part(root, ledger, part, walk)
        tally.files += 1
        tally.rows += part.rows
    if walk.expect - 1 != last or walk.prev != batch["last_hash"]:
        raise _Broken(f"the files of {which} do not hold its rows as chained")


def _check_part(root: Path, ledger: str, part: layout.Part, walk: _Chain) -> None:
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
    walk.check(frame.select(stored[1:]).rows(), f"in {part.path} of ledger {ledger}")


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
