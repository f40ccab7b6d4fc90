"""View responsiveness with 100 portfolios x 5 tokens: build and refresh time of each view
of the cockpit (and of the Cockpit itself) against the sandbox, as a ratio to the bare
data loads it needs (the same loads, with no widgets), measured in the same run. Target:
each view builds in at most 1.5x its data loads.

Each build starts from a fresh shared state, so it includes the state's load; a refresh
reloads the state and redraws the view. Run with --profile VIEW to see where a view's
time goes (cProfile, top 25 by cumulative time).

    .venv/bin/python bench/panels.py [--portfolios 100 --tokens 5] [--profile ActivityPanel]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from etoro_nb import frames
from etoro_nb.client import EtoroClient
from etoro_nb.ledger import Ledger
from etoro_nb.ratelimit import Quota
from etoro_nb.sandbox import SandboxConfig, start
from widgets import (
    ActivityPanel,
    Cockpit,
    CockpitState,
    DelegationPanel,
    PoliciesPanel,
    PortfolioPanel,
)

SCOPES = ["etoro-public:trade.demo:read", "etoro-public:trade.demo:write"]
TARGET = 1.5


def timed(fn: Callable[[], object], runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def populate(client: EtoroClient, portfolios: int, tokens: int) -> None:
    for i in range(portfolios):
        made = client.agent_portfolios.create(f"bench{i:04d}", 500, scopes=SCOPES)
        for k in range(tokens - 1):
            client.agent_portfolios.mint_token(made.portfolio.id, f"t{k}", scopes=SCOPES[:1])
        client.as_agent(made.token).trading("demo").portfolio()


def data_loads(client: EtoroClient) -> dict[str, Callable[[], object]]:
    """What each view needs, loaded bare: the shared state's load, plus the ledger reads
    the view makes itself."""
    ledger = client.ledger
    assert ledger is not None

    def state() -> object:
        return CockpitState(client)._load()

    def over_privilege() -> object:  # DelegationPanel: the shown portfolio's usage
        first = client.agent_portfolios.list()[0].id
        return frames.usage(ledger, phase="outcome", portfolio=first)

    def window() -> object:  # ActivityPanel: the week it shows
        today = client.now()
        return frames.usage(ledger, since=today - timedelta(days=7), until=today + timedelta(days=1))

    return {
        "PortfolioPanel": state,
        "DelegationPanel": lambda: (state(), over_privilege()),
        "PoliciesPanel": state,
        "ActivityPanel": lambda: (state(), window()),
        "Cockpit": lambda: (state(), over_privilege(), window()),
    }


VIEWS: dict[str, Callable[[EtoroClient, CockpitState], object]] = {
    "PortfolioPanel": lambda c, s: PortfolioPanel(c, state=s),
    "DelegationPanel": lambda c, s: DelegationPanel(c, state=s),
    "PoliciesPanel": lambda c, s: PoliciesPanel(c, state=s),
    "ActivityPanel": lambda c, s: ActivityPanel(c, state=s),
    "Cockpit": lambda c, s: Cockpit(c),
}


def measure(client: EtoroClient, name: str) -> tuple[float, float, float]:
    """(build, refresh, data) seconds, best of a few runs each."""
    data = timed(data_loads(client)[name])
    states: list[CockpitState] = []

    def build() -> None:
        state = CockpitState(client)
        if name == "Cockpit":  # it takes the client's shared state: make it a fresh one
            from widgets import state as state_module

            state_module._SHARED[client] = state
        states.append(state)
        VIEWS[name](client, state)

    built = timed(build, runs=2)
    refresh = timed(states[-1].refresh)
    return built, refresh, data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--portfolios", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=5)
    parser.add_argument("--profile", choices=sorted(VIEWS), default=None)
    args = parser.parse_args()
    server = start(SandboxConfig(read_limit=10**9, write_limit=10**9,
                                 owner_real_balance=1e9))
    creds = server.credentials
    scratch = tempfile.TemporaryDirectory()
    client = EtoroClient(base_url=creds.base_url, api_key=creds.api_key, user_key=creds.user_key,
                         environment="sandbox", quota=Quota(read_limit=10**9, write_limit=10**9),
                         ledger=Ledger(Path(scratch.name) / "ledger.sqlite"))
    try:
        t0 = time.perf_counter()
        populate(client, args.portfolios, args.tokens)
        print(f"set up {args.portfolios} portfolios x {args.tokens} tokens in "
              f"{time.perf_counter() - t0:.1f} s")
        if args.profile:
            VIEWS[args.profile](client, CockpitState(client))  # imports and caches warm
            profiler = cProfile.Profile()
            profiler.runcall(VIEWS[args.profile], client, CockpitState(client))
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        print(f"{'view':>16} {'build s':>8} {'refresh s':>10} {'data s':>8} "
              f"{'build/data':>11} {'refresh/data':>13}  target {TARGET}x")
        for name in VIEWS:
            build, refresh, data = measure(client, name)
            flag = "" if build / data <= TARGET else "  over target"
            print(f"{name:>16} {build:8.3f} {refresh:10.3f} {data:8.3f} {build / data:10.2f}x "
                  f"{refresh / data:12.2f}x{flag}")
    finally:
        client.close()
        server.stop()
        scratch.cleanup()


if __name__ == "__main__":
    main()
