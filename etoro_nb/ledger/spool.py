"""The intent spool: a per-process write-ahead journal in front of the ledger's SQLite file.

An intent must be durable before its request is sent. Committing it to SQLite on the
request path costs a transaction (and chaining and hashing) per request; appending it to
this process's spool costs one ``os.write`` of one JSON line to a file opened with
``O_APPEND`` and kept open. Once ``os.write`` returns the operating system holds the line:
it survives the process being killed, as a WAL commit at ``synchronous=NORMAL`` does (a
power loss or kernel crash may lose it, as it may lose such a commit). The ledger's writer
thread then commits the rows into SQLite in batches, and tells the spool, which empties
its file whenever it finds nothing left to commit (under steady load that is still
every few batches: a commit takes a fraction of the time between them).

Files. Each spool is ``<ledger>.spool/<pid>-<random>.jsonl``, held with an exclusive
``flock`` while its process lives (the lock is released by the kernel when it dies). A
line is the row exactly as the ledger stores it (its values, ``ts_us`` included): no key
or secret is ever in it. An outcome's line is held back and written with the next
intent's (one ``os.write`` per request); the writer commits it within milliseconds
anyway, so a kill loses at most the newest outcome, as without the spool.

Recovery (``orphans`` here, ``Ledger._recover_spools`` in ``core``): a spool whose lock is free belongs to a
dead process (or a closed ledger that could not commit); its rows not already in the
ledger are appended, in spool order, and the file is removed. A line torn by a crash (no
newline) is skipped: its ``os.write`` never returned, so its request was never sent.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import weakref
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

from etoro_nb.errors import LedgerError

_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class Spool:
    """This process's spool for one ledger. ``append`` on the request path, ``drained``
    when the writer has committed everything handed to it: both are called in the
    writer's queue lock, so no row is appended between a commit and the emptying."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._size = 0  # bytes in the file
        self._pending: list[bytes] = []  # outcome lines, written with the next intent's
        self._fd, self.path = self._open()
        # A spool dropped without close() (its Ledger never closed) lets go of its file and
        # lock; its rows were committed at interpreter exit or are recovered.
        self._release = weakref.finalize(self, os.close, self._fd)
        self.failed: LedgerError | None = None  # set by the writer: the spool is kept

    def _open(self) -> tuple[int, Path]:
        try:
            self.directory.mkdir(mode=0o700, exist_ok=True)
            path = self.directory / f"{os.getpid()}-{secrets.token_hex(6)}.jsonl"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC,
                         0o600)
        except OSError as exc:
            raise LedgerError(f"cannot open the ledger's spool in {self.directory}: "
                              f"{exc.strerror or exc}") from None
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else has it
        return fd, path

    def append(self, values: dict[str, Any], *, write: bool = True) -> None:
        """Write one row as one line, after the outcome lines held back for it, in one
        ``os.write``; a LedgerError means it is not in the spool. With ``write=False``
        (an outcome) the line waits for the next write: as before the spool, a kill
        may lose the newest outcome, never an intent."""
        line = (_DUMPS(values) + "\n").encode()
        if not write:
            self._pending.append(line)
            return
        if self._fd < 0:
            raise LedgerError(f"the ledger's spool {self.path} is closed")
        data = b"".join((*self._pending, line)) if self._pending else line
        try:
            written = os.write(self._fd, data)
        except OSError as exc:
            raise LedgerError(f"cannot write the ledger's spool {self.path}: "
                              f"{exc.strerror or exc}") from None
        self._size += written
        if written != len(data):  # a full disk mid-line: the torn line is skipped later
            raise LedgerError(f"cannot write the ledger's spool {self.path}: short write")
        self._pending.clear()

    def drained(self) -> None:
        """Every row handed to the writer is committed: empty the file (unless the writer
        failed: then everything stays for recovery)."""
        if self.failed is not None or self._fd < 0:
            return
        self._pending.clear()
        if self._size:
            os.ftruncate(self._fd, 0)
            self._size = 0

    def close(self, drained: bool) -> None:
        """Close the file, removing it if every row in it is committed; else it stays for
        the next opener to recover (its lock is released)."""
        if self._fd < 0:
            return
        if drained and self.failed is None:
            self.path.unlink(missing_ok=True)
        elif self._pending:  # held-back outcome lines: they are not committed either
            with suppress(OSError):
                os.write(self._fd, b"".join(self._pending))
        self._release()
        self._fd = -1


def orphans(directory: Path) -> Iterator[tuple[Path, list[dict[str, Any]]]]:
    """The spools in ``directory`` whose process is gone, each locked while the caller
    handles it, with its rows in order; the caller removes the file when its rows are in
    the ledger (before asking for the next: the lock is released then). A spool another
    opener is recovering, or has just removed, is skipped."""
    try:
        names = sorted(p for p in directory.iterdir() if p.suffix == ".jsonl")
    except FileNotFoundError:
        return
    except OSError as exc:
        raise LedgerError(f"cannot read the ledger's spools in {directory}: "
                          f"{exc.strerror or exc}") from None
    for path in names:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its process is alive (this one's own spool included)
            try:  # removed (recovered) between our listing and our lock: not ours to redo
                if os.stat(path).st_ino != os.fstat(fd).st_ino:
                    continue
            except FileNotFoundError:
                continue
            with open(fd, "rb", closefd=False) as f:
                data = f.read()
            yield path, _rows(data)
        finally:
            os.close(fd)  # after the caller removed the file: the lock guards the removal


def _rows(data: bytes) -> list[dict[str, Any]]:
    """The complete lines' rows (the text after the last newline is a torn write)."""
    rows = []
    for line in data.split(b"\n")[:-1]:
        try:
            row = json.loads(line)
        except ValueError:  # a line torn by a full disk, followed by later ones
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows
