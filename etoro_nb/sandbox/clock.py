"""The sandbox's notion of now: the wall clock, or a simulated clock that moves on demand."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

LATEST = datetime(2999, 12, 31, tzinfo=UTC)
MAX_ADVANCE = 1000 * 365 * 86400.0


class Clock:
    """UTC time for prices, expiry and quota windows.

    With ``start`` set the clock is simulated: it stands still until ``advance`` moves
    it, so runs are reproducible. Without it, it follows the wall clock (and ``advance``
    adds an offset, so expiry can still be rehearsed).
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._simulated = start is not None
        self._fixed = start.astimezone(UTC) if start is not None else None
        self._offset = timedelta()

    @property
    def simulated(self) -> bool:
        return self._simulated

    def now(self) -> datetime:
        with self._lock:
            base = self._fixed if self._fixed is not None else datetime.now(UTC)
            return base + self._offset

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward; time never goes backwards."""
        if not 0 <= seconds <= MAX_ADVANCE:
            raise ValueError(f"seconds must be between 0 and {MAX_ADVANCE:g}: the clock never "
                             "goes backwards, nor past the year 2999")
        with self._lock:
            offset = self._offset + timedelta(seconds=seconds)
            base = self._fixed if self._fixed is not None else datetime.now(UTC)
            if base + offset > LATEST:
                raise ValueError("the clock would pass the year 2999")
            self._offset = offset
        return self.now()
