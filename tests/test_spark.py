"""``etoro_nb.spark`` gives the rows ``frames`` gives, on the same dataset: usage,
requests, tokens, grants, least privilege and activity, compared row for row (one local
Spark session for the whole run, small data)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
import pyspark  # noqa: F401  (a test dependency: missing, the module fails, never skips)
import pytest
from polars.testing import assert_frame_equal

from etoro_nb import frames
from etoro_nb.dataset import Dataset
from tests.team_support import NOW, T0, team_dataset

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    from etoro_nb.spark import session

    made = session("etoro-nb tests", cores=2, shuffle_partitions=2)
    made.sparkContext.setLogLevel("ERROR")
    # Tiny data: compiling whole stages and re-planning adaptively cost more than they save.
    made.conf.set("spark.sql.codegen.wholeStage", "false")
    made.conf.set("spark.sql.adaptive.enabled", "false")
    yield made
    made.stop()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return team_dataset(tmp_path_factory.mktemp("team"))


def _same(spark_frame: DataFrame, polars_frame: pl.DataFrame) -> None:
    """Equal rows, whatever their order; the schema polars declares."""
    got = pl.from_arrow(spark_frame.toArrow())
    assert isinstance(got, pl.DataFrame)
    assert got.columns == polars_frame.columns
    got = got.cast(polars_frame.schema)  # Spark's arrays arrive as large lists, etc.
    keys = [c for c, t in polars_frame.schema.items() if not isinstance(t, pl.List)]
    assert_frame_equal(got.sort(keys, nulls_last=True),
                       polars_frame.sort(keys, nulls_last=True))


WEEK = {"since": T0.date() + timedelta(days=7), "until": T0.date() + timedelta(days=14)}


@pytest.mark.parametrize("filters", [{}, WEEK, {"phase": "outcome"}], ids=["all", "week", "outcomes"])
def test_usage(spark: SparkSession, dataset: Dataset, filters: dict[str, object]) -> None:
    from etoro_nb import spark as audit

    expected = frames.usage(dataset, **filters)  # type: ignore[arg-type]
    assert expected.height > 0
    _same(audit.usage(spark, dataset, **filters), expected)  # type: ignore[arg-type]


def test_usage_of_one_portfolio(spark: SparkSession, dataset: Dataset) -> None:
    from etoro_nb import spark as audit

    portfolio = frames.usage(dataset, **WEEK)["portfolio_id"].drop_nulls()[0]  # type: ignore[arg-type]
    expected = frames.usage(dataset, portfolio=portfolio, **WEEK)  # type: ignore[arg-type]
    assert 0 < expected.height < frames.usage(dataset).height
    _same(audit.usage(spark, dataset, portfolio=portfolio, **WEEK), expected)  # type: ignore[arg-type]


def test_requests(spark: SparkSession, dataset: Dataset) -> None:
    from etoro_nb import spark as audit

    expected = frames.requests(dataset)
    assert expected["status"].null_count() == 1  # carol's request never answered
    _same(audit.requests(spark, dataset), expected)


@pytest.mark.parametrize("at", [{"now": NOW}, {"until": date(2026, 1, 20)}], ids=["now", "until"])
def test_tokens_and_grants(spark: SparkSession, dataset: Dataset, at: dict[str, object]) -> None:
    from etoro_nb import spark as audit

    expected = frames.tokens_from_ledger(dataset, **at)  # type: ignore[arg-type]
    assert {"t1", "t2", "t3", "t4"} <= set(expected["token_id"])
    _same(audit.tokens(spark, dataset, **at), expected)  # type: ignore[arg-type]
    _same(audit.grants(spark, dataset, **at),  # type: ignore[arg-type]
          frames.grants_from_ledger(dataset, **at))  # type: ignore[arg-type]


@pytest.mark.parametrize("window", [{}, WEEK], ids=["all", "week"])
def test_least_privilege(spark: SparkSession, dataset: Dataset, window: dict[str, object]) -> None:
    from etoro_nb import spark as audit

    expected = frames.least_privilege(frames.grants_from_ledger(dataset, now=NOW),
                                      frames.usage(dataset), **window)  # type: ignore[arg-type]
    assert set(expected["verdict"]) == {"needed", "unused", "missing"}
    got = audit.least_privilege(audit.grants(spark, dataset, now=NOW), audit.usage(spark, dataset),
                                **window)  # type: ignore[arg-type]
    _same(got, expected)


@pytest.mark.parametrize("every", ["1h", "1d"])
def test_activity(spark: SparkSession, dataset: Dataset, every: str) -> None:
    from etoro_nb import spark as audit

    expected = frames.activity(frames.requests(dataset), every=every)  # type: ignore[arg-type]
    assert expected["refused"].sum() > 0 and expected["failed"].sum() > 0
    _same(audit.activity(audit.requests(spark, dataset), every=every),  # type: ignore[arg-type]
          expected)


def test_bad_input_is_named(spark: SparkSession, dataset: Dataset, tmp_path: Path) -> None:
    from etoro_nb import spark as audit

    with pytest.raises(ValueError, match="no column colour"):
        audit.scan(spark, dataset, "usage_events", colour="red")
    with pytest.raises(ValueError, match="every must be"):
        audit.activity(audit.requests(spark, dataset), every="1w")  # type: ignore[arg-type]
    empty = audit.usage(spark, dataset, since=date(2030, 1, 1))
    assert empty.count() == 0 and empty.columns == list(frames.USAGE_SCHEMA)
