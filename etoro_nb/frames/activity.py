"""``activity``: a team's requests counted per portfolio, token, operation and time
bucket, from ``requests()``: the numbers behind ``charts.activity``, as a table an
auditor can filter and join (and that ``etoro_nb.spark.activity`` computes the same)."""

from __future__ import annotations

from typing import Any, Literal

import polars as pl

from etoro_nb.frames.common import UTC_US

Every = Literal["1h", "1d"]
_COLUMNS: dict[str, Any] = {
    "bucket": UTC_US, "portfolio_id": pl.String, "token_id": pl.String,
    "operation_id": pl.String, "requests": pl.Int64, "succeeded": pl.Int64,
    "refused": pl.Int64, "failed": pl.Int64,
}
ACTIVITY_SCHEMA = pl.Schema(_COLUMNS)
"""One row per UTC bucket (its start), portfolio, token (null: the owner's calls) and
operation: request attempts, those answered 2xx (``succeeded``), refused (401 or 403:
the token was not allowed) and ``failed`` (answered 400 or more, or never answered)."""


def activity(requests: pl.DataFrame | pl.LazyFrame, *, every: Every = "1d") -> pl.DataFrame:
    """Count a ``requests(...)`` frame (one row per attempt) per ``every`` (``"1h"`` or
    ``"1d"``) bucket, portfolio, token and operation (``ACTIVITY_SCHEMA``), sorted."""
    if every not in ("1h", "1d"):
        raise ValueError(f"every must be '1h' or '1d', not {every!r}")
    status = pl.col("status")
    return (requests.lazy()
            .group_by(pl.col("ts").dt.truncate(every).alias("bucket"), "portfolio_id",
                      "token_id", "operation_id")
            .agg(requests=pl.len().cast(pl.Int64),
                 succeeded=status.is_between(200, 299).sum().cast(pl.Int64),
                 refused=status.is_in([401, 403]).sum().cast(pl.Int64),
                 failed=(status.is_null() | (status >= 400)).sum().cast(pl.Int64))
            .select(list(ACTIVITY_SCHEMA)).cast(ACTIVITY_SCHEMA)
            .sort("bucket", "portfolio_id", "token_id", "operation_id", nulls_last=True)
            .collect())
