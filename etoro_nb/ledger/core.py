"""The ledger: an append-only, hash-chained SQLite record of usage and lifecycle events.

Durability. The database runs in WAL mode. ``durability="normal"`` (the default) commits
with ``synchronous=NORMAL``: an event is acknowledged once its transaction is in the WAL,
which survives the writing process being killed (the operating system still holds the
write); a power loss or kernel crash may lose the last acknowledged events. With
``durability="full"`` every commit is also flushed to the disk (``synchronous=FULL``),
which survives power loss at the cost of a sync per event.

What is acknowledged when. Usage events reach SQLite through one writer thread per ledger
(``writer``), in the order they are handed over. At ``durability="normal"`` a client's
intent is first appended to this process's spool (``spool_usage``, see ``spool``): one
``os.write`` of one JSON line to ``<ledger>.spool/<pid>-<random>.jsonl``, a file opened
with ``O_APPEND``, kept open and ``flock``-ed while the process lives. When that returns,
the intent is exactly as durable as a commit at ``synchronous=NORMAL`` (the operating
system holds it: it survives the process being killed, not necessarily a power loss), and
the request may be sent; if it fails, LedgerError, and the request is not sent. The
writer thread commits spooled rows in batches, once the process has spooled nothing new
for ``OUTCOME_LINGER`` (5 ms), chaining them as it commits (a busy caller commits each
``BATCH_ROWS`` itself, rather than have the thread compete with it), and empties the spool whenever a
commit leaves nothing queued. An outcome is spooled too, its line held back and written
with the next intent's (a kill loses at most the outcomes made since the process's last
intent, one for a client making one request at a time: such a request then shows as
unanswered, an intent without an outcome, as in ``frames.requests``). Everything handed
over is committed before ``close()`` returns, at interpreter exit, and before a read
(``scan``, ``live_count``, ``verify``) in this process.

Failure. If the writer cannot commit spooled rows (the file is locked past
``LOCK_DEADLINE``, unwritable, full), it logs the error and marks the spool failed: the
process's next intent raises LedgerError (fail closed), and the spool is kept as it is,
held-back outcomes included. It is recovered by the next ``Ledger`` opened on the file
once this one is closed or its process has ended.

Recovery. Opening a ``Ledger``, and each WAL checkpoint of the upkeep thread, recovers the
spools whose lock is free (their process died): the rows the ledger lacks (an intent or
outcome is known by request id, attempt and phase, looked up live and in segments sealed
since the oldest of them was made) are appended in spool order with their original
``ts_us``, then the spool is removed. Two openers cannot both recover one spool (its lock,
and the lookup inside the appending transaction). Until then a dead process's rows are on
disk but not in the chain; checkpoints sign committed heads only, so such rows are
covered by the first checkpoint after their recovery.

With ``durability="full"`` there is no spool: an intent is committed (and synced) before
its request is sent (``append_usage``; ``submit_usage`` awaited on an event loop) and an
outcome at once, the synchronous client waiting for it. ``append_usage`` and
``submit_usage`` commit without the spool at either durability. Lifecycle events, token
fingerprints and bulk loads are written in the calling thread, synchronously.

Concurrency. Every commit is one ``BEGIN IMMEDIATE`` transaction that reads the chain's
head and inserts the next rows, so several processes append to one file safely; a writer
waits for the lock (``busy_timeout``) and retries until a deadline, so "database is
locked" never reaches a caller before that. Nothing slow runs inside an append: sealing
and WAL checkpoints are done by a background thread (``upkeep``), and reads use a
connection of their own, so a long read never holds up a request of the same process.
A read (``scan``, ``live_count``, ``verify``) first commits the spooled and deferred rows,
so a process reads its own events (``snapshot`` does not: checkpoints take it from any thread).

Chain. Each row stores ``prev_hash`` and ``row_hash = sha256(prev_hash | canonical JSON of
its values)`` (``chain``); ``verify()`` recomputes it from the first row, through sealed
Parquet segments (whose file hashes are themselves chained in ``segments``) to the live
rows.

Secrets are never stored: a token is its id, or an HMAC-SHA256 fingerprint of its secret
keyed by a random per-ledger key kept beside the file (``<ledger>.key``, mode 0600). A
spool line holds exactly the values its row will store.

Checkpoints. The chain alone cannot show removed newest rows or a rewrite with recomputed
hashes; signed checkpoints of the chain heads, kept elsewhere, can (see ``checkpoint``).
``Ledger(path, checkpoint=CheckpointConfig(...))`` writes them periodically.

Sealing, scanning, verifying and checkpoints are imported when first used (they bring
polars and cryptography); none of them imports this module at run time.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from etoro_nb.errors import LedgerError
from etoro_nb.ledger.chain import Verification, chain_hash, now_us, sealed_through
from etoro_nb.ledger.files import publish_once
from etoro_nb.ledger.schema import CHAINED, GENESIS, MIGRATIONS, REAL_COLUMNS, SEALABLE
from etoro_nb.ledger.spool import Spool, orphans
from etoro_nb.ledger.tables import TABLES
from etoro_nb.ledger.upkeep import CHECKPOINT_EVERY, Upkeep
from etoro_nb.ledger.writer import Job, Writer
from etoro_nb.migrations import migrate

if TYPE_CHECKING:
    import polars as pl

    from etoro_nb.ledger.checkpoint import Checkpoint, CheckpointConfig, Checkpointer

Durability = Literal["normal", "full"]
DEFAULT_SEAL_THRESHOLD = 20_000
KEY_BYTES = 32  # the HMAC key of token fingerprints
LOCK_DEADLINE = 60.0
SEAL_CHECK_EVERY = 1000  # rows between checks of the live part against the seal threshold
OUTCOME_LINGER = 0.005  # seconds an outcome waits for the next intent to share its commit
__all__ = ["Durability", "Ledger", "Verification", "chain_hash", "now_us", "sealed_through"]
_COLUMN_SETS = {table: frozenset(columns) for table, columns in CHAINED.items()}
log = logging.getLogger("etoro_nb.ledger")
_POSTGRES = ("etoro_nb.ledger.postgres", "PostgresLedger")  # Ledger.open's postgresql:// backend


def _stored(column: str, value: Any) -> Any:
    if value is None:
        return None
    if column in REAL_COLUMNS:
        return float(value)
    if isinstance(value, bool):
        return int(value)
    return value


def _chained_row(table: str, seq: int, prev: str, values: dict[str, Any]) -> tuple[Any, ...]:
    """A row ready to insert: its values (hashed exactly as SQLite will give them back,
    REAL stays float, as its table's spec says the hash covers them), its predecessor's
    hash and its own."""
    get = values.get
    row = [seq, *[_stored(c, get(c)) for c in CHAINED[table][1:]]]
    return (*row, prev, chain_hash(prev, TABLES[table].hashed_values(row)))


def _insert_sql(table: str) -> str:
    columns = CHAINED[table]
    placeholders = ", ".join("?" * (len(columns) + 2))
    return (f"INSERT INTO {table} ({', '.join(columns)}, prev_hash, row_hash) "
            f"VALUES ({placeholders})")


_INSERT = {table: _insert_sql(table) for table in CHAINED}
_HEAD = {table: f"SELECT seq, row_hash FROM {table} ORDER BY seq DESC LIMIT 1"
         for table in CHAINED}


class Ledger:
    """One ledger file: append events, learn token fingerprints, seal, verify.

    Safe to share between threads; open one per process (several processes may append to
    the same file at once). ``Ledger.open`` also opens a shared PostgreSQL ledger
    (``postgres.PostgresLedger``, a subclass: every reader and writer takes either).
    """

    backend: ClassVar[str] = "sqlite"

    @classmethod
    def open(cls, target: str | Path, *, checkpoint: CheckpointConfig | None = None,
             **options: Any) -> Ledger:
        """The ledger at ``target``: a file path (SQLite; ``options`` as for ``Ledger``) or a
        ``postgresql://`` URL (a shared PostgreSQL ledger, see ``postgres``)."""
        from etoro_nb.ledger.pg_connect import is_postgres

        if is_postgres(target):
            if options:
                raise ValueError(f"a PostgreSQL ledger takes no {', '.join(sorted(options))}: "
                                 "its intents are committed on the server before each request")
            # Named, not imported here: a backend subclasses Ledger, so it imports this module.
            backend = importlib.import_module(_POSTGRES[0])
            shared: Ledger = getattr(backend, _POSTGRES[1])(str(target), checkpoint=checkpoint)
            return shared
        return cls(target, checkpoint=checkpoint, **options)

    def __init__(self, path: str | Path, *, durability: Durability = "normal",
                 seal_threshold: int | None = DEFAULT_SEAL_THRESHOLD,
                 busy_timeout: float = 30.0, checkpoint: CheckpointConfig | None = None) -> None:
        if durability not in ("normal", "full"):
            raise ValueError("durability is 'normal' or 'full'")
        self.path = Path(path).expanduser().resolve()
        self.durability: Durability = durability
        self.seal_threshold = seal_threshold
        self.segments_dir = self.path.with_name(self.path.name + ".segments")
        self.spool_dir = self.path.with_name(self.path.name + ".spool")
        self._spool: Spool | None = None  # made by the first spooled row
        self._lock = threading.RLock()  # the writing connection
        self._read_lock = threading.Lock()  # the reading connection
        self._busy_timeout = busy_timeout
        self._reader: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._key = self._load_key()
            self._conn = self._connect()
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute(f"PRAGMA synchronous = {durability.upper()}")
            # Checkpoints copy and sync megabytes: the upkeep thread runs them, not an append.
            self._conn.execute("PRAGMA wal_autocheckpoint = 0")
            self._retrying(lambda: migrate(self._conn, MIGRATIONS))
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(f"cannot open the ledger at {self.path}: {exc}") from None
        self._fingerprints: dict[str, tuple[str, str]] = {}
        self._commits = 0
        self._upkeep = Upkeep(self)
        # Usage rows go through one writer thread; an outcome waits there for the next
        # intent (durability="full": it is committed, and synced, at once).
        self._writer = Writer(self._commit_jobs, name=f"ledger-writer:{self.path.name}",
                              linger=0.0 if durability == "full" else OUTCOME_LINGER,
                              drained=self._drained)
        self._live_cache: dict[str, Any] = {}  # scan's decoded live rows, by table
        self._checkpointer: Checkpointer | None = None
        if checkpoint is not None:
            from etoro_nb.ledger.checkpoint import Checkpointer

            try:
                self._checkpointer = Checkpointer(self, checkpoint)
            except BaseException:
                self._conn.close()  # no half-opened ledger left behind
                raise
        self._recover_spools()  # rows of processes that died before committing them

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None,
                               check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
        return conn

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r}, durability={self.durability!r})"

    @property
    def where(self) -> str:
        """Where the ledger is, as messages and checkpoints name it (never a password)."""
        return str(self.path)

    def _key_folders(self) -> tuple[Path, ...]:
        """The folders a checkpoint's signing key must not be in (the ledger's own)."""
        return (self.path.parent, self.segments_dir)

    def _verify_own(self, checkpoints: Sequence[Checkpoint] | None,
                    source: str) -> Verification | None:
        """A backend's own verification against ``checkpoints`` (None: ``verify``'s walk of
        the SQLite file and its segments)."""
        return None

    def _signed_state(self) -> tuple[dict[str, tuple[int, str]], str]:
        """Every chain head and the ledger's identity, from one snapshot (a checkpoint's)."""
        from etoro_nb.ledger.checkpoint import identity

        with self.snapshot() as conn:
            return {t: self._head(t, conn) for t in CHAINED}, identity(conn, self.path)

    # -- keys and fingerprints ----------------------------------------------------------
    def _load_key(self) -> bytes:
        """The fingerprint key beside the ledger, made on first use. It appears whole or not
        at all (written aside, then linked into place), so processes opening a new ledger
        at once all read the same key."""
        key_file = self.path.with_name(self.path.name + ".key")
        if not key_file.exists():
            publish_once(key_file, secrets.token_hex(KEY_BYTES).encode())
        try:
            key = bytes.fromhex(key_file.read_text().strip())
        except ValueError:
            key = b""
        if len(key) != KEY_BYTES:
            raise LedgerError(f"the ledger's key file {key_file} is damaged: expected "
                              f"{KEY_BYTES} bytes in hex")
        return key

    def fingerprint(self, secret: str) -> str:
        """A keyed fingerprint of a token secret: stable in this ledger, useless elsewhere."""
        return hmac.new(self._key, secret.encode(), hashlib.sha256).hexdigest()[:32]

    def learn_token(self, secret: str, token_id: str, portfolio_id: str) -> None:
        """Remember which token a secret is (the client learns it when it mints)."""
        fp = self.fingerprint(secret)
        self._write(lambda: self._conn.execute(
            "INSERT OR IGNORE INTO token_fingerprints (fingerprint, token_id, portfolio_id, "
            "ts_us) VALUES (?, ?, ?, ?)", (fp, token_id, portfolio_id, now_us())))
        self._fingerprints[fp] = (token_id, portfolio_id)

    def token_for(self, fingerprint: str) -> tuple[str, str] | None:
        """(token id, portfolio id) of a fingerprint, if the ledger learnt it."""
        if fingerprint not in self._fingerprints:
            # The reading connection: a writer waiting for the lock never holds this up.
            with self._reading() as conn:
                row = conn.execute(
                    "SELECT token_id, portfolio_id FROM token_fingerprints WHERE fingerprint = ?",
                    (fingerprint,)).fetchone()
            if row is None:
                return None
            self._fingerprints[fingerprint] = (row[0], row[1])
        return self._fingerprints[fingerprint]

    # -- appending ----------------------------------------------------------------------
    def append_usage(self, **values: Any) -> int:
        """Append one usage event and wait for its commit; returns its sequence number."""
        return self._writer.commit("usage_events", self._checked("usage_events", values))

    def submit_usage(self, values: dict[str, Any], *, deferred: bool = False) -> Future[int]:
        """Hand one usage event to the writer thread; the future holds its sequence number
        once committed (or the LedgerError). A ``deferred`` event (an outcome) is committed
        with the next event handed over, or within ``OUTCOME_LINGER`` seconds, and always
        before ``close()`` returns; rows are committed in the order handed over."""
        return self._writer.submit("usage_events", self._checked("usage_events", values),
                                   deferred=deferred)

    def spool_usage(self, values: dict[str, Any], *, required: bool = True,
                    on_loop: bool = False) -> None:
        """Write one usage event to this process's spool (one ``os.write``), then hand it to
        the writer thread, nobody waiting: it is committed with the rows around it within
        ``OUTCOME_LINGER`` seconds (or once ``BATCH_ROWS`` are queued), before reads, at
        ``close()`` and at interpreter exit. ``required`` (an intent): on return the event
        is as durable as a commit at ``durability="normal"``; a LedgerError if the spool
        can't be written or the writer failed to commit earlier rows, and then nothing is
        queued. Not required (an outcome): its line is written with the next intent's, and
        it is queued whatever happens. A caller that fills a batch commits it itself, unless
        it runs an event loop (``on_loop``): then the writer thread does."""
        values = self._checked("usage_events", values)
        spool = self._spool or self._open_spool()
        if spool.failed is not None and required:
            raise LedgerError(f"{spool.failed}; its rows not yet committed are kept in "
                              f"{self.spool_dir} and recovered by the next Ledger opened on "
                              "it once this one is closed")
        self._writer.spool("usage_events", values,
                           lambda: spool.append(values, write=required), commit_here=not on_loop)

    def _drained(self) -> None:
        if self._spool is not None:
            with suppress(OSError):  # left as it is: recovery skips committed rows
                self._spool.drained()

    def _open_spool(self) -> Spool:
        with self._lock:
            if self._spool is None:
                self._spool = Spool(self.spool_dir)
            return self._spool

    def _recover_spools(self) -> int:
        """Append the rows of dead processes' spools (those whose lock is free) that are
        not in the ledger yet, in spool order, then remove the spools; returns the rows
        appended. A spool that can't be recovered now is left for a later try."""
        appended = 0
        try:
            for path, rows in orphans(self.spool_dir):
                try:
                    appended += self._recover(rows)
                except Exception as exc:  # opening the ledger must not fail for it
                    log.warning("could not recover the ledger spool %s: %s", path, exc)
                    continue
                path.unlink(missing_ok=True)
        except LedgerError as exc:
            log.warning("%s", exc)
        return appended

    def _recover(self, rows: list[dict[str, Any]]) -> int:
        """Append the spooled rows the ledger lacks (an intent is known by request id,
        attempt and phase; it may have been committed, even sealed, before its process
        died), keeping their timestamps. A row SQLite refuses on its own is logged and
        dropped: no later try could store it."""
        table = "usage_events"
        valid = []
        for row in rows:
            try:
                if not {"ts_us", "request_id", "attempt", "phase"} <= row.keys():
                    raise ValueError("no ts_us, request_id, attempt or phase")
                valid.append(self._checked(table, row))
            except ValueError as exc:
                log.error("dropping a damaged row of a ledger spool: %s", exc)

        def work() -> tuple[int, int]:
            have = self._present(valid)
            missing = [r for r in valid if (r["request_id"], r["attempt"], r["phase"]) not in have]
            seq, prev = self._head(table)
            for values in missing:
                try:
                    self._conn.execute("SAVEPOINT spooled")
                    row = _chained_row(table, seq + 1, prev, values)
                    self._conn.execute(_INSERT[table], row)
                    self._conn.execute("RELEASE spooled")
                except sqlite3.IntegrityError as exc:
                    self._conn.execute("ROLLBACK TO spooled")
                    self._conn.execute("RELEASE spooled")
                    log.error("dropping a row of a ledger spool the ledger refuses: %s", exc)
                    continue
                seq, prev = seq + 1, row[-1]
            return len(missing), seq

        if not valid:
            return 0
        appended, newest = self._write(work)
        if self._checkpointer is not None and appended:
            self._checkpointer.appended(table, newest)
        return int(appended)

    def _present(self, rows: list[dict[str, Any]]) -> set[tuple[str, int, str]]:
        """Which of the rows' (request id, attempt, phase) the ledger holds: live, or in a
        segment sealed after the oldest of them was made."""
        have: set[tuple[str, int, str]] = set()
        for request_id in {r["request_id"] for r in rows}:
            have.update(self._conn.execute(
                "SELECT request_id, attempt, phase FROM usage_events WHERE request_id = ?",
                (request_id,)))
        wanted = {(r["request_id"], r["attempt"], r["phase"]) for r in rows} - have
        if wanted:
            files = [self.segments_dir / f for (f,) in self._conn.execute(
                "SELECT file FROM segments WHERE table_name = 'usage_events' AND ts_us >= ?",
                (min(r["ts_us"] for r in rows),))]
            if files:
                import polars as pl

                sealed = pl.scan_parquet(files).select("request_id", "attempt", "phase").filter(
                    pl.col("request_id").is_in(sorted({w[0] for w in wanted}))).collect()
                have.update(sealed.iter_rows())
        return have

    def flush(self, timeout: float | None = None) -> bool:
        """Commit the deferred events handed over so far and wait for them (reads do this
        first, so a caller reads its own events); False if ``timeout`` passed first."""
        return self._writer.flush(timeout)

    def extend_usage(self, rows: Sequence[dict[str, Any]]) -> int:
        """Append many usage events in one transaction (bulk loads such as ``synth``);
        returns the last sequence number. Then seals, in this thread, if the live part is
        past the threshold."""
        table = "usage_events"
        self.flush()  # after the events handed over before them

        def work() -> int:
            seq, prev = self._head(table)
            batch = []
            for values in rows:
                seq += 1
                batch.append(_chained_row(table, seq, prev, values))
                prev = batch[-1][-1]
            self._conn.executemany(_INSERT[table], batch)
            return seq

        last: int = self._write(work)
        if self._checkpointer is not None:
            self._checkpointer.appended(table, last)
        self._upkeep.checkpoint()  # a bulk write grows the WAL by megabytes at once
        if self.seal_threshold is not None and self.live_count(table) >= self.seal_threshold:
            self.seal(table)
        return last

    def append_lifecycle(self, **values: Any) -> int:
        for key in ("scopes", "ips_whitelist", "detail"):
            if values.get(key) is not None and not isinstance(values[key], str):
                values[key] = json.dumps(values[key], sort_keys=True)
        return self._append("lifecycle_events", values)

    @staticmethod
    def _checked(table: str, values: dict[str, Any]) -> dict[str, Any]:
        """The values, stamped now unless they say when; unknown columns are refused here,
        in the caller, not in the writer thread."""
        values.setdefault("ts_us", now_us())
        if not values.keys() <= _COLUMN_SETS[table]:
            unknown = values.keys() - _COLUMN_SETS[table]
            raise ValueError(f"unknown {table} columns: {', '.join(sorted(unknown))}")
        return values

    def _append(self, table: str, values: dict[str, Any]) -> int:
        """Append one row in the calling thread (lifecycle events)."""
        return self._commit_jobs([Job(table, self._checked(table, values), deferred=False)])[0]

    def _commit_jobs(self, jobs: Sequence[Job]) -> list[int]:
        """Insert the rows, in order, in one transaction; returns their sequence numbers."""
        def work() -> list[int]:
            heads: dict[str, tuple[int, str]] = {}
            seqs = []
            for job in jobs:
                seq, prev = heads.get(job.table) or self._head(job.table)
                row = _chained_row(job.table, seq + 1, prev, job.values)
                # One row at a time: each execute lets go of the interpreter lock, so a
                # request thread never waits for a whole batch to be built (executemany
                # would hold it while every row is hashed).
                self._conn.execute(_INSERT[job.table], row)
                heads[job.table] = (seq + 1, row[-1])
                seqs.append(seq + 1)
            return seqs

        try:
            seqs: list[int] = self._write(work)
        except Exception as exc:
            if (self._spool is not None and isinstance(exc, LedgerError)
                    and any(job.spooled for job in jobs)):
                # The ledger can't be written: fail closed (the next intent raises; the
                # spool keeps every row). A row refused on its own is retried alone by the
                # writer and fails only itself.
                self._spool.failed = exc
            raise
        if self._checkpointer is not None:
            for job, seq in zip(jobs, seqs, strict=True):
                self._checkpointer.appended(job.table, seq)
        if self.seal_threshold is not None:
            for job, seq in zip(jobs, seqs, strict=True):
                if seq % SEAL_CHECK_EVERY == 0 and job.table in SEALABLE:
                    self._upkeep.seal(job.table, seq)  # the upkeep thread checks and seals
        return seqs

    def _insert_chained(self, table: str, values: dict[str, Any]) -> int:
        """Insert one row inside the caller's transaction (sealing's segments row)."""
        seq, prev = self._head(table)
        self._conn.execute(_INSERT[table], _chained_row(table, seq + 1, prev, values))
        return seq + 1

    def _head(self, table: str, conn: sqlite3.Connection | None = None) -> tuple[int, str]:
        """The table's last row (number, hash), on ``conn`` (a reader's snapshot) or, by
        default, on the writing connection inside its transaction."""
        conn = conn or self._conn
        row = conn.execute(_HEAD[table]).fetchone()
        if row is not None:
            return int(row[0]), str(row[1])
        if table in SEALABLE:
            seg = conn.execute(
                "SELECT last_seq, last_hash FROM segments WHERE table_name = ? "
                "ORDER BY seq DESC LIMIT 1", (table,)).fetchone()
            if seg is not None:
                return int(seg[0]), str(seg[1])
        return 0, GENESIS

    def _write(self, work: Any) -> Any:
        """Run ``work`` in one immediate transaction, waiting out other writers."""
        def attempt() -> Any:
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    result = work()
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
                self._commits += 1
                if self._commits % CHECKPOINT_EVERY == 0:
                    self._upkeep.checkpoint()
                return result
        try:
            return self._retrying(attempt)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot write the ledger at {self.path}: {exc}") from None

    def _retrying(self, fn: Any) -> Any:
        deadline = time.monotonic() + LOCK_DEADLINE
        delay = 0.001
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or time.monotonic() > deadline:
                    raise
                time.sleep(delay)  # another writer holds the lock: back off and retry
                delay = min(delay * 2, 0.05)

    # -- reading ------------------------------------------------------------------------
    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """The reading connection inside one read transaction: a consistent snapshot."""
        with self._read_lock:
            if self._reader is None:
                try:
                    self._reader = self._connect()
                except sqlite3.Error as exc:
                    raise LedgerError(f"cannot read the ledger at {self.path}: {exc}") from None
            self._reader.execute("BEGIN")
            try:
                yield self._reader
            finally:
                self._reader.execute("COMMIT")

    def live_count(self, table: str) -> int:
        """Rows of ``table`` still in SQLite (not yet in a segment)."""
        self.flush()
        with self._reading() as conn:
            after = sealed_through(conn, table) if table in SEALABLE else 0
            return int(conn.execute(f"SELECT count(*) FROM {table} WHERE seq > ?",
                                    (after,)).fetchone()[0])

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A consistent read of segments and live rows in which every sealed row is in its
        segment only (a seal can't slip in between; deletions it left are finished first).
        """
        from etoro_nb.ledger.sealing import tidy

        for _ in range(100):
            for table in SEALABLE:
                tidy(self, table)
            with self._reading() as conn:
                if not any(conn.execute(f"SELECT 1 FROM {t} WHERE seq <= ? LIMIT 1",
                                        (sealed_through(conn, t),)).fetchone()
                           for t in SEALABLE):
                    yield conn
                    return
        raise LedgerError(f"the ledger at {self.path} is being sealed faster than it can be "
                          "read; try again")

    def scan(self, table: str, *, since: datetime | date | None = None,
             until: datetime | date | None = None, **equal: str | int | None) -> pl.LazyFrame:
        """The events of ``table``, sealed and live, as one lazy frame in ledger order
        (see ``scan``): ``since`` (inclusive) and ``until`` (exclusive) bound the
        timestamp, each keyword an equality filter on a column (None: no filter)."""
        from etoro_nb.ledger.scan import scan

        self.flush()
        return scan(self, table, since=since, until=until, **equal)

    def segments(self, table: str | None = None) -> list[dict[str, Any]]:
        with self._reading() as conn:
            cur = conn.execute(
                "SELECT * FROM segments" + (" WHERE table_name = ?" if table else "") +
                " ORDER BY seq", (table,) if table else ())
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def wait_for_upkeep(self, timeout: float | None = None) -> bool:
        """Block until the seals and checkpoints asked for so far are done (they run in
        the background); False if ``timeout`` seconds passed first."""
        return self._upkeep.wait(timeout)

    def _seal_if_due(self, table: str, through: int) -> None:
        """The upkeep thread's seal: rows up to ``through``, if that many are live."""
        from etoro_nb.ledger.sealing import seal

        if self.seal_threshold is None:
            return
        with self._reading() as conn:
            due = through - sealed_through(conn, table) >= self.seal_threshold
        if due:
            seal(self, table, through=through, background=True)

    def _checkpoint(self) -> None:
        """Copy the WAL into the database file without blocking writers or readers."""
        with self._read_lock:
            if self._reader is None:
                self._reader = self._connect()
            self._reader.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        """Commit the deferred events, then close the file (after a last checkpoint, if
        checkpoints are on and events came)."""
        self._writer.close()
        if self._spool is not None:
            self._spool.close(drained=True)  # removed unless a commit failed: then recovered
        self._upkeep.close()  # first: its seals and recoveries add rows to checkpoint
        if self._checkpointer is not None:
            self._checkpointer.close()
        with self._read_lock:
            self._live_cache.clear()
            if self._reader is not None:
                self._reader.close()
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sealing and verifying live in their own modules -----------------------------------
    def seal(self, table: str = "usage_events") -> dict[str, Any] | None:
        """Move the table's rows into an immutable Parquet segment (see ``sealing``)."""
        from etoro_nb.ledger.sealing import seal

        return seal(self, table)

    def verify(self, checkpoint: str | Path | None = None, *,
               key: str | Path | None = None) -> Verification:
        """Recompute the whole chain; report the first bad row or segment. With a checkpoint
        file, also prove no row up to its signed heads was removed or rewritten (``key``: the
        signing key's file or its ``.pub``; see ``verify`` and ``checkpoint``)."""
        from etoro_nb.ledger.verify import verify

        self.flush()
        return verify(self, checkpoint, key=key)
