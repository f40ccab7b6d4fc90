"""Panel responsiveness with 100 portfolios x 5 tokens: construction and refresh time of
each panel against the sandbox, and as a ratio to the bare data loads it needs (the same
frames, with no widgets), measured in the same run.

    .venv/bin/python bench/panels.py [--portfolios 100 --tokens 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from _scratch import scratch_dir  # bench/ is the script's folder, on sys.path

from etoro_nb import frames
from etoro_nb.client import EtoroClient
from etoro_nb.ledger import Ledger
from etoro_nb.ratelimit import Quota
from etoro_nb.sandbox import SandboxConfig, start
from widgets import ActivityPanel, DelegationPanel, PortfolioPanel

SCOPES = ["etoro-public:trade.demo:read", "etoro-public:trade.demo:write"]


def timed(fn: Callable[[], object], runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--portfolios", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=5)
    args = parser.parse_args()
    server = start(SandboxConfig(read_limit=10**9, write_limit=10**9,
                                 owner_real_balance=1e9))
    creds = server.credentials
    client = EtoroClient(base_url=creds.base_url, api_key=creds.api_key, user_key=creds.user_key,
                    environment="sandbox", quota=Quota(read_limit=10**9, write_limit=10**9),
                    ledger=Ledger(scratch_dir() / "ledger.sqlite"))
    t0 = time.perf_counter()
    for i in range(args.portfolios):
        made = client.agent_portfolios.create(f"bench{i:04d}", 500, scopes=SCOPES)
        for k in range(args.tokens - 1):
            client.agent_portfolios.mint_token(made.portfolio.id, f"t{k}", scopes=SCOPES[:1])
        client.as_agent(made.token).trading("demo").portfolio()
    print(f"set up {args.portfolios} portfolios x {args.tokens} tokens in "
          f"{time.perf_counter() - t0:.1f} s")

    baselines = {
        "PortfolioPanel": lambda: (frames.accounting(client), frames.portfolios(client)),
        "DelegationPanel": lambda: (client.agent_portfolios.list(), frames.tokens(client)),
        "ActivityPanel": lambda: (frames.tokens(client), frames.scope_grants(client),
                                  frames.usage(client.ledger) if client.ledger else None),
    }
    panels = {"PortfolioPanel": PortfolioPanel, "DelegationPanel": DelegationPanel,
              "ActivityPanel": ActivityPanel}
    print(f"{'panel':>16} {'build s':>8} {'refresh s':>10} {'data s':>8} "
          f"{'build/data':>11} {'refresh/data':>13}")
    for name, cls in panels.items():
        data = timed(baselines[name])
        built: list[object] = []
        build = timed(lambda cls=cls, built=built: built.append(cls(client)), runs=2)
        panel = built[-1]
        refresh = timed(panel.refresh)  # type: ignore[attr-defined]
        print(f"{name:>16} {build:8.3f} {refresh:10.3f} {data:8.3f} {build / data:10.2f}x "
              f"{refresh / data:12.2f}x")
    client.close()
    server.stop()


if __name__ == "__main__":
    main()
