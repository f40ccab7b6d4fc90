"""Reading a ledger table: its sealed Parquet segments and its live SQLite rows as one lazy
frame, in ledger order. Every reader of events (``frames`` among them) goes through here.

Consistency. One read transaction yields both the list of segments and the live rows, and
the live rows read are exactly those after the last segment in it: a seal running at the
same time, in this process or another, can neither drop a row nor show one twice.

Filters reach both parts: a predicate on the Parquet scan (polars skips the row groups,
and so the segments, whose statistics can't match) and the same conditions in the live
rows' SQL ``WHERE`` clause, as parameters.

Live rows come from drafts where there are some (see ``drafts``): Parquet copies of
consecutive live rows, used only when SQLite's hash of their last row is the one they
claim, in the same read transaction; only the rows after the last draft are decoded from
SQL. A cold read that finds at least two drafts' worth of undrafted rows writes them as
drafts for the next reader.

The live rows read are kept per ledger and table: they never change (the
table is append-only, and a row leaves it only once it is in a segment), so the next scan
reads only the rows appended since and filters the kept ones in memory. A filtered scan
with nothing kept reads only the matching rows. The kept rows are what the chain recorded
when they were read; ``verify()`` reads the file afresh.
"""

from __future__ import annotations

import sqlite3
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import polars as pl

import etoro_nb.ledger.drafts as drafts
from etoro_nb.ledger.chain import sealed_through
from etoro_nb.ledger.schema import CHAINED
from etoro_nb.ledger.sealing import STORED

if TYPE_CHECKING:
    from etoro_nb.ledger.core import Ledger

Condition = tuple[str, str, Any]  # (column, SQL operator, value)


@dataclass(frozen=True)
class LiveRows:
    """Decoded live rows of one table: those after row ``after`` through row ``through``."""

    after: int
    through: int
    frame: pl.DataFrame


def scan(ledger: Ledger, table: str, *, since: datetime | date | None = None,
         until: datetime | date | None = None, **equal: str | int | None) -> pl.LazyFrame:
    """The events of ``table`` (its columns, without the chain hashes) whose timestamp is in
    [``since``, ``until``) and whose columns equal the keyword filters (None: any); naive
    datetimes are UTC."""
    conditions = scan_conditions(table, since, until, equal)
    columns = CHAINED[table]
    with ledger._reading() as conn:
        after = sealed_through(conn, table)
        files = [ledger.segments_dir / name for (name,) in conn.execute(
            "SELECT file FROM segments WHERE table_name = ? ORDER BY seq", (table,))]
        live = _live(ledger, conn, table, after, conditions)
    predicate = polars_filter(conditions)
    parts = []
    if files:
        # Segments sealed before a column was added lack it: it reads as null there.
        sealed = (pl.scan_parquet(files, schema=dict(STORED[table]), missing_columns="insert")
                  .select(list(columns)))
        parts.append(sealed if predicate is None else sealed.filter(predicate))
    parts.append(live.lazy())
    return pl.concat(parts, how="vertical")


def scan_conditions(table: str, since: datetime | date | None, until: datetime | date | None,
                    equal: dict[str, str | int | None], *, also: tuple[str, ...] = ()) -> list[Condition]:
    """A scan's filters as conditions, checked: a known table, its own columns (and
    ``also``, columns a reader adds, such as a dataset's ``ledger_id``)."""
    if table not in STORED:
        raise ValueError(f"table must be one of {', '.join(STORED)}, not {table!r}")
    unknown = sorted(set(equal) - {*CHAINED[table], *also})
    if unknown:
        raise ValueError(f"{table} has no column {', '.join(unknown)} to filter on")
    conditions: list[Condition] = []
    for name, op, bound in (("since", ">=", since), ("until", "<", until)):
        if bound is not None:
            conditions.append(("ts_us", op, micros(name, bound)))
    return conditions + [(c, "=", v) for c, v in equal.items() if v is not None]


