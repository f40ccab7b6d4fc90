"""Client overhead: agent_portfolios.list() through ``enb.connect()`` against raw httpx.

The sandbox runs in another process (``etoro-nb sandbox serve`` on a free port, wall clock,
quota too high to throttle), as a real deployment's server would: its CPU is not this
process's. Three callers take turns in alternating rounds, so drift affects all alike:

- raw httpx, with the same headers the client sends (keys and a fresh ``x-request-id``);
- a client made by ``enb.connect()`` with its ledger ON (the default: a fresh ledger file at
  the default durability; each intent written to the process's spool before its request,
  the rows committed by the ledger's writer thread in batches);
- the same client without a ledger, for reference.

Prints each caller's time per call and the ratios to raw httpx (target: at most 1.15x with
the ledger on).

    .venv/bin/python bench/client_overhead.py [--calls 1000] [--rounds 10]
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import httpx
from _scratch import scratch_dir  # bench/ is the script's folder, on sys.path

import etoro_nb as enb
from etoro_nb.client import EtoroClient
from etoro_nb.ratelimit import Quota
from etoro_nb.sandbox.config import DEFAULT_API_KEY, DEFAULT_USER_KEY

SCOPES = ["etoro-public:trade.demo:read", "etoro-public:trade.real:read"]
UNTHROTTLED = 10**9


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_sandbox(port: int) -> subprocess.Popen[bytes]:
    """``etoro-nb sandbox serve`` in its own process, once it answers."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from etoro_nb.cli import main; sys.exit(main())",
         "sandbox", "serve", "--port", str(port), "--read-limit", str(UNTHROTTLED),
         "--write-limit", str(UNTHROTTLED)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the sandbox did not start: {proc.stderr.read().decode()[-500:]}"
                             if proc.stderr else "the sandbox did not start")
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1.0)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the sandbox did not answer within 60 s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = serve_sandbox(port)
    work = scratch_dir()
    quota = Quota(read_limit=UNTHROTTLED, write_limit=UNTHROTTLED)
    try:
        # The client under test, as a user makes it: connect() with its default ledger setup.
        on = enb.connect(DEFAULT_API_KEY, DEFAULT_USER_KEY, base_url=base_url, env_file=None,
                         quota=quota, ledger=work / "ledger.sqlite")
        assert on.environment == "sandbox" and on.ledger is not None
        off = EtoroClient(base_url=base_url, api_key=DEFAULT_API_KEY, user_key=DEFAULT_USER_KEY,
                     environment="sandbox", quota=quota)
        for i in range(5):  # something to list: 5 portfolios with 2 tokens each
            created = off.agent_portfolios.create(f"bench0{i}", 500, scopes=SCOPES)
            off.agent_portfolios.mint_token(created.portfolio.id, "second", scopes=SCOPES)
        raw = httpx.Client(base_url=base_url)

        def raw_list() -> None:
            headers = {"x-api-key": DEFAULT_API_KEY, "x-user-key": DEFAULT_USER_KEY,
                       "x-request-id": str(uuid.uuid4())}
            r = raw.get("/api/v1/agent-portfolios", headers=headers)
            r.raise_for_status()
            r.json()

        callers: dict[str, Callable[[], object]] = {
            "raw httpx": raw_list, "client, ledger on": on.agent_portfolios.list,
            "client, ledger off": off.agent_portfolios.list}
        per_round = max(1, args.calls // args.rounds)
        totals = dict.fromkeys(callers, 0.0)
        for fn in callers.values():  # warm up connections and caches
            for _ in range(20):
                fn()
        for _ in range(args.rounds):
            for name, fn in callers.items():
                t0 = time.perf_counter()
                for _ in range(per_round):
                    fn()
                totals[name] += time.perf_counter() - t0
        calls = per_round * args.rounds
        print(f"sandbox in another process (pid {server.pid}); {calls} list() calls per caller, "
              f"{args.rounds} alternating rounds")
        for name, total in totals.items():
            print(f"  {name:>18}: {total:7.3f} s = {total / calls * 1e3:.3f} ms/call")
        print(f"client / raw, ledger on:  {totals['client, ledger on'] / totals['raw httpx']:.3f}x "
              "(target <= 1.15x)")
        print(f"client / raw, ledger off: {totals['client, ledger off'] / totals['raw httpx']:.3f}x "
              "(reference)")
        print(f"ledger rows written: {on.ledger.live_count('usage_events')} live, "
              f"{len(on.ledger.segments('usage_events'))} segments, in "
              f"{on.ledger._commits} commits")
        raw.close()
        on.close()
        off.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
