"""Loading a ledger of 1,000,000 usage events, all sealed and with 200,000 live rows, and
the delay a threshold seal causes to the requests being recorded.

Loads: ``frames.usage()`` against ``pandas.read_sql`` of the same events from a plain
one-table SQLite file, and against ``polars.read_parquet`` of them (targets: at least 20x
faster than pandas, within 2x of read_parquet, in both cases). The filtered loads
``usage(until=...)`` (the first day) and ``usage(portfolio=...)`` are compared with the
all-sealed ledger. Each load is timed on a freshly opened ``Ledger`` (cold: nothing read
yet) and as the best of three on it afterwards (warm: the live rows already decoded are
kept, only new ones are read); the baselines are the best of three. Also printed: the first
load in a new process (its imports not counted, best of three processes) against
``read_parquet`` likewise in a new process.

The ledgers: one made by ``synthesize`` (default settings: sealed as it grows), and one
with the same events whose last 200,000 were appended by a writer with sealing off, as
processes that never seal (or a seal not yet run) leave them; its upkeep thread drafts the
live rows as they come (default settings: every 5,000 rows, see ``etoro_nb.ledger.drafts``),
and it closes once its upkeep is done, as a long-running writer's would be. Both are read
with the default settings.

Seal delay: a fresh ledger at the default settings records requests (an intent and an
outcome each, through ``UsageRecorder``) past the seal threshold twice. Printed: the median
append latency and the slowest appends from the threshold crossing on (the seal runs
meanwhile), against the same run without any seal (the machine's own noise) and with the
seal done inside the crossing append (as before sealing moved off the request path).
Target: no append delayed more than 5 ms by sealing.

    .venv/bin/python bench/ledger_load.py [--events 1000000] [--live 200000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import polars as pl
from _scratch import scratch_dir  # bench/ is the script's folder, on sys.path

from etoro_nb import frames
from etoro_nb.ledger import DEFAULT_SEAL_THRESHOLD, Ledger, drafts
from etoro_nb.ledger.recorder import UsageRecorder
from etoro_nb.ledger.schema import USAGE_COLUMNS
from etoro_nb.ledger.synth import synthesize

BATCH = 50_000


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def best_of(fn: Callable[[], object], runs: int = 3) -> float:
    return min(timed(fn) for _ in range(runs))


def build(work: Path, events: int, live: int) -> tuple[Path, Path, pl.DataFrame]:
    """The all-sealed ledger, the one with ``live`` live rows, and their events."""
    sealed = work / f"sealed-{events}.sqlite"
    if not sealed.exists():
        t0 = time.perf_counter()
        synthesize(sealed, events=events, seed=1).close()
        print(f"synthesized {events} events in {time.perf_counter() - t0:.1f} s")
    with Ledger(sealed) as ledger:
        usage = frames.usage(ledger)
    assert isinstance(usage, pl.DataFrame)
    partly = work / f"live-{events}-{live}.sqlite"
    if not partly.exists():
        rows = (usage.with_columns(ts_us=pl.col("ts").dt.epoch("us"))
                .select(USAGE_COLUMNS[1:]).to_dicts())
        with Ledger(partly) as ledger:  # sealed as it grows, like the first
            for i in range(0, events - live, BATCH):
                ledger.extend_usage(rows[i:min(i + BATCH, events - live)])
        with Ledger(partly, seal_threshold=None) as ledger:  # a writer that never seals
            for i in range(events - live, events, BATCH):
                ledger.extend_usage(rows[i:i + BATCH])
            ledger.wait_for_upkeep()  # its drafts of the live rows
    return sealed, partly, usage


def plain_copies(work: Path, usage: pl.DataFrame) -> tuple[Path, Path]:
    """The same events in a plain one-table SQLite file and in one Parquet file."""
    plain, parquet = work / "plain.sqlite", work / "plain.parquet"
    if not plain.exists():
        flat = usage.with_columns(pl.col("ts").dt.epoch("us").alias("ts"))
        with sqlite3.connect(plain) as conn:
            conn.execute(f"CREATE TABLE usage_events ({', '.join(flat.columns)})")
            conn.executemany(f"INSERT INTO usage_events VALUES ({', '.join('?' * flat.width)})",
                             flat.iter_rows())
        usage.write_parquet(parquet)
    return plain, parquet


def loads(path: Path, load: Callable[[Ledger], object]) -> tuple[float, float]:
    """(cold, warm) seconds of ``load`` on a freshly opened ledger."""
    with Ledger(path) as ledger:
        cold = timed(lambda: load(ledger))
        warm = best_of(lambda: load(ledger))
    return cold, warm


FRESH = """
import sys, time
import polars as pl
from etoro_nb import frames
from etoro_nb.ledger import Ledger
kind, path = sys.argv[1:]
t0 = time.perf_counter()
if kind == "parquet":
    pl.read_parquet(path)
else:
    frames.usage(Ledger(path))
