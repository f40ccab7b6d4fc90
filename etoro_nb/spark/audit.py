"""``least_privilege`` and ``activity`` on Spark: ``frames.least_privilege`` and
``frames.activity``, the same rows from Spark DataFrames."""

from __future__ import annotations

from datetime import date, datetime

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from etoro_nb import scopes
from etoro_nb.frames.activity import ACTIVITY_SCHEMA, Every
from etoro_nb.frames.common import LEAST_PRIVILEGE_SCHEMA, _utc


def least_privilege(grants: DataFrame, usage: DataFrame, *,
                    since: datetime | date | None = None,
                    until: datetime | date | None = None) -> DataFrame:
    """Per token and scope: granted, used (answered 2xx), refused (403), the verdict
    (``needed``, ``unused``, ``missing``) and the scopes that would have sufficed, from
    ``grants()`` and ``usage()`` (``LEAST_PRIVILEGE_SCHEMA``)."""
    frame = usage.filter((F.col("phase") == "outcome") & (F.col("principal") == "agent")
                         & F.col("token_id").isNotNull()
                         & F.col("scope_required").startswith(scopes.PREFIX))
    start, end = _utc(since), _utc(until)
    if start is not None:
        frame = frame.filter(F.col("ts") >= F.lit(start))
    if end is not None:
        frame = frame.filter(F.col("ts") < F.lit(end))
    counted = (frame.groupBy("token_id", F.col("scope_required").alias("scope"))
               .agg(F.count_if(F.col("status").between(200, 299)).alias("used"),
                    F.count_if(F.col("status") == 403).alias("refused")))
    granted = grants.select("token_id", "scope", F.lit(True).alias("granted"))
    names = grants.select("portfolio_id", "token_id", "token_name").dropDuplicates(["token_id"])
    joined = (granted.join(counted, ["token_id", "scope"], "full").join(names, "token_id", "left")
              .fillna({"granted": False, "used": 0, "refused": 0}))
    joined = joined.withColumn(
        "verdict", F.when(F.col("used") > 0, "needed").when(F.col("granted"), "unused")
        .otherwise("missing"))
    suggested = (joined.filter(F.col("used") > 0).groupBy("token_id")
                 .agg(F.sort_array(F.collect_list("scope")).alias("suggested_scopes")))
    return (joined.join(suggested, "token_id", "left")
            .withColumn("suggested_scopes", F.coalesce("suggested_scopes",
                                                       F.array().cast("array<string>")))
            .select(*LEAST_PRIVILEGE_SCHEMA))


def activity(requests: DataFrame, *, every: Every = "1d") -> DataFrame:
    """Requests per UTC bucket (``"1h"`` or ``"1d"``), portfolio, token and operation,
    from ``requests()`` (``ACTIVITY_SCHEMA``)."""
    if every not in ("1h", "1d"):
        raise ValueError(f"every must be '1h' or '1d', not {every!r}")
    status = F.col("status")
    unit = {"1h": "hour", "1d": "day"}[every]
    return (requests.groupBy(F.date_trunc(unit, "ts").alias("bucket"), "portfolio_id",
                             "token_id", "operation_id")
            .agg(F.count(F.lit(1)).alias("requests"),
                 F.count_if(status.between(200, 299)).alias("succeeded"),
                 F.count_if(status.isin(401, 403)).alias("refused"),
                 F.count_if(status.isNull() | (status >= 400)).alias("failed"))
            .select(*ACTIVITY_SCHEMA))
