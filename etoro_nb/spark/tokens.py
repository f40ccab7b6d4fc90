"""``tokens`` and ``grants`` on Spark: ``frames.tokens_from_ledger`` and
``grants_from_ledger`` computed as joins and aggregates, not a replay loop, so a history
of any size is handled by the cluster. The rules are ``frames.replay``'s: a token's last
mint counts; its scopes, whitelist and expiry are the last ones a later change gave (an
expiry as ``+<seconds>s`` is from that change's time), cut short by a recorded expiry;
it ended at its first revocation or its portfolio's first deletion."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from etoro_nb.dataset import Dataset
from etoro_nb.frames.common import GRANTS_SCHEMA, TOKENS_SCHEMA, _utc
from etoro_nb.ledger.tables import DELEGATION_KINDS
from etoro_nb.spark.read import scan, utc

_DETAIL = T.MapType(T.StringType(), T.StringType())
_LIST = T.ArrayType(T.StringType())


def _order() -> Column:
    """Time, then ledger order (a column needs a session: made per use)."""
    return F.struct("ts", "seq")


def _changes(spark: SparkSession, dataset: Dataset | str | Path,
             until: datetime | None) -> DataFrame:
    """``frames.lifecycle``'s stored rows: delegation changes made, each token's events
    carrying the name it was minted with, decoded; before ``until``."""
    rows = scan(spark, dataset, "lifecycle_events").filter(
        (F.col("phase").isNull() | (F.col("phase") == "outcome"))
        & F.col("kind").isin(*DELEGATION_KINDS))
    whole = (Window.partitionBy("token_id").orderBy("seq")
             .rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing))
    rows = rows.withColumn("token_name", F.coalesce(
        F.col("token_name"), F.first("token_name", ignorenulls=True).over(whole)))
    rows = rows.select("seq", "kind", "portfolio_id", "token_id", "token_name",
                       "scopes", "ips_whitelist", utc("ts_us").alias("ts"),
                       utc("expires_at_us").alias("expires_at"),
                       F.from_json("detail", _DETAIL).alias("detail"))
    return rows if until is None else rows.filter(F.col("ts") < F.lit(until))


def _last(value: Column, when: Column) -> Column:
    """The ``value`` of the last row (by time, then ledger order) where ``when`` holds,
    wrapped in a struct: null when there is none, ``{v: null}`` when it was null."""
    return F.max_by(F.struct(value.alias("v")), F.when(when, _order()))


def _absolute(value: Column, at: Column) -> Column:
    """``replay.absolute``: an ISO time, or ``+<seconds>s`` after ``at``."""
    seconds = F.regexp_extract(value, r"^\+([0-9.]+)s$", 1)
    relative = F.timestamp_micros(
        (F.unix_micros(at) + F.round(seconds.try_cast("double") * 1_000_000)).cast("long"))
    return F.when(value.startswith("+") & value.endswith("s"), relative).otherwise(
        value.try_cast("timestamp"))


def _states(changes: DataFrame) -> DataFrame:
    """One row per token: its last mint and what later changes made of it."""
    minted = (changes.filter(F.col("kind") == "token_minted").groupBy("token_id")
              .agg(F.max_by(F.struct("*"), _order()).alias("m")).select("m.*"))
    after = (changes.filter(F.col("kind").isin("token_updated", "token_revoked", "token_expired"))
             .join(minted.select("token_id", F.col("ts").alias("mts"), F.col("seq").alias("mseq")),
                   "token_id")
             .filter((F.col("ts") > F.col("mts"))
                     | ((F.col("ts") == F.col("mts")) & (F.col("seq") > F.col("mseq")))))
    update = F.col("kind") == "token_updated"
    has = F.map_contains_key
    changed = after.groupBy("token_id").agg(
        _last(F.col("detail")["scopes"], update & has("detail", "scopes")).alias("scopes_set"),
        _last(F.col("detail")["ips_whitelist"], update & has("detail", "ips_whitelist"))
        .alias("ips_set"),
        _last(F.struct(_absolute(F.col("detail")["expires_at"], F.col("ts")).alias("at"),
                       F.col("ts"), F.col("seq")),
              update & has("detail", "expires_at")).alias("expiry_set"),
        F.min(F.when(F.col("kind") == "token_revoked", F.col("ts"))).alias("revoked_at"))
    states = minted.join(changed, "token_id", "left")
    # A recorded expiry after the last expiry set (or the mint) cuts it short.
    set_ts = F.coalesce(F.col("expiry_set.v.ts"), F.col("ts"))
    set_seq = F.coalesce(F.col("expiry_set.v.seq"), F.col("seq"))
    recorded = (after.filter(F.col("kind") == "token_expired")
                .join(states.select("token_id", set_ts.alias("sts"), set_seq.alias("sseq")),
                      "token_id")
                .filter((F.col("ts") > F.col("sts"))
                        | ((F.col("ts") == F.col("sts")) & (F.col("seq") > F.col("sseq"))))
                .groupBy("token_id").agg(F.min("ts").alias("expired_at")))
    return states.join(recorded, "token_id", "left")


def tokens(spark: SparkSession, dataset: Dataset | str | Path, *,
           now: datetime | date | None = None, until: datetime | date | None = None,
           expiring_within: timedelta = timedelta(days=7)) -> DataFrame:
    """``frames.tokens_from_ledger`` over the dataset (``TOKENS_SCHEMA``): one row per
    token minted, as it stood before ``until``, its status at ``now`` (default ``until``,
    else the current time)."""
    end = _utc(until)
    at = _utc(now) or end or datetime.now(UTC)
    changes = _changes(spark, dataset, end)
    names = (changes.filter(F.col("kind") == "portfolio_created").groupBy("portfolio_id")
             .agg(_last(F.col("detail")["name"], F.lit(True)).alias("name")))
    deleted = (changes.filter(F.col("kind") == "portfolio_deleted").groupBy("portfolio_id")
               .agg(F.min("ts").alias("deleted_at")))
    states = (_states(changes).join(names, "portfolio_id", "left")
              .join(deleted, "portfolio_id", "left"))
    base = F.when(F.col("expiry_set").isNull(), F.col("expires_at")).otherwise(
        F.col("expiry_set.v.at"))
    expires = F.when(base.isNull(), F.col("expired_at")).otherwise(
        F.least(base, F.col("expired_at")))
    listed = {"scopes": ("scopes_set", "scopes"), "ips_whitelist": ("ips_set", "ips_whitelist")}
    decoded = {name: F.coalesce(F.when(F.col(changed).isNull(), F.from_json(minted, _LIST))
                                .otherwise(F.from_json(F.col(f"{changed}.v"), _LIST)),
                                F.array().cast(_LIST))
               for name, (changed, minted) in listed.items()}
    return _with_status(states.select(
        "portfolio_id", F.col("name.v").alias("portfolio_name"), "token_id", "token_name",
        F.lit(None).cast("string").alias("application"),
        F.lit(None).cast("string").alias("client_id"),
        decoded["scopes"].alias("scopes"), decoded["ips_whitelist"].alias("ips_whitelist"),
        F.col("ts").alias("created_at"), expires.alias("expires_at"),
        F.least("revoked_at", "deleted_at").alias("revoked_at")), at, expiring_within)


def _with_status(frame: DataFrame, now: datetime, within: timedelta) -> DataFrame:
    """``frames.common.token_status`` and ``days_to_expiry`` at ``now``."""
    now_us = int(now.timestamp() * 1_000_000)
    left_us = F.unix_micros("expires_at") - F.lit(now_us)
    status = (F.when(F.col("revoked_at").isNotNull(), "revoked")
              .when(left_us <= 0, "expired")
              .when(left_us <= int(within.total_seconds() * 1_000_000), "expiring")
              .otherwise("active"))
    return frame.select(*[c for c in TOKENS_SCHEMA if c not in ("status", "days_to_expiry")],
                        status.alias("status"),
                        (left_us / 1_000_000 / 86_400).alias("days_to_expiry"))


def grants(spark: SparkSession, dataset: Dataset | str | Path, *,
           now: datetime | date | None = None, until: datetime | date | None = None,
           expiring_within: timedelta = timedelta(days=7)) -> DataFrame:
    """``frames.grants_from_ledger`` (``GRANTS_SCHEMA``): one row per token and scope of
    its last grant, with the token's status; takes ``tokens()``'s options."""
    return (tokens(spark, dataset, now=now, until=until, expiring_within=expiring_within)
            .select("portfolio_id", "portfolio_name", "token_id", "token_name",
                    F.explode("scopes").alias("scope"), "status")
            .filter(F.col("scope").isNotNull()).select(*GRANTS_SCHEMA))
