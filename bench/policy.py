"""Risk boundaries: what an AgentSession adds per order, and how often it reads.

One sandbox runs in another process (``etoro-nb sandbox serve``, a free port, a quota no
run reaches); the client records into a ledger file, as by default. Two agent portfolios
place the same market orders in rounds, each side first every other round, so drift
affects both alike: one through the bare agent client, one through an ``AgentSession``
held to an owner policy and a session policy that set every limit (none of them reached)
and reconcile every 100 orders. Between rounds, untimed, each agent reads its account and
closes what it opened, so the accounts stay the size a round makes them (a steady state,
not an ever-growing book). Prints the time per order of each side, the session's added
time per order (target: at most 0.2 ms) and the ratio, and the reads (GETs, counted from
the ledger's usage events) the session made during the timed rounds, per 100 orders
(target: at most 2).

    .venv/bin/python bench/policy.py [--orders 1200] [--rounds 12]
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time

import httpx
import polars as pl
from _scratch import scratch_dir  # bench/ is the script's folder, on sys.path

import etoro_nb as enb
from etoro_nb.agent import RiskPolicy
from etoro_nb.agent.session import AgentSession
from etoro_nb.client import EtoroClient
from etoro_nb.ledger import Ledger
from etoro_nb.ratelimit import Quota
from etoro_nb.scopes import DEMO_READ, DEMO_WRITE

API_KEY, USER_KEY = "bench-api-key", "bench-user-key"
SCOPES = [DEMO_READ, DEMO_WRITE]
AAPL = 1001
UNLIMITED = 10**9


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "etoro_nb.cli", "sandbox", "serve", "--port", str(port),
         "--api-key", API_KEY, "--user-key", USER_KEY, "--read-limit", str(UNLIMITED),
         "--write-limit", str(UNLIMITED), "--virtual-balance", "1000000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(base + "/", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise SystemExit("the sandbox did not start")
        time.sleep(0.1)


def limits() -> RiskPolicy:
    """Every limit set, none reached by the run."""
    return RiskPolicy(allowed_asset_classes=["Stocks"], denied_instruments=["BTC"],
                      max_order_amount_usd=100, max_leverage=2, max_open_positions=100_000,
                      max_gross_exposure_usd=10**8, max_gross_exposure_share=100.0,
                      max_orders_per_day=10**6, max_orders_per_hour=10**6,
                      max_daily_loss_usd=10**6, reconcile_every_orders=100)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=1200, help="orders per side")
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args()
    process, base = serve()
    folder = scratch_dir("bench-policy-")
    ledger = Ledger(folder / "ledger.sqlite")
    quota = Quota(read_limit=UNLIMITED, write_limit=UNLIMITED)
    owner = EtoroClient(base_url=base, api_key=API_KEY, user_key=USER_KEY, environment="sandbox",
                   ledger=ledger, quota=quota)
    try:
        bare_bot = owner.agent_portfolios.create("benchbare", 500, scopes=SCOPES)
        kept_bot = owner.agent_portfolios.create("benchkept", 500, scopes=SCOPES)
        owner.agent_portfolios.set_policy(kept_bot.portfolio.id, limits())
        bare = owner.as_agent(bare_bot.token).trading("demo")
        session = AgentSession(owner.as_agent(kept_bot.token), limits(), account="demo")

        def bare_order() -> None:
            bare.open_order(AAPL, amount=10)

        def session_order() -> None:
            session.open_order(AAPL, amount=10)

        def tidy() -> None:
            """Close everything, untimed: the next round starts from an empty account."""
            for p in bare.portfolio().positions:
                bare.close_position(p.position_id, p.instrument_id)
            for p in session.portfolio().positions:
                session.close_position(p.position_id, p.instrument_id)

        sides = {"bare agent client": bare_order, "AgentSession": session_order}
        for order in sides.values():  # warm up connections, caches and the instrument lookup
            for _ in range(10):
                order()
        tidy()
        per_round = max(1, args.orders // args.rounds)
        totals = dict.fromkeys(sides, 0.0)
        timed: list[tuple[int, int]] = []  # the session's timed windows, in ledger time (us)
        for round_ in range(args.rounds):
            # Each side goes first every other round: the server slows a little as its
            # tables grow, and neither side should always meet the larger tables.
            for name, order in list(sides.items())[::1 if round_ % 2 == 0 else -1]:
                start_us = time.time_ns() // 1000
                t0 = time.perf_counter()
                for _ in range(per_round):
                    order()
                totals[name] += time.perf_counter() - t0
                if order is session_order:
                    timed.append((start_us, time.time_ns() // 1000))
            tidy()
        orders = per_round * args.rounds
        for name, total in totals.items():
            print(f"{name:>18}: {orders} orders in {total:.3f} s = "
                  f"{total / orders * 1e3:.3f} ms/order")
        added = (totals["AgentSession"] - totals["bare agent client"]) / orders * 1e3
        print(f"session added time: {added:.3f} ms/order (target <= 0.2 ms); "
              f"session / bare ratio: {totals['AgentSession'] / totals['bare agent client']:.3f}x")
        usage = enb.frames.usage(ledger, portfolio=kept_bot.portfolio.id, phase="outcome")
        assert isinstance(usage, pl.DataFrame)
        at = pl.col("ts").dt.epoch("us")
        steady = usage.filter(pl.any_horizontal([at.is_between(a, b) for a, b in timed]))
        reads = steady.filter(pl.col("method") == "GET").height
        placed = steady.filter(pl.col("method") == "POST").height
        print(f"session reads in steady state: {reads} GETs for {placed} orders = "
              f"{reads / placed * 100:.2f} per 100 orders (target <= 2)")
        session.close()
    finally:
        owner.close()
        ledger.close()
        process.terminate()
        process.wait(10)


if __name__ == "__main__":
    main()
