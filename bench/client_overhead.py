"""Client overhead: agent_portfolios.list() against raw httpx with hand-built headers.

Both talk to one sandbox over a real socket, in alternating rounds so drift affects
both alike. Prints each side's time per call and the ratio (target: at most 1.15x).

    .venv/bin/python bench/client_overhead.py [--calls 1000]
"""

from __future__ import annotations

import argparse
import time
import uuid

import httpx

from etoro_nb.client import Client
from etoro_nb.ratelimit import Quota
from etoro_nb.sandbox import SandboxConfig, start

SCOPES = ["etoro-public:trade.demo:read", "etoro-public:trade.real:read"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    server = start(SandboxConfig(read_limit=10**9, write_limit=10**9))
    creds = server.credentials
    # Both sides unthrottled: this measures the client's own cost, not the quota.
    client = Client(base_url=creds.base_url, api_key=creds.api_key, user_key=creds.user_key,
                    environment="sandbox", quota=Quota(read_limit=10**9, write_limit=10**9))
    for i in range(5):  # something to list: 5 portfolios with 2 tokens each
        created = client.agent_portfolios.create(f"bench0{i}", 500, scopes=SCOPES)
        client.agent_portfolios.mint_token(created.portfolio.id, "second", scopes=SCOPES)
    raw = httpx.Client(base_url=creds.base_url)

    def raw_list() -> None:
        headers = {"x-api-key": creds.api_key, "x-user-key": creds.user_key,
                   "x-request-id": str(uuid.uuid4())}
        r = raw.get("/api/v1/agent-portfolios", headers=headers)
        r.raise_for_status()
        r.json()

    def client_list() -> None:
        client.agent_portfolios.list()

    per_round = max(1, args.calls // args.rounds)
    totals = {"raw httpx": 0.0, "etoro_nb client": 0.0}
    for fn in (raw_list, client_list):  # warm up connections and caches
        for _ in range(20):
            fn()
    for _ in range(args.rounds):
        for name, fn in (("raw httpx", raw_list), ("etoro_nb client", client_list)):
            t0 = time.perf_counter()
            for _ in range(per_round):
                fn()
            totals[name] += time.perf_counter() - t0
    calls = per_round * args.rounds
    for name, total in totals.items():
        print(f"{name:>16}: {calls} list() calls in {total:.3f} s = {total / calls * 1e3:.3f} ms/call")
    ratio = totals["etoro_nb client"] / totals["raw httpx"]
    print(f"client / raw ratio: {ratio:.3f}x (target <= 1.15x)")
    raw.close()
    client.close()
    server.stop()


if __name__ == "__main__":
    main()
