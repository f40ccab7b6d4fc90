"""Verifying a PostgreSQL ledger: the same walk as SQLite's (``verify``), over the server's
rows in one REPEATABLE READ snapshot, streamed through a server-side cursor.

Every table is one chain, whichever host appended each row (``postgres``): a row missing,
altered, or inserted without the right link breaks it at that row; against a checkpoint,
removed newest rows or rows rewritten with recomputed hashes show as in SQLite. A
PostgreSQL ledger is never sealed, so a ``segments`` row is itself a failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from etoro_nb.errors import LedgerError
from etoro_nb.ledger.chain import Verification
from etoro_nb.ledger.schema import CHAINED, LEDGER_ID
from etoro_nb.ledger.verify import _Broken, _Chain, _check_heads, checkpoints_of

if TYPE_CHECKING:
    from etoro_nb.ledger.checkpoint import Checkpoint
    from etoro_nb.ledger.postgres import PostgresLedger

FETCH_ROWS = 10_000  # rows a server-side cursor brings per round trip


def verify_postgres(ledger: PostgresLedger, checkpoints: Sequence[Checkpoint] | None, *,
                    source: str) -> Verification:
    """``verify.verify_with`` for a PostgreSQL ledger."""
    chains: dict[str, _Chain] = {}
    mine: list[Checkpoint] = []
    try:
        with ledger._reading() as conn:
            row = conn.execute("SELECT value FROM ledger_meta WHERE key = %s",
                               (LEDGER_ID,)).fetchone()
            if row is None:
                raise _Broken(f"the ledger has no identity ({LEDGER_ID} is missing)")
            mine = checkpoints_of(checkpoints, str(row[0]), source)
            for table, columns in CHAINED.items():
                wanted = {c.heads[table].seq for c in mine if table in c.heads}
                chains[table] = chain = _Chain(table, wanted)
                with conn.cursor(name=f"verify_{table}") as cur:
                    cur.itersize = FETCH_ROWS
                    cur.execute(f"SELECT {', '.join(columns)}, prev_hash, row_hash FROM {table} "
                                "ORDER BY seq")
                    chain.check(cur, "in the PostgreSQL ledger")
        if chains["segments"].rows:
            raise _Broken("the segments table has rows: a PostgreSQL ledger is never sealed")
        for c in mine:  # the newest first: it covers the most rows
            _check_heads(c, chains, source)
    except _Broken as broken:
        return Verification(False, sum(c.rows for c in chains.values()), 0, str(broken))
    except LedgerError as exc:
        return Verification(False, sum(c.rows for c in chains.values()), 0,
                            f"the ledger cannot be read: {exc}")
    return Verification(True, sum(c.rows for c in chains.values()), 0,
                        checkpoints_checked=len(mine),
                        newest_checkpoint=mine[0].describe() if mine else None)
