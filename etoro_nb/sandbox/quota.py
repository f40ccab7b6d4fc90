"""Per-user-key request quota over a rolling window, read and write counted apart.

The window is measured on the sandbox clock, so a test can exhaust the quota and then
advance the clock past the window instead of sleeping.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class QuotaDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_epoch: int  # when the oldest counted request leaves the window (Unix seconds)
    retry_after: int  # whole seconds until a request would be allowed; 0 when allowed

    def headers(self) -> dict[str, str]:
        out = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_epoch),
        }
        if not self.allowed:
            out["Retry-After"] = str(self.retry_after)
        return out


class RollingQuota:
    """Counts requests per (key, kind) over the last ``window`` seconds."""

    def __init__(self, read_limit: int, write_limit: int, window: float) -> None:
        self.limits = {"read": read_limit, "write": write_limit}
        self.window = window
        self._hits: defaultdict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def check(self, key: str, kind: str, now: datetime) -> QuotaDecision:
        """Count this request if the quota allows it, and say where the quota stands."""
        return self._decide(key, kind, now, count=True)

    def peek(self, key: str, kind: str, now: datetime) -> QuotaDecision:
        """Where the quota stands, without counting (for answers refused before it)."""
        return self._decide(key, kind, now, count=False)

    def _decide(self, key: str, kind: str, now: datetime, *, count: bool) -> QuotaDecision:
        t = now.timestamp()
        limit = self.limits[kind]
        with self._lock:
            hits = self._hits[(key, kind)]
            while hits and hits[0] <= t - self.window:
                hits.popleft()
            allowed = len(hits) < limit
            if allowed and count:
                hits.append(t)
            oldest = hits[0] if hits else t
            reset = oldest + self.window
            retry = 0 if allowed else max(1, math.ceil(reset - t))
            return QuotaDecision(allowed, limit, max(0, limit - len(hits)), math.ceil(reset), retry)
