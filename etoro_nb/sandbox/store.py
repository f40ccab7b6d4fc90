"""The sandbox's state in SQLite: schema, transactions and id sequences.

The schema is versioned like the ledger's: named migrations (``MIGRATIONS``) applied once
each by ``etoro_nb.migrations`` and recorded in the database, so a state file made by an
older version is brought up to date when a newer sandbox opens it.

One connection serves the whole app. Every request runs its domain work inside one
``transaction()`` without awaiting, so each request is atomic and requests never
interleave; a file database survives restarts of the server.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from etoro_nb.migrations import Migrations, migrate

# 0001 keeps IF NOT EXISTS: state files made before the schema had versions already hold
# these tables, and adopt the version by recording it.
STATE_V1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, next INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    gcid INTEGER PRIMARY KEY,
    username TEXT NOT NULL,
    real_cid INTEGER NOT NULL UNIQUE,
    demo_cid INTEGER NOT NULL UNIQUE,
    portfolio_id TEXT
);
CREATE TABLE IF NOT EXISTS accounts (
    cid INTEGER PRIMARY KEY,
    gcid INTEGER NOT NULL REFERENCES users(gcid),
    mode TEXT NOT NULL CHECK (mode IN ('real', 'demo')),
    credit REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS portfolios (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT,
    gcid INTEGER NOT NULL REFERENCES users(gcid),
    owner_gcid INTEGER NOT NULL REFERENCES users(gcid),
    virtual_balance REAL NOT NULL,
    investment REAL NOT NULL,
    mirror_id INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    deleted_at TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS portfolios_live_name
    ON portfolios (lower(name)) WHERE deleted_at IS NULL;
CREATE TABLE IF NOT EXISTS mirrors (
    mirror_id INTEGER PRIMARY KEY,
    cid INTEGER NOT NULL REFERENCES accounts(cid),
    parent_cid INTEGER NOT NULL REFERENCES accounts(cid),
    parent_username TEXT NOT NULL,
    portfolio_id TEXT NOT NULL REFERENCES portfolios(id),
    initial_investment REAL NOT NULL,
    available_amount REAL NOT NULL,
    closed_net_profit REAL NOT NULL DEFAULT 0,
    started_at TEXT NOT NULL,
    closed_at TEXT,
    closed_value REAL
);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    portfolio_id TEXT NOT NULL REFERENCES portfolios(id),
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL,
    application TEXT NOT NULL,
    scopes TEXT NOT NULL,
    ips TEXT NOT NULL,
    expires_at TEXT,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS tokens_live_name
    ON tokens (portfolio_id, name) WHERE revoked_at IS NULL;
CREATE TABLE IF NOT EXISTS orders (
    order_id INTEGER PRIMARY KEY,
    cid INTEGER NOT NULL REFERENCES accounts(cid),
    reference_id TEXT NOT NULL,
    token TEXT NOT NULL,
    api TEXT NOT NULL,
    order_type TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'executed', 'cancelled', 'rejected')),
    instrument_id INTEGER NOT NULL,
    is_buy INTEGER NOT NULL,
    leverage INTEGER NOT NULL,
    settlement TEXT NOT NULL,
    amount REAL,
    units REAL,
    trigger_rate REAL,
    trigger_direction TEXT CHECK (trigger_direction IN ('up', 'down')),
    stop_loss REAL,
    take_profit REAL,
    is_tsl INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    position_id INTEGER
);
CREATE INDEX IF NOT EXISTS orders_by_reference ON orders (cid, reference_id);
CREATE TABLE IF NOT EXISTS positions (
    position_id INTEGER PRIMARY KEY,
    cid INTEGER NOT NULL REFERENCES accounts(cid),
    order_id INTEGER NOT NULL,
    instrument_id INTEGER NOT NULL,
    is_buy INTEGER NOT NULL,
    leverage INTEGER NOT NULL,
    settlement TEXT NOT NULL,
    units REAL NOT NULL,
    initial_units REAL NOT NULL,
    amount REAL NOT NULL,
    initial_amount REAL NOT NULL,
    open_rate REAL NOT NULL,
    opened_at TEXT NOT NULL,
    stop_loss REAL NOT NULL,
    take_profit REAL NOT NULL,
    is_tsl INTEGER NOT NULL DEFAULT 0,
    mirror_id INTEGER NOT NULL DEFAULT 0,
    parent_position_id INTEGER NOT NULL DEFAULT 0,
    closed_at TEXT
);
CREATE TABLE IF NOT EXISTS close_orders (
    order_id INTEGER PRIMARY KEY,
    cid INTEGER NOT NULL,
    position_id INTEGER NOT NULL,
    instrument_id INTEGER NOT NULL,
    units REAL NOT NULL,
    token TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS trades (
    trade_id INTEGER PRIMARY KEY AUTOINCREMENT,
    cid INTEGER NOT NULL,
    position_id INTEGER NOT NULL,
    order_id INTEGER NOT NULL,
    instrument_id INTEGER NOT NULL,
    is_buy INTEGER NOT NULL,
    leverage INTEGER NOT NULL,
    units REAL NOT NULL,
    open_rate REAL NOT NULL,
    close_rate REAL NOT NULL,
    opened_at TEXT NOT NULL,
    closed_at TEXT NOT NULL,
    investment REAL NOT NULL,
    initial_investment REAL NOT NULL,
    net_profit REAL NOT NULL,
    stop_loss REAL NOT NULL,
    take_profit REAL NOT NULL,
    is_tsl INTEGER NOT NULL,
    parent_position_id INTEGER NOT NULL,
    mirror_id INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS trades_by_account ON trades (cid, closed_at);
CREATE TABLE IF NOT EXISTS idempotency (
    cid INTEGER NOT NULL,
    route TEXT NOT NULL,
    request_id TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (cid, route, request_id)
);
"""

MIGRATIONS: Migrations = {
    "0001_state": STATE_V1,
}

# Where each id sequence starts, so ids look like eToro's and never collide across kinds.
SEQUENCES = {
    "gcid": 3_100_000,
    "cid": 7_700_000,
    "mirror": 88_000_000,
    "order": 12_400_000,
    "position": 2_150_000_000,
    "uuid": 1,
}


class Store:
    """A SQLite connection with the sandbox schema, one lock and id sequences."""

    def __init__(self, path: str, seed: int) -> None:
        self.seed = seed
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA foreign_keys = ON")
        if path != ":memory:":
            self.conn.execute("PRAGMA journal_mode = WAL")
        migrate(self.conn, MIGRATIONS)
        self.lock = threading.RLock()
        with self.transaction():
            for name, start in SEQUENCES.items():
                self.conn.execute(
                    "INSERT OR IGNORE INTO counters (name, next) VALUES (?, ?)", (name, start)
                )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit of work: everything in it commits, or nothing does."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def next_id(self, name: str) -> int:
        row = self.conn.execute(
            "UPDATE counters SET next = next + 1 WHERE name = ? RETURNING next - 1", (name,)
        ).fetchone()
        return int(row[0])

    def new_uuid(self) -> str:
        """A UUID4-shaped id, reproducible from the seed and how many came before."""
        n = self.next_id("uuid")
        digest = hashlib.sha256(f"{self.seed}:{n}".encode()).digest()[:16]
        return str(uuid.UUID(bytes=digest, version=4))

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def close(self) -> None:
        with self.lock:
            self.conn.close()
