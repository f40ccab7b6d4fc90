"""The ledger on a shared PostgreSQL server: many processes on many hosts append to one
record, with the guarantees of the SQLite ledger enforced by the server.

Open it with ``Ledger.open("postgresql://role@host/db")`` or ``connect(ledger=URL)`` (or
``ETORO_NB_LEDGER=URL``); an administrator sets it up once with ``etoro-nb ledger
init-postgres`` (see ``pg_admin``). It is a ``Ledger``: the client, ``frames`` and the
checkpoints use it unchanged.

Same tables, same chain. The tables are made from the same specs by the same migrations
(translated, ``pg_schema``); each row stores ``prev_hash`` and ``row_hash`` exactly as in
SQLite, so ``verify`` and checkpoints work alike.

Concurrent writers: one chain per table, appends serialised by the server. A commit
takes a transaction-scoped advisory lock per table it appends to (in table order, so two
writers never deadlock), reads the table's head, inserts its rows chained after it and
commits; the lock is released only once the commit is visible, so the next writer chains
after it. Every row thus has one global sequence number and one predecessor, whatever
host wrote it: ``verify`` walks one chain per table and a checkpoint signs one head per
table, as for SQLite. The price is that commits of one table are serialised
(``bench/team_ledger.py`` measures it against SQLite); per-writer chains would append
without waiting but leave no single order to sign or audit. The primary key on ``seq``
backs the lock: two rows can never claim one place in the chain.

The lock is not held through the disk flush. An append commits with ``synchronous_commit
= off`` (the locks go as soon as the commit is in the WAL, and the next writer chains
after it), then makes one small WAL record in a transaction of its own that commits
synchronously, and only then returns. PostgreSQL flushes the WAL in order, so that flush
covers the append's commit too: nothing is acknowledged before it is on disk, and the
flushes of concurrent writers are shared (group commit). A server crash can lose only
appends not yet acknowledged, and only a suffix of the WAL: a row whose predecessor was
lost was written after it, so it is lost too, and the chain survives whole.

Write-ahead. There is no local spool: a spooled intent would let a request go out that
the shared record never saw. Every intent is committed on the server before its request
is sent (this ledger's durability is ``"full"``: the client waits for the commit). If the
server can't be reached, or refuses the commit, the append raises ``LedgerError`` and the
request is not sent; a lost connection is reopened at the next append. A commit whose
answer was lost with its connection is not retried (it may have landed): the request is
not sent, and the intent may show in the ledger without an outcome.

Never sealed: the rows stay on the server (``seal`` refuses; the ``segments`` table
stays empty). Reads (``scan``) run on a connection of their own, in one REPEATABLE READ
snapshot.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from etoro_nb.errors import LedgerError
from etoro_nb.ledger.chain import now_us
from etoro_nb.ledger.core import KEY_BYTES, Ledger, _chained_row
from etoro_nb.ledger.pg_connect import connect, is_postgres, redact
from etoro_nb.ledger.pg_schema import FINGERPRINT_KEY
from etoro_nb.ledger.schema import CHAINED, GENESIS, LEDGER_ID
from etoro_nb.ledger.writer import Job, Writer

if TYPE_CHECKING:
    import polars as pl
    import psycopg

    from etoro_nb.ledger.chain import Verification
    from etoro_nb.ledger.checkpoint import Checkpoint, CheckpointConfig

T = TypeVar("T")
_INSERT = {table: f"INSERT INTO {table} ({', '.join(columns)}, prev_hash, row_hash) VALUES "
                  f"({', '.join(['%s'] * (len(columns) + 2))})" for table, columns in CHAINED.items()}
_HEAD = {table: f"SELECT seq, row_hash FROM {table} ORDER BY seq DESC LIMIT 1" for table in CHAINED}


# An append's transaction commits asynchronously (its chain locks go before the disk
# flush); the transactional WAL message after COMMIT commits synchronously, so its flush
# covers the append's commit (see the module).
_BEGIN_ASYNC = "BEGIN; SELECT set_config('synchronous_commit', 'off', true)"
_COMMIT_FLUSHED = b"COMMIT; SELECT pg_logical_emit_message(true, 'etoro-nb', '')"


def chain_lock(table: str) -> int:
    """The advisory lock key that serialises appends to ``table`` (the same on every host)."""
    return zlib.crc32(f"etoro-nb ledger chain {table}".encode())


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class PostgresLedger(Ledger):
    """A ledger in a PostgreSQL database (see the module). Safe to share between threads;
    open one per process."""

    backend: ClassVar[str] = "postgresql"

    def __init__(self, url: str, *, checkpoint: CheckpointConfig | None = None) -> None:
        if not is_postgres(url):
            raise ValueError(f"a PostgreSQL ledger is named by a postgresql:// URL, not {redact(str(url))!r}")
        self._url = url
        self.durability = "full"  # every intent committed on the server before its request
        self.seal_threshold = None
        self._lock = threading.RLock()
        self._read_lock = threading.Lock()
        self._pg: psycopg.Connection[tuple[Any, ...]] | None = connect(url)
        self._pg_reader: psycopg.Connection[tuple[Any, ...]] | None = None
        try:
            self._ensure_schema(self._pg)
            self._key = self._shared_key(self._pg)
        except BaseException:
            self._pg.close()
            raise
        self._fingerprints: dict[str, tuple[str, str]] = {}
        self._live_cache: dict[str, Any] = {}
        self._spool = None
        self._writer = Writer(self._commit_jobs, name=f"ledger-writer:{self.where}", linger=0.0)
        self._checkpointer = None
        if checkpoint is not None:
            from etoro_nb.ledger.checkpoint import Checkpointer

            try:
                self._checkpointer = Checkpointer(self, checkpoint)
            except BaseException:
                self.close()
                raise

    @property
    def where(self) -> str:
        return redact(self._url)

    def _key_folders(self) -> tuple[Path, ...]:
        return ()  # no folder of the ledger's on this machine

    def __repr__(self) -> str:
        return f"PostgresLedger({self.where!r})"

    # -- opening ----------------------------------------------------------------------------
    def _ensure_schema(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        """Apply the migrations the database lacks, or say who must if this role can't."""
        import psycopg

        from etoro_nb.ledger.pg_admin import migrate, missing

        lacking: list[str] = []
        try:
            lacking = missing(conn)
            if lacking:
                migrate(conn)
        except psycopg.errors.InsufficientPrivilege:
            what = (f"lacks the migrations {', '.join(lacking)}, and this role may not apply them"
                    if lacking else "cannot be read by this role")
            raise LedgerError(
                f"the PostgreSQL ledger at {self.where} {what}: ask its administrator to run "
                "`etoro-nb ledger init-postgres URL --writer-role NAME`") from None
        except psycopg.Error as exc:
            raise LedgerError(f"cannot set up the PostgreSQL ledger at {self.where}: "
                              f"{_reason(exc)}") from None

    def _shared_key(self, conn: psycopg.Connection[tuple[Any, ...]]) -> bytes:
        """The fingerprint key all the ledger's writers share (``ledger_meta``)."""
        row = conn.execute("SELECT value FROM ledger_meta WHERE key = %s", (FINGERPRINT_KEY,)).fetchone()
        try:
            key = bytes.fromhex(str(row[0])) if row else b""
        except ValueError:
            key = b""
        if len(key) != KEY_BYTES:
            raise LedgerError(f"the PostgreSQL ledger at {self.where} has no sound {FINGERPRINT_KEY} "
                              f"in ledger_meta (expected {KEY_BYTES} bytes in hex)")
        return key

    # -- writing ----------------------------------------------------------------------------
    def _writing(self) -> psycopg.Connection[tuple[Any, ...]]:
        """The writing connection, opened again if it was lost (LedgerError: it can't be)."""
        if self._pg is None or self._pg.closed or self._pg.broken:
            if self._pg is not None:
                self._pg.close()
            self._pg = None
            self._pg = connect(self._url)
        return self._pg

    def _write(self, work: Callable[[psycopg.Connection[tuple[Any, ...]]], T], *,
               chained: bool = False) -> T:
        """Run ``work`` and commit what it began: a single statement commits itself; a
        transaction ``work`` opened is committed here (``chained``: one opened by
        ``_lock_heads``, committed asynchronously, whose WAL is then flushed before this
        returns, in the same round trip). A row the server refuses on its own (a CHECK)
        raises ValueError, anything else LedgerError; nothing is retried here."""
        import psycopg

        idle = psycopg.pq.TransactionStatus.IDLE
        with self._lock:
            conn = self._writing()
            try:
                try:
                    done = work(conn)
                    if conn.info.transaction_status != idle:
                        conn.execute(_COMMIT_FLUSHED if chained else b"COMMIT")
                except BaseException:
                    if not conn.broken and conn.info.transaction_status != idle:
                        with suppress(psycopg.Error):
                            conn.execute(b"ROLLBACK")
                    raise
                return done
            except (psycopg.errors.CheckViolation, psycopg.errors.NotNullViolation) as exc:
                raise ValueError(f"the PostgreSQL ledger refused a row: {_reason(exc)}") from None
            except psycopg.Error as exc:
                raise LedgerError(f"cannot write the PostgreSQL ledger at {self.where}: "
                                  f"{_reason(exc)}") from None

    @staticmethod
    def _lock_heads(conn: psycopg.Connection[tuple[Any, ...]],
                    tables: Sequence[str]) -> dict[str, tuple[int, str]]:
        """Begin a transaction that commits asynchronously, take the tables' chain locks (in
        table order) and read their heads after them: one round trip (several statements,
        each with its own snapshot, so the heads are read once the locks are held)."""
        locks = "; ".join(f"SELECT pg_advisory_xact_lock({chain_lock(t)})" for t in tables)
        heads = " UNION ALL ".join(f"(SELECT '{t}', seq, row_hash FROM {t} ORDER BY seq DESC LIMIT 1)"
                                   for t in tables)
        with conn.cursor() as cur:
            cur.execute(f"{_BEGIN_ASYNC}; {locks}; {heads}".encode())
            while cur.nextset():
                pass  # to the last result: the heads
            found = {str(t): (int(seq), str(h)) for t, seq, h in cur.fetchall()}
        return {t: found.get(t, (0, GENESIS)) for t in tables}

    def _commit_jobs(self, jobs: Sequence[Job]) -> list[int]:
        """Insert the rows in one transaction, each table's chain locked first (see the
        module); returns their sequence numbers."""
        def work(conn: psycopg.Connection[tuple[Any, ...]]) -> list[int]:
            heads = self._lock_heads(conn, sorted({job.table for job in jobs}))
            rows: dict[str, list[tuple[Any, ...]]] = {table: [] for table in heads}
            seqs = []
            for job in jobs:
                seq, prev = heads[job.table]
                row = _chained_row(job.table, seq + 1, prev, job.values)
                rows[job.table].append(row)
                heads[job.table] = (seq + 1, row[-1])
                seqs.append(seq + 1)
            with conn.cursor() as cur:
                for table, batch in rows.items():
                    if len(batch) == 1:
                        cur.execute(_INSERT[table], batch[0])
                    else:
                        cur.executemany(_INSERT[table], batch)
            return seqs

        seqs = self._write(work, chained=True)
        if self._checkpointer is not None:
            for job, seq in zip(jobs, seqs, strict=True):
                self._checkpointer.appended(job.table, seq)
        return seqs

    def _head(self, table: str, conn: Any = None) -> tuple[int, str]:
        """The table's last row (number, hash), on ``conn`` or the writing connection."""
        if conn is None:
            with self._lock:
                return self._head(table, self._writing())
        row = conn.execute(_HEAD[table]).fetchone()
        return (int(row[0]), str(row[1])) if row is not None else (0, GENESIS)

    def spool_usage(self, values: dict[str, Any], *, required: bool = True,
                    on_loop: bool = False) -> None:
        """No spool on a shared ledger: an intent (``required``) is committed before this
        returns, an outcome handed to the writer thread."""
        if required:
            self.append_usage(**values)
        else:
            self.submit_usage(values, deferred=True)

    def extend_usage(self, rows: Sequence[dict[str, Any]]) -> int:
        """Append many usage events in one transaction; returns the last sequence number."""
        self.flush()
        jobs = [Job("usage_events", self._checked("usage_events", dict(r)), False, future=None)
                for r in rows]
        return self._commit_jobs(jobs)[-1] if jobs else self._head("usage_events")[0]

    def learn_token(self, secret: str, token_id: str, portfolio_id: str) -> None:
        fp = self.fingerprint(secret)
        self._write(lambda conn: conn.execute(
            "INSERT INTO token_fingerprints (fingerprint, token_id, portfolio_id, ts_us) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (fingerprint) DO NOTHING",
            (fp, token_id, portfolio_id, now_us())))
        self._fingerprints[fp] = (token_id, portfolio_id)

    def token_for(self, fingerprint: str) -> tuple[str, str] | None:
        if fingerprint not in self._fingerprints:
            with self._reading() as conn:
                row = conn.execute("SELECT token_id, portfolio_id FROM token_fingerprints "
                                   "WHERE fingerprint = %s", (fingerprint,)).fetchone()
            if row is None:
                return None
            self._fingerprints[fingerprint] = (str(row[0]), str(row[1]))
        return self._fingerprints[fingerprint]

    # -- reading ----------------------------------------------------------------------------
    @contextmanager
    def _reading(self) -> Iterator[Any]:
        """The reading connection inside one REPEATABLE READ, read-only transaction."""
        import psycopg

        with self._read_lock:
            try:
                if self._pg_reader is None or self._pg_reader.closed or self._pg_reader.broken:
                    self._pg_reader = connect(self._url)
                with self._pg_reader.transaction():
                    self._pg_reader.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    yield self._pg_reader
            except psycopg.Error as exc:
                raise LedgerError(f"cannot read the PostgreSQL ledger at {self.where}: "
                                  f"{_reason(exc)}") from None

    snapshot = _reading  # never sealed: every read is a consistent snapshot of all rows

    def _signed_state(self) -> tuple[dict[str, tuple[int, str]], str]:
        with self._reading() as conn:
            heads = {table: self._head(table, conn) for table in CHAINED}
            row = conn.execute("SELECT value FROM ledger_meta WHERE key = %s", (LEDGER_ID,)).fetchone()
        if row is None:
            raise LedgerError(f"the ledger at {self.where} has no identity ({LEDGER_ID})")
        return heads, str(row[0])

    def _verify_own(self, checkpoints: Sequence[Checkpoint] | None,
                    source: str) -> Verification | None:
        from etoro_nb.ledger.pg_verify import verify_postgres

        return verify_postgres(self, checkpoints, source=source)

    def live_count(self, table: str) -> int:
        if table not in CHAINED:
            raise ValueError(f"table must be one of {', '.join(CHAINED)}, not {table!r}")
        self.flush()
        with self._reading() as conn:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(row[0]) if row else 0

    def scan(self, table: str, *, since: datetime | date | None = None,
             until: datetime | date | None = None, **equal: str | int | None) -> pl.LazyFrame:
        """The events of ``table`` as one lazy frame in ledger order, filtered on the server
        (see ``Ledger.scan``)."""
        from etoro_nb.ledger.pg_read import scan_postgres

        self.flush()
        return scan_postgres(self, table, since=since, until=until, equal=equal)

    def segments(self, table: str | None = None) -> list[dict[str, Any]]:
        return []  # never sealed

    def wait_for_upkeep(self, timeout: float | None = None) -> bool:
        return True  # no upkeep: nothing is sealed, the server checkpoints its own WAL

    def seal(self, table: str = "usage_events") -> dict[str, Any] | None:
        raise LedgerError("a PostgreSQL ledger is not sealed: its rows stay on the server")

    def _insert_chained(self, table: str, values: dict[str, Any]) -> int:
        raise LedgerError("a PostgreSQL ledger is not sealed: its rows stay on the server")

    def close(self) -> None:
        """Commit the rows handed over, write a last checkpoint if due, and disconnect."""
        self._writer.close()
        if self._checkpointer is not None:
            self._checkpointer.close()
        for lock, name in ((self._read_lock, "_pg_reader"), (self._lock, "_pg")):
            with lock:
                conn = getattr(self, name)
                if conn is not None:
                    conn.close()
                setattr(self, name, None)
