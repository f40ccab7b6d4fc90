"""Checkpoints: the ledger's chain heads, signed and kept outside the ledger.

The hash chain shows any edit that did not recompute the hashes after it, but on its own it
cannot show that the newest rows were removed, or that rows were rewritten and every later
hash recomputed: the result is again a consistent chain. A checkpoint closes that gap. It
records, for each chained table (``usage_events``, ``lifecycle_events``, ``segments``), the
sequence number and row hash of its newest row, with the time and the ledger's identity
(``ledger_meta.ledger_id``), signed with an Ed25519 key. Since each row hash covers every
row before it, ``verify`` against a checkpoint proves that every row up to the recorded
heads is still present and unchanged, sealed segments included.

The file is JSON lines, one checkpoint a line, appended to (never rewritten); ``verify``
checks every line for this ledger. Each line names the public key that signed it; what is
trusted is the key the verifier passes, never the one a line names.

The signing key must be kept apart from the ledger: whoever can rewrite the ledger and read
the key can sign a checkpoint of the rewrite. It is a PEM (PKCS#8) Ed25519 private key in a
file, by default ``~/.etoro-nb/checkpoint.key`` (or ``ETORO_NB_CHECKPOINT_KEY``), created on
first use with mode 0600 beside its public half ``<key>.pub`` (64 hex digits), which is all
an auditor needs to verify. A key in the ledger's own folder is refused. Keep the checkpoint
file apart too (another machine, write-once storage): an attacker who can truncate it can
drop the newest checkpoints and, with them, the proof for rows after the older ones.

Periodic checkpoints: ``Ledger(path, checkpoint=CheckpointConfig(to=FILE, ...))`` writes one
after every ``every_events`` appended events or, at the next append, once ``every_seconds``
have passed, and a last one when the ledger is closed. ``connect()`` turns this on for the
ledger it opens when ``ETORO_NB_CHECKPOINT`` names the file (``ETORO_NB_CHECKPOINT_EVERY``
and ``ETORO_NB_CHECKPOINT_SECONDS`` tune it). A periodic checkpoint signs the heads as they
are, unchecked (checking is a full walk); ``etoro-nb ledger checkpoint`` verifies first.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from time import monotonic
from typing import TYPE_CHECKING, Any, NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from etoro_nb.errors import ConfigurationError, LedgerError
from etoro_nb.ledger.files import publish_once
from etoro_nb.ledger.schema import CHAINED, LEDGER_ID

if TYPE_CHECKING:
    from etoro_nb.ledger.core import Ledger

log = logging.getLogger("etoro_nb.ledger")

ENV_CHECKPOINT = "ETORO_NB_CHECKPOINT"
ENV_CHECKPOINT_KEY = "ETORO_NB_CHECKPOINT_KEY"
ENV_CHECKPOINT_EVERY = "ETORO_NB_CHECKPOINT_EVERY"
ENV_CHECKPOINT_SECONDS = "ETORO_NB_CHECKPOINT_SECONDS"
DEFAULT_EVERY_EVENTS = 1000
DEFAULT_EVERY_SECONDS = 600.0
VERSION = 1
_DOMAIN = b"etoro-nb ledger checkpoint\n"  # a signature over a checkpoint is nothing else
_FIELDS = ("checkpoint", "ledger_id", "ledger", "ts", "heads", "key", "signature")


class CheckpointError(LedgerError):
    """A checkpoint that cannot vouch for anything: edited, signed by another key, or not a
    checkpoint at all."""


class Head(NamedTuple):
    """A chained table's newest row: its sequence number and row hash (0 and the genesis
    hash for an empty table)."""

    seq: int
    hash: str


@dataclass(frozen=True)
class Checkpoint:
    """One signed checkpoint, as read back (``line``: where in its file, 1-based)."""

    ledger_id: str
    ledger: str
    ts: datetime
    heads: Mapping[str, Head]
    key: str
    line: int = 0

    def describe(self) -> str:
        heads = ", ".join(f"{table} to row {head.seq}" for table, head in self.heads.items())
        return f"checkpoint of {self.ts.isoformat()} ({heads})"


@dataclass(frozen=True)
class CheckpointConfig:
    """Periodic checkpoints for a ``Ledger``: append one to ``to`` after ``every_events``
    appended events, or at the first append once ``every_seconds`` have passed (``None``
    turns either trigger off), and one when the ledger closes. ``key``: the signing key's
    file (default ``ETORO_NB_CHECKPOINT_KEY``, else ``~/.etoro-nb/checkpoint.key``)."""

    to: str | Path
    key: str | Path | None = None
    every_events: int | None = DEFAULT_EVERY_EVENTS
    every_seconds: float | None = DEFAULT_EVERY_SECONDS

    def __post_init__(self) -> None:
        if self.every_events is not None and (isinstance(self.every_events, bool)
                                              or not isinstance(self.every_events, int)
                                              or self.every_events < 1):
            raise ValueError(f"every_events is a whole number of events, at least 1, or None "
                             f"(got {self.every_events!r})")
        if self.every_seconds is not None and not self.every_seconds > 0:
            raise ValueError(f"every_seconds is a number of seconds above 0, or None "
                             f"(got {self.every_seconds!r})")


def checkpoint_from_env(env: Mapping[str, str] | None = None) -> CheckpointConfig | None:
    """The periodic checkpoints ``connect()`` sets up: ``ETORO_NB_CHECKPOINT`` names the
    file (unset: none), ``ETORO_NB_CHECKPOINT_EVERY`` (events, default 1000) and
    ``ETORO_NB_CHECKPOINT_SECONDS`` (default 600) say how often."""
    env = os.environ if env is None else env
    to = env.get(ENV_CHECKPOINT, "").strip()
    if not to:
        return None

    def number(name: str, kind: type[int] | type[float], default: float) -> Any:
        raw = env.get(name, "").strip()
        try:
            value = kind(raw) if raw else default
        except ValueError:
            value = None
        if value is None or not value > 0:
            what = "a whole number above 0" if kind is int else "a number of seconds above 0"
            raise ConfigurationError(f"{name} must be {what}, got {raw!r}")
        return value

    return CheckpointConfig(to=Path(to).expanduser(), key=env.get(ENV_CHECKPOINT_KEY) or None,
                            every_events=number(ENV_CHECKPOINT_EVERY, int, DEFAULT_EVERY_EVENTS),
                            every_seconds=number(ENV_CHECKPOINT_SECONDS, float,
                                                 DEFAULT_EVERY_SECONDS))


# -- keys ----------------------------------------------------------------------------------
def key_path(chosen: str | Path | None = None, *, env: Mapping[str, str] | None = None) -> Path:
    """The signing key's file: the argument, else ``ETORO_NB_CHECKPOINT_KEY``, else
    ``~/.etoro-nb/checkpoint.key``."""
    env = os.environ if env is None else env
    if chosen is not None:
        return Path(chosen).expanduser()
    if env.get(ENV_CHECKPOINT_KEY):
        return Path(env[ENV_CHECKPOINT_KEY]).expanduser()
    return Path.home() / ".etoro-nb" / "checkpoint.key"


def public_hex(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()


def signing_key(path: str | Path | None = None) -> Ed25519PrivateKey:
    """The private key in ``path`` (see ``key_path``), made on first use: mode 0600, written
    aside and linked into place (so processes starting at once share one key), with its
    public half in ``<key>.pub``."""
    file = key_path(path)
    if not file.exists():
        file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        publish_once(file, pem)
    key = _load(file)
    if not isinstance(key, Ed25519PrivateKey):
        raise LedgerError(f"{file} holds a public key: signing a checkpoint needs the private "
                          "key file")
    pub = file.with_name(file.name + ".pub")
    if not pub.exists():
        pub.write_text(public_hex(key.public_key()) + "\n")
    return key


def public_key(path: str | Path | None = None) -> Ed25519PublicKey:
    """The key checkpoints are verified with, from a private key file or its ``.pub``
    (see ``key_path``); never creates one."""
    file = key_path(path)
    if not file.is_file():
        raise LedgerError(f"no checkpoint key at {file}: pass the key file that signed the "
                          "checkpoints, or its .pub")
    key = _load(file)
    return key.public_key() if isinstance(key, Ed25519PrivateKey) else key


def _load(file: Path) -> Ed25519PrivateKey | Ed25519PublicKey:
    data = file.read_bytes()
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_private_key(data, password=None)
            if isinstance(key, Ed25519PrivateKey):
                return key
        else:
            return Ed25519PublicKey.from_public_bytes(bytes.fromhex(data.decode().strip()))
    except (ValueError, TypeError, UnicodeDecodeError):
        pass
    raise LedgerError(f"{file} is not a checkpoint key: expected an unencrypted Ed25519 private "
                      "key (PEM) or its public half (64 hex digits)")


def refuse_beside(ledger: Ledger, file: Path) -> None:
    """A signing key in the ledger's folder is no key at all: refuse it."""
    folder = file.expanduser().resolve().parent
    if folder in ledger._key_folders():
        raise LedgerError(f"the checkpoint key {file} sits in the ledger's folder {folder}: keep "
                          "it apart (whoever can change the ledger there could also re-sign it)")


