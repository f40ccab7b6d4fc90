"""Verification: recompute the hash chain end to end and name the first thing wrong.

Without a checkpoint this proves internal consistency only: no row or segment was edited
without recomputing every hash after it. It cannot show that the newest rows were removed,
or that rows were rewritten with their hashes recomputed (the result is a consistent chain
again). With checkpoints (see ``checkpoint``) it also proves that every row up to each
checkpointed head is present and unchanged: the row at the head's sequence number still
has the signed hash, and that hash covers every row before it, sealed segments included.
Rows appended after the newest checkpoint are only as good as the chain.

Drafts (see ``drafts``) are not in the chain, but readers use them in place of live rows:
every draft present must hold exactly the rows it claims, hashes included, or verification
fails naming it (a draft written after the snapshot verified, past its last row, waits for
the next verification).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

import etoro_nb.ledger.drafts as drafts
from etoro_nb.ledger.chain import Verification, chain_hash
from etoro_nb.ledger.schema import CHAINED, GENESIS, SEALABLE
from etoro_nb.ledger.sealing import STORED, file_sha256
from etoro_nb.ledger.tables import TABLES

if TYPE_CHECKING:
    from etoro_nb.ledger.checkpoint import Checkpoint
    from etoro_nb.ledger.core import Ledger


class _Broken(Exception):
    """The first thing found wrong (its message says what and where)."""


class _Chain:
    """Walks one table's rows in order, checking sequence and hashes, and keeping the hash
    of each row a checkpoint asks about (``wanted``)."""

    def __init__(self, table: str, wanted: set[int], kept: set[int] | None = None) -> None:
        self.table = table
        self.spec = TABLES[table]
        self.kept = kept or set()  # rows kept whole (those drafts claim), in ``rows_kept``
        self.rows_kept: dict[int, tuple[Any, ...]] = {}
        self.prev = GENESIS
        self.expect = 1
        self.rows = 0
        self.wanted = wanted
        self.seen: dict[int, str] = {}

    def check(self, rows: Iterable[Sequence[Any]], where: str) -> None:
        for row in rows:
            values, prev_hash, row_hash = list(row[:-2]), row[-2], row[-1]
            seq = values[0]
            if seq != self.expect:
                raise _Broken(f"{self.table} row {self.expect} is missing {where} "
                              f"(the next row found is {seq})")
            if prev_hash != self.prev:
                raise _Broken(f"{self.table} row {seq} {where}: its link to row {seq - 1} "
                              "is broken")
            if chain_hash(self.prev, self.spec.hashed_values(values)) != row_hash:
                raise _Broken(f"{self.table} row {seq} {where} was altered: its hash does not "
                              "match its contents")
            if seq in self.wanted:
                self.seen[seq] = row_hash
            if seq in self.kept:
                self.rows_kept[seq] = tuple(row)
            self.prev = row_hash
            self.expect += 1
            self.rows += 1


def verify(ledger: Ledger, checkpoint: str | Path | None = None, *,
           key: str | Path | None = None) -> Verification:
    """Check the chain and, given a checkpoint file, every checkpoint in it for this ledger
    (verified with ``key``: the signing key's file or its ``.pub``, see
    ``checkpoint.key_path``). A missing file or key raises ``LedgerError``; a checkpoint
    that is edited, signed by another key, or contradicted by the ledger fails the check."""
    from etoro_nb.ledger.checkpoint import CheckpointError, public_key, read_checkpoints

    if checkpoint is None:
        return verify_with(ledger, None)
    trusted = public_key(key)
    try:
        checkpoints = read_checkpoints(checkpoint, trusted)
    except CheckpointError as exc:
        return Verification(False, 0, 0, str(exc))
    return verify_with(ledger, checkpoints, source=Path(checkpoint).name)


def verify_with(ledger: Ledger, checkpoints: Sequence[Checkpoint] | None, *,
                source: str = "the checkpoint file") -> Verification:
    """``verify`` against checkpoints already read (``None``: the chain alone). Checkpoints
    of other ledgers are passed over, but at least one must be for this one."""
    from etoro_nb.ledger.checkpoint import identity

    own = ledger._verify_own(checkpoints, source)  # a backend's own walk (PostgreSQL)
    if own is not None:
        return own
    segments_checked = 0
    wanted: dict[str, set[int]] = {t: set() for t in CHAINED}
    chains: dict[str, _Chain] = {}
    mine: list[Checkpoint] = []
    try:
        with ledger.snapshot() as conn:
            status = conn.execute("PRAGMA integrity_check").fetchone()[0]
            ledger_id = identity(conn, ledger.path)
            live = {t: conn.execute(f"SELECT {', '.join(CHAINED[t])}, prev_hash, row_hash "
                                    f"FROM {t} ORDER BY seq").fetchall() for t in CHAINED}
        mine = checkpoints_of(checkpoints, ledger_id, source)
        for c in mine:
            for table, head in c.heads.items():
                wanted[table].add(head.seq)
        present = [d for d in drafts.present(ledger.segments_dir) if d.table in SEALABLE]
        claimed: dict[str, set[int]] = {t: set() for t in CHAINED}
        for d in present:
            claimed[d.table].update(range(d.first, d.last + 1))
        chains = {t: _Chain(t, wanted[t], claimed[t]) for t in CHAINED}
        chains["segments"].check(live["segments"], "in the segments table")
        names = CHAINED["segments"]
        segments = [dict(zip(names, r[:-2], strict=True)) for r in live["segments"]]
        for table in SEALABLE:
            chain = chains[table]
            for seg in (s for s in segments if s["table_name"] == table):
                _check_segment(ledger, chain, seg)
                segments_checked += 1
            chain.check(live[table], "in the live ledger")
        for d in present:
            _check_draft(chains[d.table], d)
        if status != "ok":
            raise _Broken(f"SQLite integrity_check: {status}")
        for c in mine:  # the newest first: it covers the most rows
            _check_heads(c, chains, source)
    except _Broken as broken:
        return Verification(False, sum(c.rows for c in chains.values()), segments_checked,
                            str(broken))
    except sqlite3.Error as exc:  # a dropped table, a damaged file
        return Verification(False, sum(c.rows for c in chains.values()), segments_checked,
                            f"the ledger cannot be read: {exc}")
    return Verification(True, sum(c.rows for c in chains.values()), segments_checked,
                        checkpoints_checked=len(mine),
                        newest_checkpoint=mine[0].describe() if mine else None)


def checkpoints_of(checkpoints: Sequence[Checkpoint] | None, ledger_id: str,
                   source: str) -> list[Checkpoint]:
    """The checkpoints of this ledger, newest first ([] for None); none at all is a failure."""
    if checkpoints is None:
        return []
    mine = sorted((c for c in checkpoints if c.ledger_id == ledger_id), key=lambda c: c.ts,
                  reverse=True)
    if not mine:
        others = sorted({c.ledger_id for c in checkpoints})
        raise _Broken(f"no checkpoint in {source} is for this ledger (id {ledger_id}); "
                      + (f"it holds checkpoints of {', '.join(others)}" if others else
                         "it holds none"))
    return mine


def _check_segment(ledger: Ledger, chain: _Chain, seg: dict[str, Any]) -> None:
    path = ledger.segments_dir / seg["file"]
    named = f"segment {seg['file']} (rows {seg['first_seq']}-{seg['last_seq']})"
    if not path.exists():
        raise _Broken(f"{named} is missing")
    if file_sha256(path) != seg["sha256"]:
        raise _Broken(f"{named} was altered: its SHA-256 no longer matches the one in the chain")
    if seg["first_seq"] != chain.expect or seg["first_prev_hash"] != chain.prev:
        raise _Broken(f"segment {seg['file']} does not continue the chain at row {chain.expect}")
    chain.check(pl.read_parquet(path).rows(), f"in segment {seg['file']}")
    if chain.expect - 1 != seg["last_seq"] or seg["rows"] != seg["last_seq"] - seg["first_seq"] + 1:
        raise _Broken(f"{named} holds rows {seg['first_seq']}-{chain.expect - 1}, not the rows "
                      "the chain records")
    if chain.prev != seg["last_hash"]:
        raise _Broken(f"segment {seg['file']} ends on a different hash than the chain records")


def _check_draft(chain: _Chain, draft: drafts.Draft) -> None:
    if draft.last >= chain.expect:
        return  # written after the snapshot: its rows are not verified yet
    try:
        if set(STORED[chain.table]) - set(pl.read_parquet_schema(draft.path)):
            return  # drafted before a column was added: readers never use it (scan reads SQL)
        rows = pl.read_parquet(draft.path, columns=list(STORED[chain.table])).rows()
    except FileNotFoundError:
        return  # obsolete, deleted since it was listed
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise _Broken(f"draft {draft.path.name} cannot be read: {exc}") from None
    claimed = [chain.rows_kept.get(seq) for seq in range(draft.first, draft.last + 1)]
    if rows != claimed or not str(claimed[-1][-1] if claimed[-1] else "").startswith(draft.hash):
        raise _Broken(f"draft {draft.path.name} was altered: it does not hold the {chain.table} "
                      f"rows {draft.first}-{draft.last} it claims (readers would use it in "
                      "their place)")


def _check_heads(checkpoint: Checkpoint, chains: dict[str, _Chain], source: str) -> None:
    which = f"the checkpoint of {checkpoint.ts.isoformat()} ({source} line {checkpoint.line})"
    for table, head in checkpoint.heads.items():
        chain = chains[table]
        last = chain.expect - 1
        if head.seq > last:
            raise _Broken(f"{table} rows {last + 1} to {head.seq} were removed: {which} "
                          f"records the table up to row {head.seq}, the ledger now ends at row "
                          f"{last}")
        if head.seq and chain.seen.get(head.seq) != head.hash:
            raise _Broken(f"{table} row {head.seq} differs from {which}: rows up to it were "
                          "rewritten (their hashes recomputed)")
