"""Quota efficiency: 300 reads against a sandbox whose quota is scaled down.

The sandbox allows 30 reads per 3 s (wall clock); the client's limiter is set to the
same quota. Prints the 429s the server sent (target: 0) and the elapsed time against
the minimum the quota allows, (ceil(N / limit) - 1) windows (target: at most 1.1x).

    .venv/bin/python bench/quota_efficiency.py [--reads 300 --limit 30 --window 3]
"""

from __future__ import annotations

import argparse
import math
import time

import httpx

from etoro_nb.client import EtoroClient
from etoro_nb.ratelimit import Quota
from etoro_nb.sandbox import SandboxConfig, start


class Counting(httpx.HTTPTransport):
    """Counts the answers by status, as the server sent them (before any retry)."""

    def __init__(self) -> None:
        super().__init__()
        self.statuses: dict[int, int] = {}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
        return response


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reads", type=int, default=300)
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--window", type=float, default=3.0)
    args = parser.parse_args()
    server = start(SandboxConfig(read_limit=args.limit, limit_window=args.window))
    creds = server.credentials
    transport = Counting()
    client = EtoroClient(base_url=creds.base_url, api_key=creds.api_key, user_key=creds.user_key,
                    environment="sandbox", transport=transport,
                    quota=Quota(read_limit=args.limit, window=args.window))
    t0 = time.perf_counter()
    for _ in range(args.reads):
        client.me()
    elapsed = time.perf_counter() - t0
    minimum = (math.ceil(args.reads / args.limit) - 1) * args.window
    print(f"{args.reads} reads at {args.limit} per {args.window:g} s: {elapsed:.2f} s elapsed, "
          f"minimum the quota allows {minimum:.2f} s")
    print(f"answers by status: {dict(sorted(transport.statuses.items()))}; "
          f"429s: {transport.statuses.get(429, 0)} (target 0)")
    print(f"elapsed / minimum ratio: {elapsed / minimum:.3f}x (target <= 1.1x)")
    client.close()
    server.stop()


if __name__ == "__main__":
    main()
