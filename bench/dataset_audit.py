"""The team dataset at 10,000,000 usage events: a one-week, one-portfolio query through
the dataset's pushdown against a full scan, and the full least-privilege audit on polars
and on Spark local.

Writing 10M events through a ledger (hashing each row, sealing) takes many minutes, so the
dataset is generated directly at the Parquet level, in the layout and schema an export
writes (partitioned by table and UTC day, files of at most 20,000 rows cut at day
boundaries as segments are, a manifest listing them), with random bytes in place of the
chain hashes: the reads measured here never check them (``verify`` would fail on it). It
is cached under the temporary folder (``--dataset DIR`` to choose) and reused by later runs.

    python bench/dataset_audit.py [--events N] [--dataset DIR] [--no-spark]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from etoro_nb import frames
from etoro_nb.dataset import Dataset, layout
from etoro_nb.operations import catalogue
from etoro_nb.scopes import NAMES as SCOPES

START = datetime(2026, 1, 5, tzinfo=UTC)
DAYS = 91
PORTFOLIOS = 200
SEGMENT_ROWS = 20_000
LEDGER = "b" * 32
OPERATIONS = ("getPortfolio", "getRealAccountPnl", "getPortfolioDemo", "createDemoOrder",
              "createRealOrder", "closePositionByMarketRateDemo",
              "retrieveCurrentMarketRatesPricingInformation", "getAuthenticatedUserProfile")


def _ids(rng: np.random.Generator, n: int) -> list[str]:
    return [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(n)]


def _hex(rng: np.random.Generator, n: int) -> pl.Series:
    return pl.Series(np.frombuffer(rng.bytes(32 * n), dtype="S32")).bin.encode("hex")


def _tokens(rng: np.random.Generator) -> pl.DataFrame:
    """Two or three tokens per portfolio, each granted a random non-empty set of scopes."""
    rows = []
    for portfolio in _ids(rng, PORTFOLIOS):
        for k in range(int(rng.integers(2, 4))):
            granted = [s for s in SCOPES if rng.random() < 0.6] or [SCOPES[0]]
            rows.append({"portfolio_id": portfolio, "token_id": _ids(rng, 1)[0],
                         "token_name": f"bot-{k}", "scopes": granted})
    return pl.DataFrame(rows)


def _day(rng: np.random.Generator, day: int, requests: int, tokens: pl.DataFrame,
         first_seq: int) -> pl.DataFrame:
    """One day's usage: ``requests`` attempts by random tokens, an intent and an outcome
    each, in time order."""
    ops = catalogue()
    pick = rng.integers(0, tokens.height, requests)
    op = rng.integers(0, len(OPERATIONS), requests)
    scope = [ops[OPERATIONS[i]].scope_required for i in op]
    granted = tokens["scopes"].to_list()
    allowed = np.array([s is None or s in granted[t] for s, t in zip(scope, pick, strict=True)])
    status = np.where(allowed, np.where(rng.random(requests) < 0.02, 503, 200), 403)
    base = int((START + timedelta(days=day)).timestamp() * 1e6)
    ts = np.sort(rng.integers(0, 86_400_000_000 - 2000, requests)) + base
    one = pl.DataFrame({
        "ts_us": ts, "request_id": _hex(rng, requests).str.slice(0, 32),
        "portfolio_id": tokens["portfolio_id"].gather(pick),
        "token_id": tokens["token_id"].gather(pick),
        "operation_id": [OPERATIONS[i] for i in op], "scope_required": scope,
        "status": status.astype(np.int64)})
    both = pl.concat([one.with_columns(phase=pl.lit("intent"), status=pl.lit(None, pl.Int64)),
                      one.with_columns(phase=pl.lit("outcome"), ts_us=pl.col("ts_us") + 1500)])
    both = both.sort("ts_us", "phase")
    n = both.height
    return both.with_columns(
        ledger_id=pl.lit(LEDGER), seq=pl.int_range(first_seq, first_seq + n, dtype=pl.Int64),
        attempt=pl.lit(1, pl.Int64), principal=pl.lit("agent"), token_fingerprint=pl.lit(None),
        environment=pl.lit("sandbox"), method=pl.lit("GET"), route=pl.lit("/api/v1/x"),
        error_code=pl.when(pl.col("status") >= 400).then(pl.lit("Refused")),
        latency_ms=pl.lit(1.25), prev_hash=_hex(rng, n), row_hash=_hex(rng, n),
    ).select(list(layout.schema("usage_events"))).cast(pl.Schema(layout.schema("usage_events")))


def _write(root: Path, table: str, frame: pl.DataFrame, day: date) -> list[layout.Part]:
    parts = []
    for start in range(0, frame.height, SEGMENT_ROWS):
        piece = frame.slice(start, SEGMENT_ROWS)
        first, last = int(piece["seq"][0]), int(piece["seq"][-1])
        name = layout.part_name(table, day, LEDGER, first, last)
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        piece.write_parquet(root / name, compression="zstd", statistics=True)
        parts.append(layout.Part(name, table, day, first, last, piece.height, ""))
    return parts


def _lifecycle(tokens: pl.DataFrame) -> pl.DataFrame:
    at = int(START.timestamp() * 1e6) - 3_600_000_000
    n = tokens.height
    return pl.DataFrame({
        "ledger_id": [LEDGER] * n, "seq": list(range(1, n + 1)), "ts_us": [at] * n,
        "request_id": [None] * n, "kind": ["token_minted"] * n,
        "portfolio_id": tokens["portfolio_id"], "token_id": tokens["token_id"],
        "token_name": tokens["token_name"],
        "scopes": [json.dumps(s) for s in tokens["scopes"].to_list()],
        "ips_whitelist": ["[]"] * n, "expires_at_us": [at + 400 * 86_400_000_000] * n,
        "detail": [None] * n, "phase": ["outcome"] * n, "prev_hash": ["0" * 64] * n,
        "row_hash": ["0" * 64] * n,
    }).cast(pl.Schema(layout.schema("lifecycle_events")))


def generate(root: Path, events: int) -> None:
    """The synthetic dataset (see the module's docstring)."""
    rng = np.random.default_rng(13)
    tokens = _tokens(rng)
    life = _lifecycle(tokens)
    day0 = (START - timedelta(hours=1)).date()
    segments: list[dict[str, Any]] = [{"table_name": "lifecycle_events",
                                       "parts": [p.to_json() for p in _write(root, "lifecycle_events",
                                                                             life, day0)]}]
    per_day, seq = events // 2 // DAYS, 1
    for day in range(DAYS):
        frame = _day(rng, day, per_day, tokens, seq)
        seq += frame.height
        parts = _write(root, "usage_events", frame, (START + timedelta(days=day)).date())
        segments.append({"table_name": "usage_events", "parts": [p.to_json() for p in parts]})
        if (day + 1) % 15 == 0 or day + 1 == DAYS:
            print(f"  generated day {day + 1} of {DAYS}", flush=True)
    manifest = layout.Manifest(LEDGER, "bench", "generated", [
        {**seg, "seq": n + 1, "row_hash": hashlib.sha256(str(n).encode()).hexdigest(),
         "last_seq": seg["parts"][-1]["last_seq"], "last_hash": "x"}
        for n, seg in enumerate(segments)])
    layout.manifests_dir(root).mkdir(parents=True, exist_ok=True)
    layout.write_manifest(root, manifest)


def timed(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """The best of ``repeat`` runs, in seconds, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def query(dataset: Dataset) -> None:
    every = dataset.files("usage_events")
    portfolio = pl.read_parquet(every[0], columns=["portfolio_id"])["portfolio_id"][0]
    since, until = date(2026, 2, 2), date(2026, 2, 9)
    lo, hi = (datetime(d.year, d.month, d.day, tzinfo=UTC) for d in (since, until))

    def pushdown() -> pl.DataFrame:
        out = frames.usage(dataset, since=since, until=until, portfolio=portfolio)
        assert isinstance(out, pl.DataFrame)
        return out

    def full_scan() -> pl.DataFrame:
        return (pl.read_parquet(every).filter(pl.col("portfolio_id") == portfolio)
                .with_columns(ts=pl.col("ts_us").cast(pl.Datetime("us", "UTC")))
                .filter(pl.col("ts") >= lo, pl.col("ts") < hi))

    def lazy_all() -> pl.DataFrame:
        return (pl.scan_parquet(every).filter(pl.col("portfolio_id") == portfolio,
                                              pl.col("ts_us") >= int(lo.timestamp() * 1e6),
                                              pl.col("ts_us") < int(hi.timestamp() * 1e6))
                .collect())

    t_push, got = timed(pushdown)
    t_full, want = timed(full_scan, repeat=1)
    t_lazy, lazy = timed(lazy_all, repeat=1)
    assert got.height == want.height == lazy.height > 0
    needed = dataset.files("usage_events", since=since, until=until)
    print(f"one week ({since} to {until}), one portfolio: {got.height:,} events")
    print(f"  files read: {len(needed)} of {len(every)} (the week's partitions)")
    print(f"  through the dataset (partition pruning + pushdown): {t_push * 1000:8.1f} ms")
    print(f"  full scan (read every file, then filter):           {t_full * 1000:8.1f} ms "
          f"-> {t_full / t_push:.1f}x (target >= 10x)")
    print(f"  polars lazy scan of every file, filter pushed down: {t_lazy * 1000:8.1f} ms "
          f"-> {t_lazy / t_push:.1f}x (no partition pruning, for reference)")


def audit_polars(dataset: Dataset, now: datetime) -> pl.DataFrame:
    outcomes = (frames.usage(dataset, phase="outcome", lazy=True)
                .select("ts", "phase", "principal", "token_id", "scope_required", "status")
                .collect())
    return frames.least_privilege(frames.grants_from_ledger(dataset, now=now), outcomes)


def audit(dataset: Dataset, spark: bool) -> None:
    now = START + timedelta(days=DAYS)
    t_polars, expected = timed(lambda: audit_polars(dataset, now), repeat=2)
    print(f"least-privilege audit, {expected.height} token x scope rows")
    print(f"  polars:      {t_polars:8.2f} s")
    if not spark:
        return
    from etoro_nb import spark as sa

    started = time.perf_counter()
    session = sa.session("etoro-nb bench", cores=2, shuffle_partitions=8)
    session.sparkContext.setLogLevel("ERROR")
    boot = time.perf_counter() - started

    def on_spark() -> pl.DataFrame:
        frame = sa.least_privilege(sa.grants(session, dataset, now=now),
                                   sa.usage(session, dataset, phase="outcome"))
        out = pl.from_arrow(frame.toArrow())
        assert isinstance(out, pl.DataFrame)
        return out

    t_spark, got = timed(on_spark, repeat=2)
    session.stop()
    same = got.sort("token_id", "scope").select("token_id", "scope", "used", "refused").equals(
        expected.sort("token_id", "scope").select("token_id", "scope", "used", "refused"))
    print(f"  Spark local: {t_spark:8.2f} s (session start {boot:.1f} s, not counted) -> "
          f"{t_spark / t_polars:.1f}x polars' time; same rows as polars: {same}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--dataset", type=Path, default=None)
    parser.add_argument("--no-spark", action="store_true")
    args = parser.parse_args(argv)
    root = args.dataset or Path(tempfile.gettempdir()) / f"etoro-nb-bench-dataset-{args.events}"
    if not layout.manifest_path(root, LEDGER).exists():
        print(f"writing {args.events:,} synthetic usage events to {root} (cached for next runs)")
        started = time.perf_counter()
        generate(root, args.events)
        print(f"  written in {time.perf_counter() - started:.1f} s")
    dataset = Dataset(root)
    rows = dataset.ledgers()["usage_rows"].item()
    print(f"dataset: {rows:,} usage events in {len(dataset.files('usage_events'))} files, "
          f"{DAYS} days, {PORTFOLIOS} portfolios")
    query(dataset)
    audit(dataset, spark=not args.no_spark)
    return 0


if __name__ == "__main__":
    sys.exit(main())
