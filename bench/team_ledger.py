"""A team's ledger: appends per second and p99 append latency with 8 concurrent writer
processes, on a shared PostgreSQL ledger against a local SQLite ledger file.

Each writer process opens its own ledger, waits for the others, then makes N appends
(``append_usage``: the commit a client makes before a request at ``durability="full"``,
and every append on PostgreSQL), timing each. Throughput is all appends over the time from
the first start to the last finish. SQLite runs at ``durability="full"`` (a sync per
commit: what PostgreSQL does with ``fsync`` on, which the server started here has) and at
the default ``"normal"``; the ratios are PostgreSQL's against each.

PostgreSQL is a server started for the run in a temporary directory (as the tests do,
``tests/pg_support.py``), or ``--postgres ADMIN_URL`` of one you have (a scratch database
is made there and dropped after).

    .venv/bin/python bench/team_ledger.py [--writers 8] [--appends 2000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.pg_support, from bench/

from etoro_nb.ledger import Ledger


def writer(target: str, durability: str, appends: int, tag: str, start: Any, out: Any) -> None:
    """One writer process: open, wait for the others, append and time each append."""
    ledger = (Ledger.open(target) if target.startswith("postgresql://")
              else Ledger(target, durability=durability, seal_threshold=None))  # type: ignore[arg-type]
    start.wait()
    began = time.monotonic()
    latencies = []
    for i in range(appends):
        t0 = time.perf_counter()
        ledger.append_usage(phase="intent", request_id=f"{tag}-{i}", attempt=1, principal="agent",
                            environment="sandbox", method="GET", route="/api/v1/me",
                            operation_id="getAuthenticatedUserProfile")
        latencies.append(time.perf_counter() - t0)
    out.put((began, time.monotonic(), latencies))
    ledger.close()


def run(target: str, durability: str, writers: int, appends: int) -> tuple[float, float]:
    """(appends per second, p99 latency in ms) of ``writers`` processes on ``target``."""
    ctx = mp.get_context("spawn")
    start, out = ctx.Barrier(writers), ctx.Queue()
    procs = [ctx.Process(target=writer, args=(target, durability, appends, f"w{i}", start, out))
             for i in range(writers)]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode:
            raise SystemExit(f"a writer on {target} failed (exit {p.exitcode})")
    elapsed = max(r[1] for r in results) - min(r[0] for r in results)
    latencies = sorted(x for r in results for x in r[2])
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return writers * appends / elapsed, p99 * 1000


def postgres_url(admin: str | None) -> tuple[str, Any]:
    """A fresh ledger database (writers connect as ``bench_writer``), and how to clean up."""
    from etoro_nb.ledger.pg_admin import init_postgres

    if admin is None:
        from tests.pg_support import SUPERUSER, start_server

        server = start_server(fsync=True)
        name = server.new_database()
        init_postgres(server.url(SUPERUSER, name), "bench_writer")
        return server.url("bench_writer", name), server
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    name = f"etoro_nb_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}".encode())
    url = make_conninfo(admin, dbname=name)
    init_postgres(url, "bench_writer")
    params = conninfo_to_dict(url)
    params["user"] = "bench_writer"
    return make_conninfo(**{k: str(v) for k, v in params.items()}), (admin, name)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--appends", type=int, default=2000, help="appends per writer")
    parser.add_argument("--postgres", metavar="ADMIN_URL", help="a server of yours (else one is started)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="team-ledger-"))
    url, cleanup = postgres_url(args.postgres)
    rows: dict[str, tuple[float, float]] = {}
    try:
        rows["SQLite, durability=full"] = run(str(folder / "full.sqlite"), "full", args.writers, args.appends)
        rows["SQLite, durability=normal"] = run(str(folder / "normal.sqlite"), "normal", args.writers,
                                                args.appends)
        rows["PostgreSQL (fsync on)"] = run(url, "full", args.writers, args.appends)
    finally:
        if isinstance(cleanup, tuple):
            import psycopg

            with psycopg.connect(cleanup[0], autocommit=True) as conn:
                conn.execute(f"DROP DATABASE {cleanup[1]}".encode())
        else:
            cleanup.stop()
    print(f"{args.writers} writer processes x {args.appends} appends each (append_usage, one commit "
          "per append)")
    for name, (rate, p99) in rows.items():
        print(f"  {name:<27} {rate:8.0f} appends/s   p99 {p99:7.2f} ms")
    pg_rate, pg_p99 = rows["PostgreSQL (fsync on)"]
    for name in ("SQLite, durability=full", "SQLite, durability=normal"):
        rate, p99 = rows[name]
        print(f"  PostgreSQL / {name}: throughput {pg_rate / rate:.2f}x, p99 latency {pg_p99 / p99:.2f}x")


if __name__ == "__main__":
    main()
