"""Reading a PostgreSQL ledger: a table's rows as a polars frame, filtered on the server.

The rows are fetched in ledger order in the reader's snapshot, in binary, and decoded into
the table's stored dtypes (``tables``), so ``frames`` get exactly the columns and types a
SQLite ledger gives them.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

import polars as pl

from etoro_nb.ledger.scan import scan_conditions
from etoro_nb.ledger.schema import CHAINED
from etoro_nb.ledger.sealing import STORED

if TYPE_CHECKING:
    from etoro_nb.ledger.postgres import PostgresLedger


def scan_postgres(ledger: PostgresLedger, table: str, *, since: datetime | date | None,
                  until: datetime | date | None, equal: dict[str, str | int | None]) -> pl.LazyFrame:
    """``Ledger.scan`` on PostgreSQL: the conditions become the query's WHERE clause."""
    conditions = scan_conditions(table, since, until, equal)
    columns = CHAINED[table]
    where = " AND ".join(f"{column} {op} %s" for column, op, _ in conditions) or "TRUE"
    query = f"SELECT {', '.join(columns)} FROM {table} WHERE {where} ORDER BY seq"
    with ledger._reading() as conn, conn.cursor(binary=True) as cur:
        rows = cur.execute(query, [value for _, _, value in conditions]).fetchall()
    schema = {c: STORED[table][c] for c in columns}
    return pl.DataFrame(rows, schema=schema, orient="row").lazy()
