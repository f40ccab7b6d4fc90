"""Verification: recompute the hash chain end to end and name the first thing wrong."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import polars as pl

from etoro_nb.ledger.schema import CHAINED, GENESIS, SEALABLE
from etoro_nb.ledger.sealing import file_sha256

if TYPE_CHECKING:
    from etoro_nb.ledger.core import Ledger, Verification


class _Broken(Exception):
    pass


class _Chain:
    """Walks one table's rows in order, checking sequence and hashes."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.prev = GENESIS
        self.expect = 1
        self.rows = 0

    def check(self, rows: Iterable[Sequence[Any]], where: str) -> None:
        from etoro_nb.ledger.core import chain_hash

        for row in rows:
            values, prev_hash, row_hash = list(row[:-2]), row[-2], row[-1]
            seq = values[0]
            if seq != self.expect:
                raise _Broken(f"{self.table} row {self.expect} is missing {where} "
                              f"(the next row found is {seq})")
            if prev_hash != self.prev:
                raise _Broken(f"{self.table} row {seq} {where}: its link to row {seq - 1} "
                              "is broken")
            if chain_hash(self.prev, values) != row_hash:
                raise _Broken(f"{self.table} row {seq} {where} was altered: its hash does not "
                              "match its contents")
            self.prev = row_hash
            self.expect += 1
            self.rows += 1


def verify(ledger: Ledger) -> Verification:
    from etoro_nb.ledger.core import Verification

    segments_checked = 0
    chains = {t: _Chain(t) for t in CHAINED}
    try:
        with ledger.snapshot() as conn:
            status = conn.execute("PRAGMA integrity_check").fetchone()[0]
            live = {t: conn.execute(f"SELECT {', '.join(CHAINED[t])}, prev_hash, row_hash "
                                    f"FROM {t} ORDER BY seq").fetchall() for t in CHAINED}
        chains["segments"].check(live["segments"], "in the segments table")
        names = CHAINED["segments"]
        segments = [dict(zip(names, r[:-2], strict=True)) for r in live["segments"]]
        for table in SEALABLE:
            chain = chains[table]
            for seg in (s for s in segments if s["table_name"] == table):
                path = ledger.segments_dir / seg["file"]
                where = f"in segment {seg['file']}"
                if not path.exists():
                    raise _Broken(f"segment {seg['file']} (rows {seg['first_seq']}-"
                                  f"{seg['last_seq']}) is missing")
                if file_sha256(path) != seg["sha256"]:
                    raise _Broken(f"segment {seg['file']} (rows {seg['first_seq']}-"
                                  f"{seg['last_seq']}) was altered: its SHA-256 no longer "
                                  "matches the one in the chain")
                if seg["first_seq"] != chain.expect or seg["first_prev_hash"] != chain.prev:
                    raise _Broken(f"segment {seg['file']} does not continue the chain at row "
                                  f"{chain.expect}")
                chain.check(pl.read_parquet(path).rows(), where)
                if chain.prev != seg["last_hash"]:
                    raise _Broken(f"segment {seg['file']} ends on a different hash than the "
                                  "chain records")
                segments_checked += 1
            chain.check(live[table], "in the live ledger")
        if status != "ok":
            raise _Broken(f"SQLite integrity_check: {status}")
    except _Broken as broken:
        return Verification(False, sum(c.rows for c in chains.values()), segments_checked,
                            str(broken))
    return Verification(True, sum(c.rows for c in chains.values()), segments_checked)
