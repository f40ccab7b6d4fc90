"""Recording cost: the median added latency per request with the ledger on, against the
ledger off, on sandbox calls (target: at most 1 ms at the default durability).

Two clients talk to one sandbox over a real socket, one recording into a fresh ledger
(intent spooled before each request, or committed at durability=full; outcome after), one
not; calls alternate between them so both see the same conditions.

    .venv/bin/python bench/ledger_recording.py [--calls 1000] [--durability normal|full]
"""

from __future__ import annotations

import argparse
import statistics
import time

from _scratch import scratch_dir  # bench/ is the script's folder, on sys.path

from etoro_nb.client import EtoroClient
from etoro_nb.ledger import Ledger
from etoro_nb.ratelimit import Quota
from etoro_nb.sandbox import SandboxConfig, start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--durability", choices=["normal", "full"], default="normal")
    args = parser.parse_args()
    server = start(SandboxConfig(read_limit=10**9, write_limit=10**9))
    creds = server.credentials
    quota = Quota(read_limit=10**9, write_limit=10**9)
    ledger = Ledger(scratch_dir() / "ledger.sqlite", durability=args.durability)
    on = EtoroClient(base_url=creds.base_url, api_key=creds.api_key, user_key=creds.user_key,
                environment="sandbox", quota=quota, ledger=ledger)
    off = EtoroClient(base_url=creds.base_url, api_key=creds.api_key, user_key=creds.user_key,
                 environment="sandbox", quota=quota)
    timings: dict[str, list[float]] = {"on": [], "off": []}
    for _ in range(50):  # warm up connections
        on.me()
        off.me()
    for _ in range(args.calls):
        for name, client in (("off", off), ("on", on)):
            t0 = time.perf_counter()
            client.me()
            timings[name].append((time.perf_counter() - t0) * 1000)
    med_on, med_off = statistics.median(timings["on"]), statistics.median(timings["off"])
    print(f"{args.calls} sandbox calls each, durability={args.durability}")
    print(f"  median latency, ledger off: {med_off:.3f} ms")
    print(f"  median latency, ledger on:  {med_on:.3f} ms")
    print(f"added by recording: {med_on - med_off:.3f} ms per request (target <= 1 ms); "
          f"ratio on/off {med_on / med_off:.2f}x")
    print(f"ledger rows written: {ledger.live_count('usage_events')} live, "
          f"{len(ledger.segments())} segments")
    on.close()
    off.close()
    server.stop()


if __name__ == "__main__":
    main()
