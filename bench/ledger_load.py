"""Loading 1,000,000 usage events: frames.usage() against pandas.read_sql of the same events
from a plain one-table SQLite file, and against polars.read_parquet of the same events.

Targets: at least 20x faster than pandas.read_sql, within 2x of read_parquet. The ledger is
made once with `etoro-nb ledger synth` (deterministic); each reader's best of three runs
counts.

    .venv/bin/python bench/ledger_load.py [--events 1000000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import polars as pl

from etoro_nb import frames
from etoro_nb.ledger import Ledger
from etoro_nb.ledger.synth import synthesize


def best_of(fn: Callable[[], object], runs: int = 3) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="etoro-nb-bench-"))
    ledger_path = work / f"ledger-{args.events}.sqlite"
    if not ledger_path.exists():
        t0 = time.perf_counter()
        synthesize(ledger_path, events=args.events, seed=1).close()
        print(f"synthesized {args.events} events in {time.perf_counter() - t0:.1f} s")
    ledger = Ledger(ledger_path)
    # The same events, as the other two readers would find them.
    events = frames.usage(ledger)
    assert isinstance(events, pl.DataFrame)
    plain = work / "plain.sqlite"
    parquet = work / "plain.parquet"
    if not plain.exists():
        flat = events.with_columns(pl.col("ts").dt.epoch("us").alias("ts"))
        with sqlite3.connect(plain) as conn:
            conn.execute(f"CREATE TABLE usage_events ({', '.join(flat.columns)})")
            conn.executemany(f"INSERT INTO usage_events VALUES ({', '.join('?' * flat.width)})",
                             flat.iter_rows())
        events.write_parquet(parquet)

    t_frames, ours = best_of(lambda: frames.usage(ledger))
    t_parquet, _ = best_of(lambda: pl.read_parquet(parquet))

    def pandas_read() -> pd.DataFrame:
        with sqlite3.connect(plain) as conn:
            return pd.read_sql("SELECT * FROM usage_events", conn)

    t_pandas, theirs = best_of(pandas_read)
    assert isinstance(ours, pl.DataFrame) and isinstance(theirs, pd.DataFrame)
    assert ours.height == len(theirs) == events.height
    print(f"usage events loaded: {ours.height} (intents and outcomes; "
          f"{len(ledger.segments('usage_events'))} sealed segments, "
          f"{ledger.live_count('usage_events')} live rows)")
    print(f"  frames.usage          {t_frames:8.3f} s")
    print(f"  pandas.read_sql       {t_pandas:8.3f} s")
    print(f"  polars.read_parquet   {t_parquet:8.3f} s")
    print(f"pandas.read_sql / frames.usage: {t_pandas / t_frames:.1f}x faster (target >= 20x)")
    print(f"frames.usage / read_parquet: {t_frames / t_parquet:.2f}x (target <= 2x)")
    ledger.close()


if __name__ == "__main__":
    main()
