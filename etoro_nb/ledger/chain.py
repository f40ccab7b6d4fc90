"""The chain's shared pieces, imported by every ledger module and importing none of them
(only ``schema``): the row hash, the clock of rows, where the live rows begin, and what a
verification found.

Each row stores ``prev_hash`` and ``row_hash = sha256(prev_hash | canonical JSON of its
values)``; the first row's ``prev_hash`` is ``schema.GENESIS``.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# The canonical encoding: compact JSON, UTF-8 as is, no NaN. One encoder, made once
# (json.dumps with these options builds a new one per call).
_canonical = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False,
                              allow_nan=False).encode

def chain_hash(prev_hash: str, values: Sequence[Any]) -> str:
    """The hash of a row: its predecessor's hash and its values, canonically encoded.
    Callers pass the values as the row's table spec says the hash covers them
    (``tables.Table.hashed_values``: a later column left NULL is not hashed)."""
    return hashlib.sha256(f"{prev_hash}|{_canonical(list(values))}".encode()).hexdigest()


def sealed_through(conn: sqlite3.Connection, table: str) -> int:
    """The last row of ``table`` in a segment (0: none). Every read of live rows is of the
    rows after it: a sealed row may linger in SQLite until its deletion is done."""
    row = conn.execute("SELECT max(last_seq) FROM segments WHERE table_name = ?",
                       (table,)).fetchone()
    return int(row[0] or 0)


def now_us() -> int:
    """The time of a row: microseconds since the epoch."""
    return time.time_ns() // 1000


@dataclass(frozen=True)
class Verification:
    """What ``verify()`` found: ``ok``, rows checked, the first problem if any, and the
    checkpoints the ledger was found to match (``newest_checkpoint`` describes the newest)."""

    ok: bool
    rows_checked: int
    segments_checked: int
    problem: str | None = None
    checkpoints_checked: int = 0
    newest_checkpoint: str | None = None

    def __str__(self) -> str:
        if not self.ok:
            return f"ledger verification FAILED: {self.problem}"
        done = (f"ledger verified: {self.rows_checked} rows and {self.segments_checked} "
                "segments, chain intact")
        if self.checkpoints_checked:
            return (f"{done}, and it matches {self.checkpoints_checked} signed checkpoint(s): "
                    f"no row up to the newest, the {self.newest_checkpoint}, was removed or "
                    "rewritten")
        return (f"{done} (internal consistency only: without a checkpoint, removed newest "
                "rows or rows rewritten with recomputed hashes would not show)")