# -- writing and reading ---------------------------------------------------------------------
def ledger_identity(ledger: Ledger) -> str:
    """The ledger's random identity (made by its migration), which checkpoints name."""
    return ledger._signed_state()[1]


def identity(conn: sqlite3.Connection, path: Path) -> str:
    row = conn.execute("SELECT value FROM ledger_meta WHERE key = ?", (LEDGER_ID,)).fetchone()
    if row is None:
        raise LedgerError(f"the ledger at {path} has no identity ({LEDGER_ID} is missing from "
                          "ledger_meta)")
    return str(row[0])


def _message(record: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in record.items() if k != "signature"}
    return _DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":"),
                                ensure_ascii=False).encode()


def write_checkpoint(ledger: Ledger, to: str | Path,
                     key: Ed25519PrivateKey | str | Path | None = None) -> Checkpoint:
    """Sign the ledger's current heads and append them to ``to`` (made if missing).
    ``key``: a loaded key, or its file (see ``key_path``; created on first use)."""
    if not isinstance(key, Ed25519PrivateKey):
        file = key_path(key)
        refuse_beside(ledger, file)
        key = signing_key(file)
    state, ledger_id = ledger._signed_state()  # every head and the identity from one moment
    heads = {table: Head(*head) for table, head in state.items()}
    record: dict[str, Any] = {
        "checkpoint": VERSION, "ledger_id": ledger_id, "ledger": ledger.where,
        "ts": datetime.now(UTC).isoformat(timespec="microseconds"),
        "heads": {table: {"seq": head.seq, "hash": head.hash} for table, head in heads.items()},
        "key": public_hex(key.public_key()),
    }
    record["signature"] = key.sign(_message(record)).hex()
    line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
    out = Path(to).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    # One write of a whole line in append mode: processes sharing the file never interleave.
    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return _parsed(record, 0)


