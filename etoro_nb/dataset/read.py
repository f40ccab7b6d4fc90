"""``Dataset``: a dataset read like a ledger. Its ``scan`` has ``Ledger.scan``'s surface,
so every ``frames`` loader that reads a ledger reads a dataset too
(``frames.usage(Dataset(DIR), since=..., portfolio=...)``), lazily.

Only the data files the manifests list are read (a file an export is still writing, or
one nobody exported, is never seen), and of those only the days a time filter can match:
the day is the file's partition, so a one-week query opens that week's files and no
other. The rest of the filter, and the columns a query uses, reach the Parquet reader
(predicate and projection pushdown: row groups whose statistics can't match are skipped).
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from etoro_nb.dataset import layout
from etoro_nb.errors import LedgerError
from etoro_nb.ledger.scan import micros, polars_filter, scan_conditions
from etoro_nb.ledger.schema import CHAINED

if TYPE_CHECKING:
    from etoro_nb.dataset.verify import DatasetVerification


class Dataset:
    """The dataset at ``path`` (written by ``etoro-nb ledger export``), read-only."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser().resolve()
        if not layout.manifests_dir(self.path).is_dir():
            raise LedgerError(f"no dataset at {self.path} (it has no {layout.MANIFESTS} folder: "
                              "make one with `etoro-nb ledger export LEDGER --to DIR`)")

    def __repr__(self) -> str:
        return f"Dataset({str(self.path)!r})"

    def manifests(self) -> list[layout.Manifest]:
        """Each ledger's manifest, read now (exports may have added to them since)."""
        return layout.read_manifests(self.path)

    def ledgers(self) -> pl.DataFrame:
        """One row per ledger exported here, by owner: its id, owner label, source (a file,
        or a PostgreSQL URL without its password), and what the dataset holds of it
        (segments of a SQLite ledger, export batches of a PostgreSQL one, data files, rows
        per table)."""
        rows = [{"ledger_id": m.ledger_id, "owner": m.owner, "source": m.source,
                 "segments": len(m.segments), "batches": len(m.batches), "files": len(m.parts()),
                 "usage_rows": sum(p.rows for p in m.parts("usage_events")),
                 "lifecycle_rows": sum(p.rows for p in m.parts("lifecycle_events"))}
                for m in self.manifests()]
        schema = {"ledger_id": pl.String, "owner": pl.String, "source": pl.String,
                  "segments": pl.Int64, "batches": pl.Int64, "files": pl.Int64, "usage_rows": pl.Int64,
                  "lifecycle_rows": pl.Int64}
        return pl.DataFrame(rows, schema=schema, orient="row").sort("owner", "ledger_id")

    def owners(self) -> dict[str, str]:
        """Ledger id -> owner label."""
        return {m.ledger_id: m.owner for m in self.manifests()}

    def files(self, table: str, *, since: datetime | date | None = None,
              until: datetime | date | None = None) -> list[Path]:
        """The data files of ``table`` a scan with these bounds reads: those listed in the
        manifests whose day can hold a row in [``since``, ``until``); each ledger's in
        ledger order."""
        if table not in layout.TABLES:
            raise ValueError(f"table must be one of {', '.join(layout.TABLES)}, not {table!r}")
        first = None if since is None else layout.day_of(micros("since", since))
        last = None if until is None else layout.day_of(micros("until", until) - 1)
        return [self.path / p.path for m in self.manifests() for p in m.parts(table)
                if (first is None or p.day >= first) and (last is None or p.day <= last)]

    def scan(self, table: str, *, since: datetime | date | None = None,
             until: datetime | date | None = None, **equal: str | int | None) -> pl.LazyFrame:
        """``Ledger.scan`` over the dataset: the rows of ``table`` (its columns without the
        chain hashes, then ``ledger_id``) whose timestamp is in [``since``, ``until``) and
        whose columns equal the keyword filters (None: any; ``ledger_id`` is one); naive
        datetimes are UTC. Ledger after ledger, each in ledger order."""
        conditions = scan_conditions(table, since, until, equal, also=(layout.LEDGER_COLUMN,))
        columns = [*CHAINED[table], layout.LEDGER_COLUMN]
        files = self.files(table, since=since, until=until)
        schema = layout.schema(table)
        if not files:
            return pl.LazyFrame(schema={c: schema[c] for c in columns})
        # A file written before a column was added lacks it (null); one written by a newer
        # version may have more columns than this version knows (left out).
        lazy = pl.scan_parquet(files, schema=schema, hive_partitioning=False,
                               missing_columns="insert", extra_columns="ignore").select(columns)
        predicate = polars_filter(conditions)
        return lazy if predicate is None else lazy.filter(predicate)

    def verify(self) -> DatasetVerification:
        """Check every data file against the manifests and every chain (see ``verify``)."""
        from etoro_nb.dataset.verify import verify

        return verify(self.path)
