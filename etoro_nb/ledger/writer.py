"""The ledger's writer: one thread per ``Ledger`` that commits its usage rows, in the order
they were handed over.

A caller hands a row over and gets a ``Future`` of its sequence number. An intent is
waited for (``Future.result()``, or ``await asyncio.wrap_future(...)`` on an event loop,
which then never waits for SQLite, its lock or its retry sleeps). An outcome is *deferred*:
nobody waits, and the writer holds it for at most ``linger`` seconds, so that the next
intent commits it in the same transaction (one commit per request instead of two); if no
row follows, it is committed alone when the time is up. Everything waiting is committed by
``flush()``, by ``close()`` and at interpreter exit.

Rows taken together are one transaction; if it fails for a reason of its own row (not
the ledger being unwritable), each row is retried alone so one bad row fails only itself.
The thread is a daemon and ends after ``IDLE`` seconds without work (an idle thread would
keep an unclosed ``Ledger`` alive); the next row starts a new one.
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from etoro_nb.errors import LedgerError

IDLE = 2.0  # seconds without work before the thread ends


@dataclass
class Job:
    """One row to commit: its table, its values, and who learns its sequence number."""

    table: str
    values: dict[str, Any]
    deferred: bool
    future: Future[int] = field(default_factory=Future)


# commit(jobs) -> their sequence numbers, in one transaction; raises if it fails.
Commit = Callable[[Sequence[Job]], list[int]]


class Writer:
    """A queue of rows in submission order, committed by one thread."""

    def __init__(self, commit: Commit, *, linger: float, name: str) -> None:
        self._commit = commit
        self._linger = linger
        self._name = name
        self._cond = threading.Condition()
        self._queue: list[Job] = []
        self._urgent = False  # a waited-for row (or a flush) is queued: commit at once
        self._deadline = 0.0  # when the oldest deferred row in the queue must be committed
        self._submitted = 0
        self._done = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        _LIVE.add(self)

    def submit(self, table: str, values: dict[str, Any], *, deferred: bool = False) -> Future[int]:
        """Queue a row; its future holds its sequence number once committed, or the error."""
        job = Job(table, values, deferred)
        # Running from the start: an awaiting task's cancellation (asyncio.wrap_future
        # cancels its source) cannot take back a row handed over; it is committed anyway.
        job.future.set_running_or_notify_cancel()
        with self._cond:
            if self._closed:
                raise LedgerError(f"the ledger writer {self._name} is closed")
            if not self._queue:
                self._deadline = time.monotonic() + self._linger
            self._queue.append(job)
            self._submitted += 1
            if not deferred or self._linger <= 0:
                self._urgent = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name=self._name)
                self._thread.start()
            self._cond.notify()
        return job.future

    def flush(self, timeout: float | None = None) -> bool:
        """Commit everything handed over so far, and wait for it; False if ``timeout``
        seconds passed first. Does nothing on the writer's own thread (its hooks read the
        ledger after each commit)."""
        with self._cond:
            if threading.current_thread() is self._thread:
                return True
            target = self._submitted
            if self._done < target:
                self._urgent = True
                self._cond.notify_all()
            return self._cond.wait_for(lambda: self._done >= target, timeout)

    def close(self) -> None:
        """Commit what is queued, then stop; a later ``submit`` raises LedgerError."""
        self.flush()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _take(self) -> list[Job] | None:
        """The next batch, when it is due (None: idle for IDLE seconds, or closed)."""
        with self._cond:
            while True:
                if self._queue and (self._urgent or self._closed
                                    or time.monotonic() >= self._deadline):
                    batch, self._queue, self._urgent = self._queue, [], False
                    return batch
                if self._queue:
                    self._cond.wait(max(0.0, self._deadline - time.monotonic()))
                elif self._closed or (not self._cond.wait(IDLE) and not self._queue):
                    self._thread = None
                    self._cond.notify_all()
                    return None

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            self._write(batch)
            with self._cond:
                self._done += len(batch)
                self._cond.notify_all()

    def _write(self, batch: Sequence[Job]) -> None:
        try:
            seqs = self._commit(batch)
        except LedgerError as exc:  # the ledger itself failed: every row of the batch did
            for job in batch:
                job.future.set_exception(exc)
            return
        except Exception as exc:
            if len(batch) > 1:  # a row of its own made it fail: each row alone, in order
                for job in batch:
                    self._write([job])
            else:
                batch[0].future.set_exception(exc)
            return
        for job, seq in zip(batch, seqs, strict=True):
            job.future.set_result(seq)


_LIVE: weakref.WeakSet[Writer] = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:
    """At interpreter exit, commit every deferred row still waiting (daemon threads are
    still running when atexit handlers are)."""
    for writer in list(_LIVE):
        writer.flush(timeout=60)