def read_checkpoints(file: str | Path, key: Ed25519PublicKey) -> list[Checkpoint]:
    """Every checkpoint in ``file``, each checked against ``key``. A line that is not a
    checkpoint, was edited, or was signed by another key raises ``CheckpointError``."""
    path = Path(file).expanduser()
    if not path.is_file():
        raise LedgerError(f"no checkpoint file at {path}")
    trusted = public_hex(key)
    out = []
    for number, text in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not text.strip():
            continue
        where = f"{path.name} line {number}"
        try:
            record = json.loads(text)
            if not isinstance(record, dict) or set(record) != set(_FIELDS):
                raise ValueError(f"expected the fields {', '.join(_FIELDS)}")
            checkpoint = _parsed(record, number)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise CheckpointError(f"{where} is not a checkpoint ({exc})") from None
        if record["key"] != trusted:
            raise CheckpointError(
                f"{where} was signed by another key ({str(record['key'])[:16]}...), not by the "
                f"checkpoint key you trust ({trusted[:16]}...): it proves nothing about this "
                "ledger")
        try:
            key.verify(bytes.fromhex(record["signature"]), _message(record))
        except (InvalidSignature, ValueError, TypeError):
            raise CheckpointError(f"{where} does not match its signature: the checkpoint was "
                                  "edited after it was signed") from None
        out.append(checkpoint)
    return out


