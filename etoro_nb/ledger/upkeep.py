"""Upkeep: the ledger's housework, done by one background thread per ``Ledger`` so that no
request waits for it.

Three jobs: sealing a table once its live part crosses the seal threshold (an append only
asks for it), checkpointing the WAL into the database file (the appending connection
does not checkpoint by itself: a checkpoint copies and syncs megabytes), and, with each
checkpoint, keeping the drafts of live rows (see ``drafts``): deleting those a seal made
obsolete and drafting every ``DRAFT_ROWS`` new live rows, so that readers decode few rows
from SQLite whether or not the table is sealed; with each checkpoint too, recovering the
spools of processes that died since (see ``spool``). The thread is a
daemon, started by the first job and ending when none is left; ``Ledger.close()`` lets it
finish the job in hand. A seal cut short by the process ending leaves the ledger
consistent (see ``sealing``).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import etoro_nb.ledger.drafts as drafts

if TYPE_CHECKING:
    from etoro_nb.ledger.core import Ledger

log = logging.getLogger("etoro_nb.ledger")

CHECKPOINT_EVERY = 500  # commits between WAL checkpoints (SQLite's own default: ~1000 pages)


class Upkeep:
    """A queue of seals (in the order asked) and a pending-checkpoint flag, worked off by
    one daemon thread at a time."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._cond = threading.Condition()
        self._seals: deque[tuple[str, int]] = deque()
        self._checkpoint = False
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None

    def seal(self, table: str, through: int) -> None:
        """Ask for ``table`` to be sealed through row ``through`` if its live part is then
        at least the threshold; returns at once."""
        self._submit(lambda: self._seals.append((table, through)))

    def checkpoint(self) -> None:
        """Ask for a WAL checkpoint; returns at once."""
        def flag() -> None:
            self._checkpoint = True
        self._submit(flag)

    def _submit(self, enqueue: Callable[[], None]) -> None:
        with self._cond:
            if self._closed:
                return
            enqueue()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name=f"ledger-upkeep:{self._ledger.path.name}")
                self._thread.start()
            self._cond.notify()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every job asked so far is done; False if ``timeout`` passed first."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not (self._seals or self._checkpoint or self._busy) or self._closed,
                timeout)

    def close(self) -> None:
        """Drop the queued jobs and wait for the one in hand (a dropped seal is asked for
        again by the next append past a multiple of 1000 rows)."""
        with self._cond:
            self._closed = True
            self._seals.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        """Work off the jobs, then end: the next job starts a new thread (an idle one would
        keep an unclosed Ledger alive)."""
        while True:
            with self._cond:
                self._busy = False
                if self._closed or not (self._seals or self._checkpoint):
                    self._thread = None
                    self._cond.notify_all()
                    return
                self._busy = True
                job = self._seals.popleft() if self._seals else None
                if job is None:
                    self._checkpoint = False
            try:
                if job is None:
                    self._ledger._checkpoint()
                    drafts.upkeep(self._ledger)
                    # Processes that died since this ledger was opened left their spools.
                    self._ledger._recover_spools()
                else:
                    self._ledger._seal_if_due(*job)
            except Exception as exc:  # the other jobs must still run
                # Nothing is lost: a seal or checkpoint that failed is asked for again later.
                log.warning("ledger upkeep (%s) failed: %s", job or "checkpoint", exc)
