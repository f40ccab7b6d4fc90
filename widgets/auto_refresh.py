"""AutoRefresh: refresh the shared state every N seconds, never faster than the read quota
allows (a refresh makes ``READS_PER_REFRESH`` reads; the cockpit takes at most half of the
read quota, leaving the rest to the analyst's own calls and to agents on the same key)."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

from etoro_nb.ratelimit import Quota
from widgets.state import READS_PER_REFRESH, CockpitState

QUOTA_SHARE = 0.5
CHOICES = (0, 10, 30, 60, 300)
"""Intervals offered, in seconds (0: off)."""

Schedule = Callable[[float, Callable[[], None]], Callable[[], None]]
"""Run a callable once after a delay; returns a function that cancels it."""


def thread_timer(delay: float, action: Callable[[], None]) -> Callable[[], None]:
    timer = threading.Timer(delay, action)
    timer.daemon = True  # never keeps a kernel from exiting
    timer.start()
    return timer.cancel


def minimum_interval(quota: Quota) -> float:
    """The shortest interval (s) at which refreshing stays within its share of the quota."""
    per_second = quota.read_limit / quota.window * QUOTA_SHARE
    return math.ceil(READS_PER_REFRESH / per_second)


class AutoRefresh:
    """Refreshes ``state`` every ``interval`` seconds once started (0: off). An interval
    below the quota's minimum is raised to it; ``interval`` says what is in force."""

    def __init__(self, state: CockpitState, quota: Quota, *,
                 schedule: Schedule = thread_timer) -> None:
        self.state = state
        self.minimum = minimum_interval(quota)
        self.interval = 0.0
        self._schedule = schedule
        self._cancel: Callable[[], None] | None = None
        self._lock = threading.Lock()

    def every(self, seconds: float) -> float:
        """Refresh every ``seconds`` from now on (0 stops); returns the interval in force."""
        self.stop()
        self.interval = 0.0 if seconds <= 0 else max(float(seconds), self.minimum)
        if self.interval:
            self._cancel = self._schedule(self.interval, self.tick)
        return self.interval

    def tick(self) -> None:
        """One refresh, then the next one is scheduled (unless stopped meanwhile)."""
        with self._lock:
            if not self.interval:
                return
            self.state.refresh()
            self._cancel = self._schedule(self.interval, self.tick)

    def stop(self) -> None:
        cancel, self._cancel, self.interval = self._cancel, None, 0.0
        if cancel is not None:
            cancel()
