"""Tampering with the ledger: what the database refuses, and what a signed checkpoint shows.

Every attack here works on the real SQLite file (and its Parquet segments) the way someone
holding the ledger's folder could: with sqlite3, dropping triggers, recomputing hashes.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

import etoro_nb as enb
from etoro_nb import errors
from etoro_nb.client import EtoroClient
from etoro_nb.ledger import Ledger, Verification, chain_hash, schema
from etoro_nb.ledger import checkpoint as cp
from etoro_nb.ledger import core as ledger_core
from etoro_nb.ledger.checkpoint import CheckpointConfig, public_key, read_checkpoints
from etoro_nb.ledger.schema import CHAINED, GENESIS
from etoro_nb.ledger.sealing import STORED, file_sha256
from etoro_nb.ledger.tables import TABLES
from etoro_nb.sandbox import SandboxServer
from tests.helpers import DEMO_READ
from tests.helpers import append_owner_usage as _usage

ATTACK = """
UPDATE ledger_state SET sealing = 1;
DELETE FROM usage_events WHERE seq > (SELECT max(seq) FROM usage_events) - 3;
UPDATE ledger_state SET sealing = 0;
"""




def _raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


@pytest.fixture
def places(tmp_path: Path) -> dict[str, Path]:
    """The ledger, the signing key and the checkpoint file, each in a folder of its own."""
    return {"ledger": tmp_path / "ledger" / "l.sqlite", "key": tmp_path / "keys" / "checkpoint.key",
            "checkpoints": tmp_path / "audit" / "checkpoints.jsonl"}


def _history(path: Path) -> Ledger:
    """Two sealed usage segments (rows 1-30, 31-50), a sealed lifecycle segment (1-2), and
    live rows after them (usage 51-60, lifecycle 3)."""
    ledger = Ledger(path, seal_threshold=None)
    for i in range(30):
        _usage(ledger, f"r{i}", status=200, latency_ms=1.25)
    ledger.append_lifecycle(kind="token_minted", token_id="t1", scopes=[DEMO_READ])
    ledger.append_lifecycle(kind="token_updated", token_id="t1", detail={"scopes": "narrowed"})
    assert ledger.seal("usage_events") is not None
    for i in range(30, 50):
        _usage(ledger, f"r{i}", status=403, error_code="InsufficientScope")
    assert ledger.seal("usage_events") is not None
    assert ledger.seal("lifecycle_events") is not None
    for i in range(50, 60):
        _usage(ledger, f"r{i}")
    ledger.append_lifecycle(kind="token_revoked", token_id="t1")
    return ledger


def _checkpointed(places: dict[str, Path]) -> Ledger:
    """The history, checkpointed, then five more usage rows (61-65) after the checkpoint."""
    ledger = _history(places["ledger"])
    cp.write_checkpoint(ledger, places["checkpoints"], places["key"])
    for i in range(60, 65):
        _usage(ledger, f"after{i}")
    ledger.close()
    return Ledger(places["ledger"], seal_threshold=None)


def _rechain(conn: sqlite3.Connection, table: str, from_seq: int, prev: str) -> str:
    """Recompute every hash from ``from_seq`` on, as a careful forger would."""
    columns = CHAINED[table]
    rows = conn.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE seq >= ? ORDER BY seq",
                        (from_seq,)).fetchall()
    for row in rows:
        digest = chain_hash(prev, TABLES[table].hashed_values(list(row)))
        conn.execute(f"UPDATE {table} SET prev_hash = ?, row_hash = ? WHERE seq = ?",
                     (prev, digest, row[0]))
        prev = digest
    return prev


def _verify_against(ledger: Ledger, places: dict[str, Path]) -> Verification:
    return ledger.verify(places["checkpoints"], key=places["key"])


# -- what the database refuses -------------------------------------------------------------
def test_the_sealing_flag_attack_is_refused_by_the_database(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    ledger = Ledger(path, seal_threshold=None)
    for i in range(10):
        _usage(ledger, f"r{i}")
    conn = _raw(path)
    with pytest.raises(sqlite3.DatabaseError):
        conn.executescript(ATTACK)
    # No flag lets a delete through any more: only a segment holding the rows does.
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM usage_events WHERE seq > 7")
    conn.close()
    assert ledger.live_count("usage_events") == 10
    assert ledger.verify().ok


def test_a_segment_row_is_accepted_only_if_it_holds_live_rows(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    ledger = Ledger(path, seal_threshold=None)
    for i in range(10):
        _usage(ledger, f"r{i}")
    conn = _raw(path)
    heads = dict(conn.execute("SELECT seq, row_hash FROM usage_events"))
    first_prev = conn.execute("SELECT prev_hash FROM usage_events WHERE seq = 1").fetchone()[0]

    def forge(table: str, first: int, last: int, first_prev_hash: str, last_hash: str) -> None:
        values = [1, 0, table, first, last, last - first + 1, "x.parquet", "0" * 64,
                  first_prev_hash, last_hash]
        conn.execute(f"INSERT INTO segments ({', '.join(CHAINED['segments'])}, prev_hash, "
                     f"row_hash) VALUES ({', '.join('?' * 12)})",
                     (*values, GENESIS, chain_hash(GENESIS, values)))

    for table, first, last, fph, lh in [
        ("usage_events", 8, 10, heads[7], heads[10]),         # skips rows 1-7: only the tail
        ("usage_events", 1, 10, first_prev, "f" * 64),        # a hash the rows don't have
        ("usage_events", 1, 12, first_prev, heads[10]),       # rows that don't exist
        ("token_fingerprints", 1, 10, first_prev, heads[10]), # not a sealable table
    ]:
        with pytest.raises(sqlite3.DatabaseError, match=r"segment|sealed"):
            forge(table, first, last, fph, lh)
    # A segments row naming the real rows gets in, so the rows can go; but no segment file
    # holds them, and verify says so.
    forge("usage_events", 1, 10, first_prev, heads[10])
    conn.execute("DELETE FROM usage_events WHERE seq > 7")
    conn.close()
    result = ledger.verify()
    assert not result.ok and "x.parquet" in str(result.problem) and "missing" in str(result.problem)


def test_the_ledger_identity_cannot_change(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    ledger = Ledger(path)
    ledger_id = cp.ledger_identity(ledger)
    assert len(ledger_id) == 32
    conn = _raw(path)
    for sql in ("UPDATE ledger_meta SET value = 'other'", "DELETE FROM ledger_meta"):
        with pytest.raises(sqlite3.DatabaseError, match="identity"):
            conn.execute(sql)
    conn.close()
    assert Ledger(tmp_path / "other.sqlite").verify().ok
    assert cp.ledger_identity(Ledger(tmp_path / "other.sqlite")) != ledger_id


def _seal_the_old_way(path: Path, table: str) -> None:
    """How a seal worked before 0003_seal_guard: a flag let the delete through, the
    segment row came after it."""
    conn = _raw(path)
    conn.execute("BEGIN IMMEDIATE")
    rows = conn.execute(f"SELECT {', '.join(STORED[table])} FROM {table} ORDER BY seq").fetchall()
    folder = path.with_name(path.name + ".segments")
    folder.mkdir(exist_ok=True)
    name = f"{table}-{rows[0][0]:012d}-{rows[-1][0]:012d}.parquet"
    pl.DataFrame(rows, schema=STORED[table], orient="row").write_parquet(folder / name)
    conn.execute("UPDATE ledger_state SET sealing = 1 WHERE id = 1")
    conn.execute(f"DELETE FROM {table}")
    conn.execute("UPDATE ledger_state SET sealing = 0 WHERE id = 1")
    head = conn.execute("SELECT seq, row_hash FROM segments ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = head if head else (0, GENESIS)
    values = [seq + 1, 1, table, rows[0][0], rows[-1][0], len(rows), name,
              file_sha256(folder / name), rows[0][-2], rows[-1][-1]]
    conn.execute(f"INSERT INTO segments ({', '.join(CHAINED['segments'])}, prev_hash, row_hash) "
                 f"VALUES ({', '.join('?' * 12)})", (*values, prev, chain_hash(prev, values)))
    conn.execute("COMMIT")
    conn.close()


def test_an_existing_ledger_migrates_and_keeps_its_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, places: dict[str, Path]
) -> None:
    path = places["ledger"]
    with monkeypatch.context() as before:
        # A ledger from before the seal guard (0004's phase and 0007's application columns are
        # there so that today's appends can write to it; they are tested on their own).
        before.setattr(ledger_core, "MIGRATIONS", {k: v for k, v in schema.MIGRATIONS.items()
                                                   if k < "0003" or k.startswith(("0004", "0007"))})
        old = Ledger(path, seal_threshold=None)
        for i in range(40):
            _usage(old, f"old{i}")
        old.append_lifecycle(kind="token_minted", token_id="t1")
        old.close()
        _seal_the_old_way(path, "usage_events")
        old = Ledger(path, seal_threshold=None)
        for i in range(5):
            _usage(old, f"live{i}")
        old.close()
    ledger = Ledger(path, seal_threshold=None)  # applies 0003_seal_guard
    with _raw(path) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM _migrations ORDER BY name")]
        assert names == list(schema.MIGRATIONS)
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'ledger_state'"
                            ).fetchone()[0] == 0
    result = ledger.verify()
    assert result.ok and result.rows_checked == 45 + 1 + 1 and result.segments_checked == 1
    conn = _raw(path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM usage_events")
    conn.close()
    segment = ledger.seal("usage_events")  # the new flow continues the old segments
    assert segment is not None and (segment["first_seq"], segment["last_seq"]) == (41, 45)
    cp.write_checkpoint(ledger, places["checkpoints"], places["key"])
    assert _verify_against(ledger, places).ok


# -- what a checkpoint shows -----------------------------------------------------------------
def test_an_untouched_ledger_verifies_against_its_checkpoints(places: dict[str, Path]) -> None:
    ledger = _history(places["ledger"])
    cp.write_checkpoint(ledger, places["checkpoints"], places["key"])
    ledger.seal("usage_events")  # every usage row sealed: the head lives in segments
    assert ledger.live_count("usage_events") == 0
    made = cp.write_checkpoint(ledger, places["checkpoints"], places["key"])
    assert made.heads["usage_events"].seq == 60 and made.heads["segments"].seq == 4
    for i in range(7):  # rows after the newest checkpoint
        _usage(ledger, f"later{i}")
    ledger.append_lifecycle(kind="portfolio_deleted", portfolio_id="p1")
    result = _verify_against(ledger, places)
    assert result.ok, result.problem
    assert result.checkpoints_checked == 2 and result.segments_checked == 4
    assert "matches 2 signed checkpoint(s)" in str(result)
    assert "usage_events to row 60" in str(result)
    # The public half alone verifies too: what an auditor holds.
    pub = places["key"].with_name("checkpoint.key.pub")
    assert (places["key"].stat().st_mode & 0o777) == 0o600
    assert ledger.verify(places["checkpoints"], key=pub).ok
    without = ledger.verify()
    assert without.ok and "internal consistency only" in str(without)


def test_a_tail_delete_is_caught_by_the_checkpoint(places: dict[str, Path]) -> None:
    ledger = _checkpointed(places)
    conn = _raw(places["ledger"])
    conn.execute("DROP TRIGGER usage_events_no_delete")  # whoever has the file can do this
    conn.execute("DELETE FROM usage_events WHERE seq > 57")
    conn.close()
    assert ledger.verify().ok  # the chain alone cannot tell: a shorter chain is still a chain
    result = _verify_against(ledger, places)
    assert not result.ok
    assert "usage_events rows 58 to 60 were removed" in str(result.problem)
    assert "checkpoints.jsonl line 1" in str(result.problem)


def test_a_mid_chain_rewrite_with_recomputed_hashes_is_caught(places: dict[str, Path]) -> None:
    ledger = _checkpointed(places)
    conn = _raw(places["ledger"])
    conn.execute("DROP TRIGGER usage_events_no_update")
    conn.execute("UPDATE usage_events SET status = 200, route = '/api/v1/other' WHERE seq = 55")
    prev = conn.execute("SELECT prev_hash FROM usage_events WHERE seq = 55").fetchone()[0]
    _rechain(conn, "usage_events", 55, prev)
    conn.close()
    assert ledger.verify().ok  # consistent again
    result = _verify_against(ledger, places)
    assert not result.ok
    assert "usage_events row 60 differs from the checkpoint" in str(result.problem)
    assert "rewritten" in str(result.problem)


def test_a_swapped_segment_is_caught(places: dict[str, Path]) -> None:
    ledger = _checkpointed(places)
    seg = ledger.segments("usage_events")[1]
    assert (seg["first_seq"], seg["last_seq"]) == (31, 50)
    file = ledger.segments_dir / seg["file"]
    # Rewrite rows 31-50 (row 40 says it was allowed), recompute their hashes, write a
    # new segment over the old one.
    rows = [list(r) for r in pl.read_parquet(file).rows()]
    prev = rows[0][-2]
    for row in rows:
        if row[0] == 40:
            row[14], row[15] = 200, None  # status, error_code
        row[-2], row[-1] = prev, chain_hash(prev, TABLES["usage_events"].hashed_values(row[:-2]))
        prev = row[-1]
    pl.DataFrame(rows, schema=STORED["usage_events"], orient="row").write_parquet(file)
    # ... and everything that chains after it: the segments row, later segments rows, live rows.
    conn = _raw(places["ledger"])
    for trigger in ("segments_no_update", "usage_events_no_update"):
        conn.execute(f"DROP TRIGGER {trigger}")
    conn.execute("UPDATE segments SET sha256 = ?, last_hash = ? WHERE seq = ?",
                 (file_sha256(file), prev, seg["seq"]))
    before = conn.execute("SELECT prev_hash FROM segments WHERE seq = ?", (seg["seq"],)).fetchone()
    _rechain(conn, "segments", seg["seq"], before[0])
    _rechain(conn, "usage_events", 51, prev)
    conn.close()
    assert ledger.verify().ok  # a consistent forgery
    result = _verify_against(ledger, places)
    assert not result.ok and "rewritten" in str(result.problem)
    assert "usage_events row 60 differs" in str(result.problem)


def test_a_checkpoint_signed_with_another_key_is_rejected(
    places: dict[str, Path], tmp_path: Path
) -> None:
    ledger = _history(places["ledger"])
    forger = tmp_path / "forger" / "k"
    cp.write_checkpoint(ledger, places["checkpoints"], forger)
    cp.signing_key(places["key"])  # the key the auditor trusts
    result = _verify_against(ledger, places)
    assert not result.ok
    assert "line 1 was signed by another key" in str(result.problem)
    assert "not by the checkpoint key you trust" in str(result.problem)


def test_an_edited_checkpoint_is_rejected(places: dict[str, Path]) -> None:
    ledger = _checkpointed(places)
    file = places["checkpoints"]
    record = json.loads(file.read_text())
    # Lower the head so that a tail delete would "match": the signature no longer does.
    record["heads"]["usage_events"]["seq"] = 57
    file.write_text(json.dumps(record) + "\n")
    result = _verify_against(ledger, places)
    assert not result.ok
    assert "line 1 does not match its signature: the checkpoint was edited" in str(result.problem)
    file.write_text("not json at all\n")
    result = _verify_against(ledger, places)
    assert not result.ok and "line 1 is not a checkpoint" in str(result.problem)


def test_checkpoints_must_be_for_this_ledger(places: dict[str, Path], tmp_path: Path) -> None:
    ledger = _checkpointed(places)
    other = Ledger(tmp_path / "elsewhere" / "other.sqlite")
    _usage(other, "x")
    file = places["checkpoints"]
    file.write_text("")
    result = _verify_against(ledger, places)
    assert not result.ok and "it holds none" in str(result.problem)
    cp.write_checkpoint(other, file, places["key"])
    result = _verify_against(ledger, places)
    assert not result.ok and "no checkpoint in checkpoints.jsonl is for this ledger" in str(
        result.problem)
    cp.write_checkpoint(ledger, file, places["key"])  # one of several ledgers in the file
    assert _verify_against(ledger, places).ok


def test_missing_files_and_a_key_beside_the_ledger_are_clear_errors(
    places: dict[str, Path], tmp_path: Path
) -> None:
    ledger = _history(places["ledger"])
    with pytest.raises(errors.LedgerError, match="no checkpoint key at"):
        ledger.verify(places["checkpoints"], key=tmp_path / "nope.key")
    cp.signing_key(places["key"])
    with pytest.raises(errors.LedgerError, match="no checkpoint file at"):
        _verify_against(ledger, places)
    with pytest.raises(errors.LedgerError, match="keep it apart"):
        cp.write_checkpoint(ledger, places["checkpoints"], places["ledger"].with_name("cp.key"))
    with pytest.raises(errors.LedgerError, match="keep it apart"):
        Ledger(places["ledger"], checkpoint=CheckpointConfig(
            to=places["checkpoints"], key=places["ledger"].with_name("cp.key")))
    places["ledger"].with_name("bad.key").write_text("garbage")
    with pytest.raises(errors.LedgerError, match="is not a checkpoint key"):
        public_key(places["ledger"].with_name("bad.key"))
    with pytest.raises(ValueError, match="every_events is a whole number"):
        CheckpointConfig(to=places["checkpoints"], every_events=0)
    with pytest.raises(ValueError, match="every_seconds is a number of seconds above 0"):
        CheckpointConfig(to=places["checkpoints"], every_seconds=-1.0)


# -- periodic checkpoints from a client ------------------------------------------------------
def _events(ledger: Ledger) -> int:
    return sum(ledger.live_count(t) for t in ("usage_events", "lifecycle_events"))


def test_a_client_writes_checkpoints_as_it_goes(
    server: SandboxServer, make_client: Callable[..., EtoroClient], places: dict[str, Path]
) -> None:
    config = CheckpointConfig(to=places["checkpoints"], key=places["key"], every_events=4,
                              every_seconds=None)
    ledger = Ledger(places["ledger"], seal_threshold=None, checkpoint=config)
    client = make_client(server, ledger=ledger)
    created = client.agent_portfolios.create("agent01", 500, scopes=[DEMO_READ])
    client.as_agent(created.token).me()
    for _ in range(3):
        client.me()
    events = _events(ledger)
    trusted = public_key(places["key"])
    written = read_checkpoints(places["checkpoints"], trusted)
    # One once 4 events came since the last (an intent may share its commit with the
    # previous outcome, so a checkpoint may cover 5); fewer than 4 are left over.
    covered = [c.heads["usage_events"].seq + c.heads["lifecycle_events"].seq for c in written]
    assert covered and all(b - a >= 4 for a, b in zip([0, *covered], covered, strict=False))
    assert 0 <= events - covered[-1] < 4
    ledger.close()  # a last checkpoint covers the rest, if any
    assert len(read_checkpoints(places["checkpoints"], trusted)) == \
        len(written) + (events > covered[-1])
    written = read_checkpoints(places["checkpoints"], trusted)
    reopened = Ledger(places["ledger"], seal_threshold=None)
    heads = {t: reopened._head(t) for t in CHAINED}
    assert {t: tuple(h) for t, h in written[-1].heads.items()} == heads
    result = _verify_against(reopened, places)
    assert result.ok and result.checkpoints_checked == len(written)
    # The checkpoints hold the newest rows: dropping them is now caught.
    conn = _raw(places["ledger"])
    conn.execute("DROP TRIGGER usage_events_no_delete")
    conn.execute("DELETE FROM usage_events WHERE seq = (SELECT max(seq) FROM usage_events)")
    conn.close()
    assert reopened.verify().ok and not _verify_against(reopened, places).ok


def test_connect_turns_checkpoints_on_from_the_environment(
    server: SandboxServer, places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ETORO_NB_CHECKPOINT", str(places["checkpoints"]))
    monkeypatch.setenv("ETORO_NB_CHECKPOINT_KEY", str(places["key"]))
    monkeypatch.setenv("ETORO_NB_CHECKPOINT_EVERY", "3")
    creds = server.credentials
    client = enb.connect(creds.api_key, creds.user_key, base_url=creds.base_url,
                         ledger=places["ledger"], env_file=None)
    assert client.environment == "sandbox"
    client.me()
    client.me()  # four usage events, spooled: committed in one batch or more
    assert client.ledger is not None and client.ledger.flush()
    assert places["key"].with_name("checkpoint.key.pub").is_file()
    # One checkpoint, at the commit that took the count to three or more.
    assert len(read_checkpoints(places["checkpoints"], public_key(places["key"]))) == 1
    client.close()  # closes the ledger it opened: a last checkpoint, if events came since
    written = read_checkpoints(places["checkpoints"], public_key(places["key"]))
    assert [c.heads["usage_events"].seq for c in written][-1] == 4
    with Ledger(places["ledger"]) as ledger:
        assert _verify_against(ledger, places).ok
    monkeypatch.setenv("ETORO_NB_CHECKPOINT_EVERY", "often")
    with pytest.raises(errors.ConfigurationError, match="ETORO_NB_CHECKPOINT_EVERY must be"):
        enb.connect(creds.api_key, creds.user_key, base_url=creds.base_url,
                    ledger=places["ledger"], env_file=None)


def test_a_time_based_checkpoint_comes_with_the_first_append_after_the_interval(
    places: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(cp, "monotonic", lambda: clock[0])
    ledger = Ledger(places["ledger"], checkpoint=CheckpointConfig(
        to=places["checkpoints"], key=places["key"], every_events=None, every_seconds=60))
    for i in range(3):
        _usage(ledger, f"r{i}")
    assert places["checkpoints"].read_text() == ""
    clock[0] += 61
    _usage(ledger, "r3")
    written = read_checkpoints(places["checkpoints"], public_key(places["key"]))
    assert [c.heads["usage_events"].seq for c in written] == [4]
    clock[0] += 10
    _usage(ledger, "r4")
    assert len(read_checkpoints(places["checkpoints"], public_key(places["key"]))) == 1


def test_a_checkpoint_that_cannot_be_written_is_logged_not_raised(
    places: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    ledger = Ledger(places["ledger"], checkpoint=CheckpointConfig(
        to=places["checkpoints"], key=places["key"], every_events=1))
    places["checkpoints"].unlink()
    places["checkpoints"].mkdir()  # nothing can append to it now
    with caplog.at_level(logging.ERROR, logger="etoro_nb.ledger"):
        _usage(ledger, "r1")
    assert ledger.live_count("usage_events") == 1  # the event itself is recorded
    assert "could not write a ledger checkpoint" in caplog.text
    os.rmdir(places["checkpoints"])
