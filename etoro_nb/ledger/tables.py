"""One spec per chained table: its columns with their SQL type and constraints, polars
dtype, and whether a NULL is hashed. Everything that names a table's columns is made from
here: the current version's DDL (``Table.ddl``; the migrations that built it over time stay
literal in ``schema``, being history, and a test holds them to this spec), the stored
Parquet schema of segments and drafts (``Table.stored``), the values a row's hash covers
(``Table.hashed_values``), and the ``frames`` schemas of the raw columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

DType = pl.DataType | type[pl.DataType]
_SQL_DTYPE: dict[str, DType] = {"INTEGER": pl.Int64, "TEXT": pl.String, "REAL": pl.Float64}


@dataclass(frozen=True)
class Column:
    """A column: ``sql`` type, ``constraint`` (``NOT NULL``, ``CHECK``...), and
    ``hashed_when_null``: False for a column added after rows were hashed without it
    (it must come last): left NULL, it is not hashed, as before it existed."""

    name: str
    sql: str
    constraint: str = ""
    hashed_when_null: bool = True

    @property
    def dtype(self) -> DType:
        return _SQL_DTYPE[self.sql]


def _checked(name: str, values: Sequence[str], *, null: bool = False) -> str:
    allowed = ", ".join(f"'{v}'" for v in values)
    return f"{'' if null else 'NOT NULL '}CHECK ({name} IN ({allowed}))"


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]  # without the chain hashes, which every table ends with

    def __post_init__(self) -> None:
        later = [c.hashed_when_null for c in self.columns]
        if later != sorted(later, reverse=True):
            raise ValueError(f"{self.name}: a column not hashed when null must come last")

    @property
    def names(self) -> tuple[str, ...]:
        """The chained columns, in order (the chain hashes not included)."""
        return tuple(c.name for c in self.columns)

    @property
    def stored(self) -> dict[str, DType]:
        """The polars schema of the stored rows: the columns, then ``prev_hash`` and
        ``row_hash`` (segments and drafts are written in it)."""
        return {**{c.name: c.dtype for c in self.columns},
                "prev_hash": pl.String, "row_hash": pl.String}

    @property
    def real(self) -> frozenset[str]:
        return frozenset(c.name for c in self.columns if c.sql == "REAL")

    @property
    def later(self) -> tuple[str, ...]:
        """The columns not hashed when null (added later)."""
        return tuple(c.name for c in self.columns if not c.hashed_when_null)

    def hashed_values(self, values: Sequence[Any]) -> list[Any]:
        """A row's values (in column order) as its hash covers them: trailing columns not
        hashed when null are left out while null."""
        out = list(values)
        if len(out) != len(self.columns):
            return out  # a row of an older version of the table (tests of old formats)
        for column in reversed(self.columns):
            if column.hashed_when_null or not out or out[-1] is not None:
                break
            out.pop()
        return out

    def ddl(self) -> str:
        """``CREATE TABLE`` of the current version (what the migrations add up to). The
        columns added later come after the chain hashes, where ``ALTER TABLE`` put them."""
        def line(c: Column) -> str:
            return f"    {c.name} {c.sql}{' ' + c.constraint if c.constraint else ''}"
        lines = [line(c) for c in self.columns if c.hashed_when_null]
        lines += ["    prev_hash TEXT NOT NULL", "    row_hash TEXT NOT NULL"]
        lines += [line(c) for c in self.columns if not c.hashed_when_null]
        return f"CREATE TABLE {self.name} (\n" + ",\n".join(lines) + "\n);"

    def frame_schema(self, rename: Mapping[str, tuple[str, DType]] | None = None,
                     drop: Sequence[str] = ()) -> pl.Schema:
        """The columns as a frame shows them: ``rename`` maps a column to its shown name
        and dtype (``ts_us`` to ``ts``, a datetime), ``drop`` leaves columns out."""
        shown = rename or {}
        return pl.Schema([shown.get(c.name, (c.name, c.dtype)) for c in self.columns
                          if c.name not in drop])


_NN = "NOT NULL"
USAGE = Table("usage_events", (
    Column("seq", "INTEGER", "PRIMARY KEY"),
    Column("ts_us", "INTEGER", _NN),
    Column("phase", "TEXT", _checked("phase", ("intent", "outcome"))),
    Column("request_id", "TEXT", _NN),
    Column("attempt", "INTEGER", _NN),
    Column("principal", "TEXT", _checked("principal", ("owner", "agent"))),
    Column("portfolio_id", "TEXT"),
    Column("token_id", "TEXT"),
    Column("token_fingerprint", "TEXT"),
    Column("environment", "TEXT", _checked("environment", ("sandbox", "live"))),
    Column("method", "TEXT", _NN),
    Column("route", "TEXT", _NN),
    Column("operation_id", "TEXT", _NN),
    Column("scope_required", "TEXT"),
    Column("status", "INTEGER"),
    Column("error_code", "TEXT"),
    Column("latency_ms", "REAL"),
    # 0007: the application that made the request (``ClientConfig.application``, e.g. the
    # MCP server's "mcp:<client name>"); NULL on rows from before it and when none was set.
    Column("application", "TEXT", hashed_when_null=False),
))
DELEGATION_KINDS = ("portfolio_created", "portfolio_deleted", "token_minted", "token_updated",
                    "token_revoked", "token_expired")
"""Lifecycle kinds that change delegation (what ``frames.lifecycle`` shows)."""
AGENT_KINDS = ("policy_set", "agent_paused", "agent_resumed", "policy_refused",
               "order_booked", "book_reconciled", "session_stopped")
"""Lifecycle kinds of risk boundaries (``0006_policy_events``, ``etoro_nb.agent``): the
owner's policy versions, pauses and resumes; an agent session's local refusals, the book
after each order it placed and after each reconciliation, and its stop."""
LIFECYCLE_KINDS = DELEGATION_KINDS + AGENT_KINDS
LIFECYCLE = Table("lifecycle_events", (
    Column("seq", "INTEGER", "PRIMARY KEY"),
    Column("ts_us", "INTEGER", _NN),
    Column("request_id", "TEXT"),
    Column("kind", "TEXT", _checked("kind", LIFECYCLE_KINDS)),
    Column("portfolio_id", "TEXT"),
    Column("token_id", "TEXT"),
    Column("token_name", "TEXT"),
    Column("scopes", "TEXT"),  # JSON list
    Column("ips_whitelist", "TEXT"),  # JSON list
    Column("expires_at_us", "INTEGER"),
    Column("detail", "TEXT"),  # JSON object
    # 0004: NULL on rows recorded after the fact, before intents and outcomes existed.
    Column("phase", "TEXT", _checked("phase", ("intent", "outcome", "failed"), null=True),
           hashed_when_null=False),
))
SEGMENTS = Table("segments", (
    Column("seq", "INTEGER", "PRIMARY KEY"),
    Column("ts_us", "INTEGER", _NN),
    Column("table_name", "TEXT", _NN),
    Column("first_seq", "INTEGER", _NN),
    Column("last_seq", "INTEGER", _NN),
    Column("rows", "INTEGER", _NN),
    Column("file", "TEXT", _NN),
    Column("sha256", "TEXT", _NN),
    Column("first_prev_hash", "TEXT", _NN),
    Column("last_hash", "TEXT", _NN),
))
TABLES: dict[str, Table] = {t.name: t for t in (USAGE, LIFECYCLE, SEGMENTS)}
