"""The ledger's writer: one thread per ``Ledger`` that commits its usage rows, in the order
they were handed over.

Three ways to hand a row over. ``spool`` (a client's intent and outcome at the default
durability): the row is written to the process's spool by the caller's ``append``, inside
the queue's lock (so the spool's order is the queue's), and queued as a deferred row
nobody waits for; a failure to commit it is logged (and the ledger marks its spool
failed, so the next intent fails). ``submit``: the caller gets a ``Future`` of its
sequence number (awaited with ``asyncio.wrap_future`` on an event loop, so the loop never
waits for SQLite, its lock or its retry sleeps). ``commit``: the caller waits, committing
in its own thread when no other batch is being committed (saving two thread switches).
A deferred row waits in the queue until ``linger`` seconds pass with no new row (a
spooled row's deadline slides: it is durable in the spool already, and committing while
the caller is busy only competes with it), or until ``BATCH_ROWS`` are queued, when the
caller that queued the last commits them itself; a waited-for row commits the queue at
once. Everything queued is committed by ``flush()``, by ``close()`` and at interpreter
exit. After a commit that leaves the queue empty, ``drained`` is called in the queue's
lock (the ledger empties its spool then: no row can be spooled in between).

Rows taken together are one transaction; if it fails for a reason of its own row (not
the ledger being unwritable), each row is retried alone so one bad row fails only itself.
The thread is a daemon; it looks at the queue every ``linger`` seconds (so a deferred row
needs no wake-up call) and ends after ``IDLE`` seconds without work (an idle thread would
keep an unclosed ``Ledger`` alive); the next row starts a new one.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from etoro_nb.errors import LedgerError

log = logging.getLogger("etoro_nb.ledger")
IDLE = 2.0  # seconds without work before the thread ends
BATCH_ROWS = 256  # deferred rows queued that are committed at once, without waiting for linger


@dataclass
class Job:
    """One row to commit: its table, its values, and who learns its sequence number."""

    table: str
    values: dict[str, Any]
    deferred: bool
    spooled: bool = False  # also in the process's spool (``spool``)
    future: Future[int] | None = field(default_factory=Future)  # None: nobody waits


# commit(jobs) -> their sequence numbers, in one transaction; raises if it fails.
Commit = Callable[[Sequence[Job]], list[int]]


class Writer:
    """A queue of rows in submission order, committed one batch at a time (the
    ``_committing`` flag) by the writer thread or by a caller that commits its own row."""

    def __init__(self, commit: Commit, *, linger: float, name: str,
                 drained: Callable[[], None] | None = None) -> None:
        self._commit = commit
        self._drained = drained  # called, in the queue's lock, when a commit leaves none
        self._linger = linger
        self._name = name
        self._cond = threading.Condition()
        self._queue: list[Job] = []
        self._urgent = False  # a waited-for row (or a flush) is queued: commit at once
        self._deadline = 0.0  # when the oldest deferred row in the queue must be committed
        self._committing = False  # a batch is being committed (in one thread at a time)
        self._flushers = 0  # threads waiting in flush()
        self._submitted = 0
        self._done = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        _LIVE.add(self)

    def submit(self, table: str, values: dict[str, Any], *, deferred: bool = False) -> Future[int]:
        """Queue a row for the writer thread; its future holds its sequence number once
        committed, or the error."""
        with self._cond:
            future = self._enqueue(table, values, deferred)
            if not deferred or self._linger <= 0:
                self._urgent = True
                self._cond.notify_all()
            # A deferred row wakes nobody: the thread looks at the queue every ``linger``.
            self._start_thread()
        return future

    def spool(self, table: str, values: dict[str, Any], append: Callable[[], None], *,
              commit_here: bool = True) -> None:
        """Queue a deferred row nobody waits for, after ``append`` (the spool's write) ran
        in the queue's lock: rows are spooled in the order they are queued, and none
        between a commit and the ``drained`` call. If ``append`` raises, nothing is queued.
        A failure to commit the row is logged (the ledger's commit also marks its spool
        failed)."""
        with self._cond:
            if self._closed:
                raise LedgerError(f"the ledger writer {self._name} is closed")
            append()
            job = Job(table, values, True, True, None)
            # The deadline slides: spooled rows are durable already, so they are committed
            # once the caller has paused for ``linger`` (or BATCH_ROWS are queued), not
            # while it is busy, when the writer thread would compete with it.
            self._deadline = time.monotonic() + self._linger
            self._queue.append(job)
            self._submitted += 1
            batch = None
            if len(self._queue) >= BATCH_ROWS:
                batch = self._claim() if commit_here else None
                if batch is None:  # the thread commits it (after any batch being committed)
                    self._urgent = True
                    self._cond.notify_all()
            self._start_thread()
        if batch is not None:
            self._finish(batch)  # here: handing the batch to the thread costs more

    def commit(self, table: str, values: dict[str, Any]) -> int:
        """Commit a row (with the deferred rows before it) and wait for it: in this thread
        if no batch is being committed (no hand-over to the writer thread and back: the
        synchronous client's intent), else by the writer thread. Not for an event loop."""
        with self._cond:
            future = self._enqueue(table, values, False)
            batch = self._claim()
            if batch is None:
                self._urgent = True
                self._start_thread()
                self._cond.notify_all()
        if batch is not None:
            self._finish(batch)
        return future.result()

    def flush(self, timeout: float | None = None) -> bool:
        """Commit everything handed over so far, and wait for it; False if ``timeout``
        seconds passed first. Does nothing on the writer's own thread (its hooks read the
        ledger after each commit)."""
        with self._cond:
            if threading.current_thread() is self._thread:
                return True
            target = self._submitted
            batch = self._claim()
            if batch is None and self._done < target:
                self._urgent = True
                self._cond.notify_all()
        if batch is not None:
            self._finish(batch)
        with self._cond:
            self._flushers += 1
            try:
                return self._cond.wait_for(lambda: self._done >= target, timeout)
            finally:
                self._flushers -= 1

    def close(self) -> None:
        """Commit what is queued, then stop; a later row raises LedgerError."""
        self.flush()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    # -- under self._cond ---------------------------------------------------------------
    def _enqueue(self, table: str, values: dict[str, Any], deferred: bool) -> Future[int]:
        if self._closed:
            raise LedgerError(f"the ledger writer {self._name} is closed")
        future: Future[int] = Future()
        # Running from the start: an awaiting task's cancellation (asyncio.wrap_future
        # cancels its source) cannot take back a row handed over; it is committed anyway.
        future.set_running_or_notify_cancel()
        job = Job(table, values, deferred, future=future)
        if not self._queue:
            self._deadline = time.monotonic() + self._linger
        self._queue.append(job)
        self._submitted += 1
        return future

    def _claim(self) -> list[Job] | None:
        """The whole queue, to commit in the calling thread, unless a batch is being
        committed (rows are committed in the order handed over) or the queue is empty."""
        if self._committing or not self._queue:
            return None
        batch, self._queue, self._urgent = self._queue, [], False
        self._committing = True
        return batch

    def _start_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name=self._name)
            self._thread.start()

    # -- committing ---------------------------------------------------------------------
    def _finish(self, batch: Sequence[Job]) -> None:
        try:
            self._write(batch)
        finally:
            with self._cond:
                self._committing = False
                self._done += len(batch)
                if not self._queue and self._drained is not None:
                    self._drained()
                # Wake the thread only when there is something for it (a wake-up per
                # request would cost the request more than the commit it saves).
                if self._queue or self._flushers:
                    self._cond.notify_all()

    def _take(self) -> list[Job] | None:
        """The writer thread's next batch, when it is due (None: idle for IDLE seconds,
        or closed)."""
        with self._cond:
            idle_since = time.monotonic()
            while True:
                now = time.monotonic()
                if self._queue and (self._urgent or self._closed or now >= self._deadline):
                    batch = self._claim()
                    if batch is not None:
                        return batch
                elif not self._queue and not self._committing and (
                        self._closed or now - idle_since >= IDLE):
                    self._thread = None
                    self._cond.notify_all()
                    return None
                if self._queue:
                    idle_since = now
                wait = self._linger if self._linger > 0 else IDLE
                if self._queue and not self._urgent and not self._committing:
                    wait = min(wait, max(0.0, self._deadline - now))
                self._cond.wait(wait)

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            self._finish(batch)

    def _write(self, batch: Sequence[Job]) -> None:
        try:
            seqs = self._commit(batch)
        except LedgerError as exc:  # the ledger itself failed: every row of the batch did
            for job in batch:
                _fail(job, exc)
            return
        except Exception as exc:
            if len(batch) > 1:  # a row of its own made it fail: each row alone, in order
                for job in batch:
                    self._write([job])
            else:
                _fail(batch[0], exc)
            return
        for job, seq in zip(batch, seqs, strict=True):
            if job.future is not None:
                job.future.set_result(seq)


def _fail(job: Job, exc: BaseException) -> None:
    if job.future is not None:
        job.future.set_exception(exc)
    else:  # a spooled row: it stays in the spool, recovered later
        log.error("could not commit a %s row (request id %s): %s", job.table,
                  job.values.get("request_id"), exc)


_LIVE: weakref.WeakSet[Writer] = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:
    """At interpreter exit, commit every deferred row still waiting (daemon threads are
    still running when atexit handlers are)."""
    for writer in list(_LIVE):
        writer.flush(timeout=60)
