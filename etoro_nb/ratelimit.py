"""A client-side quota per user key: rolling windows for reads and writes.

Callers reserve a slot before sending: the limiter answers how long to wait and books
the slot at that future instant, so threads and tasks sharing it queue up in order and
the server never sees more than the quota (no 429 in steady state). It also follows the
server's ``X-RateLimit-Limit`` / ``X-RateLimit-Remaining`` headers: a lower limit is
adopted, and requests the server counted that this limiter did not (another process on
the same key) are booked too. ``Reset`` is not trusted, because a sandbox on a simulated
clock reports it in its own time.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

DEFAULT_READ_LIMIT = 60
DEFAULT_WRITE_LIMIT = 20
DEFAULT_WINDOW = 60.0
# Slots are spaced a little more than a window apart: the server counts arrivals, which
# trail sends by a varying network delay.
WINDOW_MARGIN = 0.05
OBSERVE_TOLERANCE = 0.1


@dataclass(frozen=True)
class Quota:
    read_limit: int = DEFAULT_READ_LIMIT
    write_limit: int = DEFAULT_WRITE_LIMIT
    window: float = DEFAULT_WINDOW

    def __post_init__(self) -> None:
        if self.read_limit < 1 or self.write_limit < 1 or self.window <= 0:
            raise ValueError("quota limits must be >= 1 and the window > 0")


class RateLimiter:
    """Books request slots per (user key id, read|write) over a rolling window."""

    def __init__(self, quota: Quota | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.quota = quota or Quota()
        self._clock = clock
        self._lock = threading.Lock()
        self._slots: dict[tuple[str, str], deque[float]] = {}
        self._limits: dict[tuple[str, str], int] = {}

    def _limit(self, key: tuple[str, str]) -> int:
        default = self.quota.read_limit if key[1] == "read" else self.quota.write_limit
        return self._limits.get(key, default)

    def reserve(self, key_id: str, kind: str) -> float:
        """Book the next free slot; return how many seconds to wait for it."""
        key = (key_id, kind)
        with self._lock:
            now = self._clock()
            slots = self._forget(key, now)
            limit = self._limit(key)
            # First come, first served: never before a slot already booked, and at least a
            # window after the slot ``limit`` places back, so no window holds more.
            at = max(now, slots[-1]) if slots else now
            if len(slots) >= limit:
                at = max(at, slots[-limit] + self.quota.window + WINDOW_MARGIN)
            slots.append(at)
            return at - now

    def _forget(self, key: tuple[str, str], now: float) -> deque[float]:
        """The key's slots, without those too old to matter even to the server's count."""
        slots = self._slots.setdefault(key, deque())
        while slots and slots[0] <= now - self.quota.window * (1 + OBSERVE_TOLERANCE):
            slots.popleft()
        return slots

    def observe(self, key_id: str, kind: str, headers: Mapping[str, str]) -> None:
        """Follow the server's view of the quota, when it sends one."""
        try:
            limit = int(headers["x-ratelimit-limit"])
            remaining = int(headers["x-ratelimit-remaining"])
        except (KeyError, ValueError):
            return
        key = (key_id, kind)
        with self._lock:
            if 1 <= limit < self._limit(key):
                self._limits[key] = limit
            now = self._clock()
            slots = self._forget(key, now)
            # The server counts arrivals, a little after our sends: requests that just left
            # our window may still be in its window. Only a surplus beyond those is
            # another process's (same key), and is booked.
            missing = (limit - remaining) - len(slots)
            if missing > 0:
                self._slots[key] = deque(sorted([*slots, *([now] * missing)]))