def micros(name: str, value: datetime | date) -> int:
    """Microseconds since the epoch, computed as the recorder stamps rows (so a bound equal
    to a row's time matches it)."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    elif isinstance(value, date):
        aware = datetime(value.year, value.month, value.day, tzinfo=UTC)
    else:
        raise TypeError(f"{name} must be a datetime or a date, not {type(value).__name__}")
    return int(aware.timestamp() * 1_000_000)


def polars_filter(conditions: list[Condition]) -> pl.Expr | None:
    """``conditions`` as one polars filter (None: no condition)."""
    ops = {">": pl.Expr.__gt__, ">=": pl.Expr.__ge__, "<": pl.Expr.__lt__, "=": pl.Expr.__eq__}
    exprs = [ops[op](pl.col(column), value) for column, op, value in conditions]
    return pl.all_horizontal(exprs) if exprs else None


def _select(conn: sqlite3.Connection, table: str, conditions: list[Condition], *,
            hashes: bool = False) -> pl.DataFrame:
    columns = tuple(STORED[table]) if hashes else CHAINED[table]
    where = " AND ".join(f"{column} {op} ?" for column, op, _ in conditions)
    rows = conn.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE {where} ORDER BY seq",
                        [value for _, _, value in conditions]).fetchall()
    schema = {c: STORED[table][c] for c in columns}
    return pl.DataFrame(rows, schema=schema, orient="row")


def _drafted(ledger: Ledger, conn: sqlite3.Connection, table: str, after: int,
             predicate: pl.Expr | None) -> tuple[pl.DataFrame | None, int]:
    """The live rows after row ``after`` held by usable drafts (meeting ``predicate``), and
    the last row they hold; (None, ``after``) if there are none or one can't be read (it
    was pruned after a seal, or is damaged): then SQL has them all."""
    chain = drafts.usable(conn, ledger.segments_dir, table, after)
    if not chain:
        return None, after
    lazy = pl.scan_parquet([d.path for d in chain], schema=dict(STORED[table]))
    lazy = lazy.select(list(CHAINED[table]))
    try:
        frame = (lazy if predicate is None else lazy.filter(predicate)).collect()
    except (OSError, pl.exceptions.PolarsError):
        return None, after
    return frame, chain[-1].last


def _cold(ledger: Ledger, conn: sqlite3.Connection, table: str, after: int,
          conditions: list[Condition]) -> pl.DataFrame:
    """The live rows after row ``after`` meeting ``conditions``, from drafts and SQL; an
    unfiltered read drafts what it decoded if that is two drafts' worth or more."""
    predicate = polars_filter(conditions)
    from_drafts, drafted = _drafted(ledger, conn, table, after, predicate)
    newest = int(conn.execute(f"SELECT max(seq) FROM {table}").fetchone()[0] or 0)
    draft_now = not conditions and newest - drafted >= 2 * drafts.DRAFT_ROWS
    rest = _select(conn, table, [("seq", ">", drafted), *conditions], hashes=draft_now)
    if draft_now:
        with suppress(OSError):  # a cache for the next reader: a full disk can't fail a read
            drafts.write(ledger.segments_dir, table, rest)
        rest = rest.select(list(CHAINED[table]))
    return rest if from_drafts is None else pl.concat([from_drafts, rest])


def _live(ledger: Ledger, conn: sqlite3.Connection, table: str, after: int,
          conditions: list[Condition]) -> pl.DataFrame:
    """The live rows (those after row ``after``) that meet ``conditions``, from the kept
    rows and the rows appended since when there are kept rows, else from drafts and SQL."""
    kept: LiveRows | None = ledger._live_cache.get(table)
    if kept is not None and kept.after <= after <= kept.through:
        # Kept rows since sealed are in a segment now; rows appended since are read.
        frame = kept.frame if kept.after == after else kept.frame.filter(pl.col("seq") > after)
        tail = _select(conn, table, [("seq", ">", kept.through)])
        frame = pl.concat([frame, tail]) if tail.height else frame
    elif conditions:  # nothing kept: read only the matching rows
        return _cold(ledger, conn, table, after, conditions)
    else:
        frame = _cold(ledger, conn, table, after, [])
    through = int(frame["seq"][-1]) if frame.height else after
    ledger._live_cache[table] = LiveRows(after, through, frame)
    predicate = polars_filter(conditions)
    return frame if predicate is None else frame.filter(predicate)
