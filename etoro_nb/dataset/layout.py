"""Where things are in a dataset, and the per-ledger manifest.

::

    DIR/
      table=usage_events/day=2026-01-05/<ledger_id>-<first_seq>-<last_seq>.parquet
      table=lifecycle_events/day=2026-01-05/...
      _manifests/<ledger_id>.json      one per source ledger (written aside, renamed)
      _manifests/<ledger_id>.lock      held while that ledger is exported

A data file holds the stored rows of one ledger's segment (a SQLite ledger's) or export
batch (a PostgreSQL ledger's, which is never sealed) that fall on one UTC day
(``ledger_id`` first, then the table's columns and chain hashes): its name is made from
the ledger and the rows it holds, so exports of different ledgers never write the same
file, and a file rewritten by a repeated export holds the same rows. Engines skip names
starting with ``_`` or ``.``: the manifests and files being written are not data.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from etoro_nb.ledger.sealing import STORED, fsync_path

FORMAT = 1  # a manifest of segments only (a SQLite ledger's)
FORMAT_BATCHES = 2  # a manifest with export batches (a PostgreSQL ledger's): older versions refuse it
MANIFESTS = "_manifests"
TABLES = tuple(STORED)  # the sealable tables: usage_events, lifecycle_events
LEDGER_COLUMN = "ledger_id"
DAY_US = 86_400_000_000


def schema(table: str) -> dict[str, pl.DataType | type[pl.DataType]]:
    """The polars schema of a data file of ``table``: ``ledger_id``, then the stored rows."""
    return {LEDGER_COLUMN: pl.String, **STORED[table]}


def day_of(ts_us: int) -> date:
    return datetime.fromtimestamp(ts_us // DAY_US * 86_400, UTC).date()


def part_name(table: str, day: date, ledger_id: str, first: int, last: int) -> str:
    """A data file's path inside the dataset (POSIX separators, as the manifest keeps it)."""
    return f"table={table}/day={day.isoformat()}/{ledger_id}-{first:012d}-{last:012d}.parquet"


@dataclass(frozen=True)
class Part:
    """A data file: ``path`` relative to the dataset, the rows it holds, its SHA-256."""

    path: str
    table: str
    day: date
    first_seq: int
    last_seq: int
    rows: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "table": self.table, "day": self.day.isoformat(),
                "first_seq": self.first_seq, "last_seq": self.last_seq, "rows": self.rows,
                "sha256": self.sha256}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Part:
        return cls(value["path"], value["table"], date.fromisoformat(value["day"]),
                   int(value["first_seq"]), int(value["last_seq"]), int(value["rows"]),
                   value["sha256"])


@dataclass
class Manifest:
    """What a dataset holds of one ledger: each exported segment (its ``segments`` row as
    the ledger chained it, hashes included) with the data files made of it, and the chain
    heads (last row and hash) of each table as exported.

    A PostgreSQL ledger has no segments: each export adds ``batches`` instead, one per
    table and run of rows (``table``, ``first_seq``, ``first_prev_hash``, ``last_seq``,
    ``last_hash``, ``rows``, ``exported_us`` and its ``parts``). The last batch of a table
    is its watermark: the next export starts after it, and its first row must link to it."""

    ledger_id: str
    owner: str
    source: str
    segments: list[dict[str, Any]] = field(default_factory=list)  # segments rows + "parts"
    batches: list[dict[str, Any]] = field(default_factory=list)  # a PostgreSQL ledger's

    @property
    def exported(self) -> set[int]:
        """The ``seq`` of every segments row exported."""
        return {int(s["seq"]) for s in self.segments}

    def parts(self, table: str | None = None) -> list[Part]:
        return [Part.from_json(p) for s in (*self.segments, *self.batches) for p in s["parts"]
                if table is None or p["table"] == table]

    def heads(self) -> dict[str, dict[str, Any]]:
        """The last row and hash exported of each table, and of the segments chain."""
        out: dict[str, dict[str, Any]] = {}
        if self.segments:
            last = self.segments[-1]
            out["segments"] = {"seq": last["seq"], "hash": last["row_hash"]}
        for seg in self.segments:
            out[seg["table_name"]] = {"seq": seg["last_seq"], "hash": seg["last_hash"]}
        for batch in self.batches:
            out[batch["table"]] = {"seq": batch["last_seq"], "hash": batch["last_hash"]}
        return out

    def to_json(self) -> dict[str, Any]:
        value = {"format": FORMAT, "ledger_id": self.ledger_id, "owner": self.owner,
                 "source": self.source, "heads": self.heads(), "segments": self.segments}
        if self.batches:
            value.update(format=FORMAT_BATCHES, batches=self.batches)
        return value


def manifests_dir(root: Path) -> Path:
    return root / MANIFESTS


def manifest_path(root: Path, ledger_id: str) -> Path:
    return manifests_dir(root) / f"{ledger_id}.json"


def read_manifest(path: Path) -> Manifest:
    """A manifest file (``ValueError`` naming it if it is not one)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
        if value.get("format") not in (FORMAT, FORMAT_BATCHES):
            raise ValueError(f"format {value.get('format')!r}, expected {FORMAT} or "
                             f"{FORMAT_BATCHES}")
        return Manifest(value["ledger_id"], value["owner"], value["source"], value["segments"],
                        value.get("batches", []))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"manifest {path.name} cannot be read: {exc}") from None


def read_manifests(root: Path) -> list[Manifest]:
    """Every ledger's manifest in the dataset at ``root``, by ledger id."""
    return [read_manifest(p) for p in sorted(manifests_dir(root).glob("*.json"))]


def write_aside(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: to a hidden file beside it, synced, renamed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_path(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_manifest(root: Path, manifest: Manifest) -> None:
    text = json.dumps(manifest.to_json(), indent=1, sort_keys=True)
    write_aside(manifest_path(root, manifest.ledger_id), text.encode())


@contextmanager
def locked(root: Path, ledger_id: str) -> Iterator[None]:
    """Hold the export lock of one ledger in the dataset (other ledgers are not blocked)."""
    directory = manifests_dir(root)
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / f"{ledger_id}.lock").open("a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def data_files(root: Path) -> list[str]:
    """Every Parquet file in the dataset's table partitions (relative POSIX paths), listed
    or not: engines that read the directory would read them all."""
    return sorted(p.relative_to(root).as_posix() for table in TABLES
                  for p in (root / f"table={table}").glob("day=*/*.parquet")
                  if not p.name.startswith((".", "_")))
