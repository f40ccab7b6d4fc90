"""Reading a dataset with Spark: a local session made for the audit, and the tables as
Spark DataFrames with ``frames``' columns.

Like ``Dataset.scan``, only the data files the manifests list are read, and of those only
the days a time bound can match; Spark pushes the rest of a filter, and the columns a
query uses, into its Parquet reader.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Literal

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from etoro_nb.dataset import Dataset, layout
from etoro_nb.frames.common import USAGE_SCHEMA
from etoro_nb.ledger.scan import scan_conditions
from etoro_nb.ledger.schema import CHAINED

_SPARK_TYPES = {"Int64": T.LongType(), "String": T.StringType(), "Float64": T.DoubleType()}


def session(app: str = "etoro-nb audit", *, cores: int = 2,
            shuffle_partitions: int = 4) -> SparkSession:
    """A local Spark session for auditing a dataset on this machine (``cores`` threads),
    with UTC as its time zone (``frames`` times are UTC) and no web UI. On a cluster, make
    your own session: every function here takes one; set ``spark.sql.session.timeZone`` to
    UTC there too."""
    return (SparkSession.builder.master(f"local[{cores}]").appName(app)
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .getOrCreate())


def _struct(table: str) -> T.StructType:
    return T.StructType([T.StructField(name, _SPARK_TYPES[str(dtype)], True)
                         for name, dtype in layout.schema(table).items()])


def _dataset(dataset: Dataset | str | Path) -> Dataset:
    return dataset if isinstance(dataset, Dataset) else Dataset(dataset)


def scan(spark: SparkSession, dataset: Dataset | str | Path, table: str, *,
         since: datetime | date | None = None, until: datetime | date | None = None,
         **equal: str | int | None) -> DataFrame:
    """``Dataset.scan`` as a Spark DataFrame: the rows of ``table`` (its columns without
    the chain hashes, then ``ledger_id``) in [``since``, ``until``) whose columns equal the
    keyword filters (None: any)."""
    source = _dataset(dataset)
    conditions = scan_conditions(table, since, until, equal, also=(layout.LEDGER_COLUMN,))
    columns = [*CHAINED[table], layout.LEDGER_COLUMN]
    files = [str(f) for f in source.files(table, since=since, until=until)]
    struct = _struct(table)
    frame = (spark.read.schema(struct).parquet(*files) if files
             else spark.createDataFrame([], struct)).select(*columns)
    ops = {">=": Column.__ge__, "<": Column.__lt__, "=": Column.__eq__}
    for column, op, value in conditions:
        frame = frame.filter(ops[op](F.col(column), value))
    return frame


def utc(column: str) -> Column:
    """Microseconds since the epoch as a timestamp (shown in the session's zone: UTC)."""
    return F.timestamp_micros(F.col(column))


def usage(spark: SparkSession, dataset: Dataset | str | Path, *,
          since: datetime | date | None = None, until: datetime | date | None = None,
          portfolio: str | None = None, token: str | None = None,
          phase: Literal["intent", "outcome"] | None = None) -> DataFrame:
    """``frames.usage``'s rows and columns (``USAGE_SCHEMA``), from the dataset."""
    rows = scan(spark, dataset, "usage_events", since=since, until=until,
                portfolio_id=portfolio, token_id=token, phase=phase)
    return rows.withColumn("ts", utc("ts_us")).select(*USAGE_SCHEMA)


def requests(spark: SparkSession, dataset: Dataset | str | Path, *,
             since: datetime | date | None = None, until: datetime | date | None = None,
             portfolio: str | None = None, token: str | None = None) -> DataFrame:
    """``frames.requests``: one row per request attempt, its outcome or, with none
    recorded, its intent (``status`` null)."""
    events = usage(spark, dataset, since=since, until=until, portfolio=portfolio, token=token)
    outcomes = events.filter(F.col("phase") == "outcome")
    unanswered = events.filter(F.col("phase") == "intent").join(
        outcomes.select("request_id", "attempt"), on=["request_id", "attempt"], how="left_anti")
    return outcomes.unionByName(unanswered)