def _parsed(record: Mapping[str, Any], line: int) -> Checkpoint:
    if record["checkpoint"] != VERSION:
        raise ValueError(f"version {record['checkpoint']!r}, this etoro-nb reads {VERSION}")
    heads = {}
    for table, head in record["heads"].items():
        if table not in CHAINED:
            raise ValueError(f"unknown table {table!r}")
        seq, digest = head["seq"], head["hash"]
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0 or not isinstance(
                digest, str):
            raise ValueError(f"a bad head for {table}")
        heads[table] = Head(seq, digest)
    ts = datetime.fromisoformat(record["ts"])
    return Checkpoint(str(record["ledger_id"]), str(record["ledger"]), ts, heads,
                      str(record["key"]), line)


# -- periodic checkpoints from a writing process ---------------------------------------------
class Checkpointer:
    """Writes a ledger's periodic checkpoints (``Ledger`` calls ``appended`` and ``close``).

    A checkpoint that cannot be written is logged, not raised: the events it would cover are
    already committed, and the next one covers them too."""

    def __init__(self, ledger: Ledger, config: CheckpointConfig) -> None:
        self.ledger = ledger
        self.config = config
        self.to = Path(config.to).expanduser()
        file = key_path(config.key)
        refuse_beside(ledger, file)
        try:
            self._key = signing_key(file)
            self.to.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.to, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
        except OSError as exc:
            raise LedgerError(f"cannot set up checkpoints to {self.to} with the key {file}: "
                              f"{exc}") from None
        self._lock = threading.Lock()
        # Events are counted by row number, not by report: a commit reported after a
        # checkpoint that already holds its rows must not count again.
        self._covered = {table: ledger._head(table)[0] for table in CHAINED}
        self._newest = dict(self._covered)
        self._since = monotonic()

    def __repr__(self) -> str:
        return f"Checkpointer(to={str(self.to)!r})"

    def appended(self, table: str, newest_seq: int) -> None:
        """Rows of ``table`` up to ``newest_seq`` were committed: write a checkpoint once
        ``every_events`` rows (or ``every_seconds``) passed since the last one."""
        with self._lock:
            self._newest[table] = max(self._newest.get(table, 0), newest_seq)
            every, seconds = self.config.every_events, self.config.every_seconds
            if ((every is not None and self._pending() >= every)
                    or (seconds is not None and monotonic() - self._since >= seconds)):
                self._write()

    def close(self) -> None:
        with self._lock:
            if self._pending():
                self._write()

    def _pending(self) -> int:
        return sum(max(0, seq - self._covered.get(table, 0))
                   for table, seq in self._newest.items())

    def _write(self) -> None:
        try:
            written = write_checkpoint(self.ledger, self.to, self._key)
        except (OSError, sqlite3.Error, LedgerError) as exc:
            log.error("could not write a ledger checkpoint to %s: %s", self.to, exc)
            self._covered = dict(self._newest)  # try again after as many events, not at once
        else:
            self._covered = {table: head.seq for table, head in written.heads.items()}
        self._since = monotonic()