print(time.perf_counter() - t0)
"""


def in_new_process(kind: str, path: Path) -> float:
    """Seconds of the first load in a new process (its imports done, not counted)."""
    out = subprocess.run([sys.executable, "-c", FRESH, kind, str(path)], check=True,
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    return float(out.stdout)


def seal_delay(work: Path, requests: int, seal: str) -> tuple[float, float, float]:
    """(median, 99.9th percentile and slowest from the first threshold crossing on) append
    latency in ms, recording ``requests`` requests into a fresh ledger that seals ``seal``:
    "never", "inline" (in the crossing append) or "background" (the default)."""
    inline = seal == "inline"
    scratch = Path(tempfile.mkdtemp(prefix=f"delay-{seal}-", dir=work))
    threshold = DEFAULT_SEAL_THRESHOLD if seal == "background" else None
    ledger = Ledger(scratch / "ledger.sqlite", seal_threshold=threshold)
    recorder = UsageRecorder(ledger, principal="owner", environment="sandbox",
                             user_key="bench-user-key")
    latencies: list[float] = []
    crossing = None
    for i in range(requests):
        for phase in ("intent", "outcome"):
            t0 = time.perf_counter()
            if phase == "intent":
                recorder.intent("listAgentPortfolios", "GET", "/api/v1/agent-portfolios",
                                f"request-{i}", 1)
            else:
                recorder.outcome("listAgentPortfolios", "GET", "/api/v1/agent-portfolios",
                                 f"request-{i}", 1, 200, None, 1.0)
            if inline and len(latencies) + 1 == DEFAULT_SEAL_THRESHOLD:
                ledger.seal("usage_events")  # what the crossing append used to do
            latencies.append((time.perf_counter() - t0) * 1000)
            if crossing is None and len(latencies) == DEFAULT_SEAL_THRESHOLD:
                crossing = len(latencies) - 1
    ledger.wait_for_upkeep()
    assert bool(ledger.segments("usage_events")) == (seal != "never")
    ledger.close()
    shutil.rmtree(scratch)
    assert crossing is not None
    after = sorted(latencies[crossing:])
    return statistics.median(latencies), after[int(len(after) * 0.999)], after[-1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--live", type=int, default=200_000)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    work = Path(args.workdir) if args.workdir else scratch_dir()
    work.mkdir(parents=True, exist_ok=True)
    sealed, partly, usage = build(work, args.events, args.live)
    plain, parquet = plain_copies(work, usage)

    def pandas_read() -> pd.DataFrame:
        with sqlite3.connect(plain) as conn:
            return pd.read_sql("SELECT * FROM usage_events", conn)

    t_pandas = best_of(pandas_read)
    t_parquet = best_of(lambda: pl.read_parquet(parquet))
    first_day = datetime(2026, 1, 6, tzinfo=UTC)
    portfolio = usage["portfolio_id"][0]
    print(f"{args.events} usage events; baselines: pandas.read_sql {t_pandas:.3f} s, "
          f"polars.read_parquet {t_parquet:.3f} s")
    filtered: dict[str, dict[str, tuple[float, float]]] = {}
    for label, path in (("all sealed", sealed), (f"{args.live} live", partly)):
        with Ledger(path) as ledger:
            shape = (f"{len(ledger.segments('usage_events'))} segments, "
                     f"{ledger.live_count('usage_events')} live rows, "
                     f"{len(drafts.present(ledger.segments_dir))} drafts")
            got = frames.usage(ledger)
            assert isinstance(got, pl.DataFrame) and got.equals(usage), "not the same events"
        cold, warm = loads(path, frames.usage)
        fresh = min(in_new_process("ledger", path) for _ in range(3))
        fresh_parquet = min(in_new_process("parquet", parquet) for _ in range(3))
        filtered[label] = {
            "until": loads(path, lambda ledger: frames.usage(ledger, until=first_day)),
            "portfolio": loads(path, lambda ledger: frames.usage(ledger, portfolio=portfolio))}
        print(f"{label} ({shape}):")
        for kind, t in (("cold", cold), ("warm", warm)):
            print(f"  frames.usage {kind}: {t:.3f} s = {t_pandas / t:5.1f}x faster than pandas "
                  f"(target >= 20x), {t / t_parquet:.2f}x read_parquet (target <= 2x)")
        print(f"  frames.usage in a new process: {fresh:.3f} s = {t_pandas / fresh:5.1f}x "
              f"faster than pandas, {fresh / fresh_parquet:.2f}x read_parquet in a new process "
              f"({fresh_parquet:.3f} s)")
    base = filtered["all sealed"]
    for label, times in filtered.items():
        for kind, (cold, warm) in times.items():
            print(f"  usage({kind}=...) {label:>12}: cold {cold * 1e3:7.1f} ms "
                  f"({cold / base[kind][0]:.1f}x all sealed), warm {warm * 1e3:7.1f} ms "
                  f"({warm / base[kind][1]:.1f}x all sealed)")
    requests = DEFAULT_SEAL_THRESHOLD + DEFAULT_SEAL_THRESHOLD // 4  # 2.5 thresholds' rows
    print(f"appends of {requests} requests (intent + outcome), seal threshold "
          f"{DEFAULT_SEAL_THRESHOLD} rows; latency from the first crossing on:")
    noise = 0.0
    for seal, what in (("never", "no seal (noise)"), ("inline", "seal in the crossing append "
                                                       "(before)"),
                       ("background", "seal in the background (now)")):
        median, p999, slowest = seal_delay(work, requests, seal)
        noise = slowest if seal == "never" else noise
        extra = "" if seal == "never" else (f"; slowest - noise = {slowest - noise:.1f} ms "
                                            "(target <= 5 ms)")
        print(f"  {what:>36}: median {median:.3f} ms, p99.9 {p999:.2f} ms, "
              f"slowest {slowest:.1f} ms{extra}")


if __name__ == "__main__":
    main()
