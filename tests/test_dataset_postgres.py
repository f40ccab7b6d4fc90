"""A PostgreSQL ledger exported into the open dataset, on a real server of the tests' own
(``pg_support``): beside a SQLite ledger, incrementally, idempotently, its chain continued
across exports and verified as a SQLite ledger's is; frames read the same rows from the
dataset as from the server; and template 09 run with one owner's ledger on PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import psycopg
import pytest
from polars.testing import assert_frame_equal

from etoro_nb import frames
from etoro_nb.dataset import Dataset, export, layout, verify
from etoro_nb.dataset.pg_export import export_postgres
from etoro_nb.errors import LedgerError
from etoro_nb.ledger import Ledger
from etoro_nb.ledger.checkpoint import ledger_identity
from etoro_nb.ledger.pg_admin import init_postgres
from etoro_nb.ledger.postgres import PostgresLedger
from etoro_nb.ledger.synth import synthesize
from tests.helpers import append_owner_usage
from tests.pg_support import SUPERUSER, PostgresServer

ROOT = Path(__file__).resolve().parents[1]
WRITER, AUDITOR = "dataset_writer", "dataset_auditor"
PASSWORD = "pw-never-shown-9d41"  # trust authentication: accepted, never needed
EVENTS, DAYS = 3000, 21
AFTER = datetime(2026, 3, 1, 12, tzinfo=UTC)  # past the synthetic history


@pytest.fixture
def database(postgres: PostgresServer) -> str:
    """A fresh PostgreSQL ledger holding a synthetic owner's history (three weeks)."""
    name = postgres.new_database()
    init_postgres(postgres.url(SUPERUSER, name), WRITER, AUDITOR)
    synthesize(postgres.url(WRITER, name), events=EVENTS, seed=1, portfolios=3, days=DAYS).close()
    return name


@pytest.fixture
def auditor(postgres: PostgresServer, database: str) -> str:
    """The reader role's URL, with a password in it (which nothing may show)."""
    return postgres.url(f"{AUDITOR}:{PASSWORD}", database)


@pytest.fixture(scope="module")
def sqlite_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bob") / "bob.sqlite"
    synthesize(path, events=EVENTS, seed=2, portfolios=3, days=DAYS).close()
    return path


def _copy(source: Path, to: Path) -> Path:
    """A ledger file and its key, copied."""
    to.mkdir(parents=True, exist_ok=True)
    for item in source.parent.glob(source.name + "*"):
        (shutil.copytree if item.is_dir() else shutil.copy2)(item, to / item.name)
    return to / source.name


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.endswith(".lock")}


def _us(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000)


def _manifest(root: Path, url: str) -> layout.Manifest:
    with Ledger.open(url) as ledger:
        return layout.read_manifest(layout.manifest_path(root, ledger_identity(ledger)))


def test_pg_and_sqlite_ledgers_in_one_dataset_verify(
        auditor: str, database: str, sqlite_ledger: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from etoro_nb.cli import main

    root = tmp_path / "ds"
    assert main(["ledger", "export", auditor, "--to", str(root)]) == 0
    assert main(["ledger", "export", str(_copy(sqlite_ledger, tmp_path / "b")), "--to",
                 str(root)]) == 0
    said = capsys.readouterr()
    assert f"of {database} (ledger" in said.out and "export batches" in said.out
    assert main(["ledger", "verify", str(root)]) == 0
    said_too = capsys.readouterr()
    assert "dataset verified: 2 ledger(s)" in said_too.out
    result = verify(root)
    assert result.ok, result.problem
    with Ledger.open(auditor) as shared:
        counts = {t: shared.live_count(t) for t in layout.TABLES}
        heads, ledger_id = shared._signed_state()
    assert counts["usage_events"] == EVENTS
    manifest = layout.read_manifest(layout.manifest_path(root, ledger_id))
    assert manifest.owner == database and not manifest.segments
    assert manifest.source.startswith("postgresql://") and ":***@" in manifest.source
    for table in layout.TABLES:  # the watermarks are the server's heads
        assert manifest.heads()[table] == {"seq": heads[table][0], "hash": heads[table][1]}
        assert sum(p.rows for p in manifest.parts(table)) == counts[table]
    with Ledger(tmp_path / "b" / "bob.sqlite") as bob:
        sqlite_rows = sum(bob.scan(t).select(pl.len()).collect().item() for t in layout.TABLES)
    assert result.rows_checked == sum(counts.values()) + sqlite_rows
    shown = said.out + said.err + said_too.out + said_too.err
    assert PASSWORD not in shown
    assert not [name for name, data in _files(root).items() if PASSWORD.encode() in data]


def test_pg_export_is_incremental_and_idempotent(auditor: str, postgres: PostgresServer,
                                                 database: str, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    first = export(auditor, root, owner="carol")
    assert (first.batches_added, first.segments_added) == (2, 0)  # a batch per table
    assert first.rows_added == first.rows_total > EVENTS
    assert first.files_written == len(layout.data_files(root)) >= DAYS
    before = _files(root)
    again = export(auditor, root)
    assert (again.batches_added, again.rows_added, again.files_written) == (0, 0, 0)
    assert "nothing to export from carol" in str(again)  # the label is kept
    assert _files(root) == before  # not a byte changed, manifest included

    with Ledger.open(postgres.url(WRITER, database)) as writer:
        for n in range(3):
            append_owner_usage(writer, f"later{n}", ts_us=_us(AFTER + timedelta(days=n)))
    third = export(auditor, root)
    assert (third.batches_added, third.rows_added, third.files_written) == (1, 3, 3)
    assert all(_files(root)[name] == data for name, data in before.items()
               if not name.startswith(layout.MANIFESTS))
    usage = [b for b in _manifest(root, auditor).batches if b["table"] == "usage_events"]
    # The chain continues across exports: the new batch links to the last one exported.
    assert [(b["first_seq"], b["last_seq"]) for b in usage] == [(1, EVENTS), (EVENTS + 1, EVENTS + 3)]
    assert usage[1]["first_prev_hash"] == usage[0]["last_hash"]
    found = verify(root)
    assert found.ok and found.rows_checked == third.rows_total, found.problem


def test_pg_frames_from_the_dataset_equal_the_ledger(auditor: str, sqlite_ledger: Path,
                                                     tmp_path: Path) -> None:
    """The frames of a dataset holding the PostgreSQL ledger alone equal the ledger's own;
    in a team's dataset, its rows are those of its ledger id."""
    solo, team_root = tmp_path / "solo", tmp_path / "team"
    for root in (solo, team_root):
        export(auditor, root, owner="carol")
    export(_copy(sqlite_ledger, tmp_path / "b"), team_root, owner="bob")
    now = datetime(2026, 2, 1, tzinfo=UTC)
    dataset, team = Dataset(solo), Dataset(team_root)
    with Ledger.open(auditor) as shared:
        mine = shared._signed_state()[1]
        assert_frame_equal(team.scan("usage_events", ledger_id=mine).drop("ledger_id").collect(),
                           shared.scan("usage_events").collect())
        assert_frame_equal(frames.usage(dataset), frames.usage(shared))
        assert_frame_equal(frames.lifecycle(dataset, now=now), frames.lifecycle(shared, now=now))
        grants = frames.grants_from_ledger(shared, now=now)
        assert_frame_equal(frames.grants_from_ledger(dataset, now=now), grants)
        least = frames.least_privilege(grants, frames.usage(shared))
        chains = frames.delegation_chains(shared, now=now, owner="carol")
    assert least.height > 0 and chains.height > 0
    assert_frame_equal(frames.least_privilege(frames.grants_from_ledger(dataset, now=now),
                                              frames.usage(dataset)), least)
    # The dataset's chains name their ledger; a ledger's own leave ledger_id null.
    mine_only = pl.col("ledger_id") == pl.lit(team.ledgers().filter(owner="carol")["ledger_id"][0])
    assert_frame_equal(frames.delegation_chains(dataset, now=now).drop("ledger_id"),
                       chains.drop("ledger_id"))
    in_team = frames.delegation_chains(team, now=now).filter(mine_only)
    key = ["portfolio_id", "token_id", "application"]
    assert_frame_equal(in_team.sort(key).drop("ledger_id"), chains.sort(key).drop("ledger_id"))


def test_verify_names_a_tampered_pg_file(auditor: str, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    export(auditor, root)
    manifest = _manifest(root, auditor)
    part = manifest.parts("usage_events")[4]
    target = root / part.path
    frame = pl.read_parquet(target)
    frame.with_columns(status=pl.when(pl.int_range(pl.len()) == 2).then(pl.lit(599))
                       .otherwise(pl.col("status"))).write_parquet(target, compression="zstd")
    found = verify(root)
    assert not found.ok and part.path in str(found.problem) and "altered" in str(found.problem)
    # The manifest's hash made to match, as a forger would: the chain still names the file.
    text = json.loads(layout.manifest_path(root, manifest.ledger_id).read_text())
    for batch in text["batches"]:
        for listed in batch["parts"]:
            if listed["path"] == part.path:
                listed["sha256"] = hashlib.sha256(target.read_bytes()).hexdigest()
    layout.manifest_path(root, manifest.ledger_id).write_text(json.dumps(text))
    found = verify(root)
    assert not found.ok and part.path in str(found.problem)
    assert "hash does not match" in str(found.problem)


def test_verify_names_a_batch_that_does_not_continue_the_chain(auditor: str, postgres: PostgresServer,
                                                               database: str, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    export(auditor, root)
    with Ledger.open(postgres.url(WRITER, database)) as writer:
        append_owner_usage(writer, "later", ts_us=_us(AFTER))
    export(auditor, root)
    path = layout.manifest_path(root, _manifest(root, auditor).ledger_id)
    text = json.loads(path.read_text())
    text["batches"] = [b for b in text["batches"] if b["last_seq"] != EVENTS]  # a batch dropped
    path.write_text(json.dumps(text))
    found = verify(root)
    assert not found.ok and f"usage_events rows {EVENTS + 1}-{EVENTS + 1}" in str(found.problem)
    assert "does not continue the usage_events chain at row 1" in str(found.problem)


def test_pg_export_in_batches_and_after_one_that_died(auditor: str, postgres: PostgresServer,
                                                      database: str, tmp_path: Path) -> None:
    """Batches of 1,000 rows chain on; an export that died after writing a batch's files,
    before listing them, leaves files verify names; the next export (here after more rows
    came, its batches cut elsewhere, so other files) removes them and verifies."""
    root = tmp_path / "ds"
    with Ledger.open(auditor) as shared:
        assert isinstance(shared, PostgresLedger)
        done = export_postgres(shared, root, None, batch_rows=1000)
        assert done.batches_added == 4  # 3 of usage, 1 of lifecycle
        assert verify(root).ok
        path = layout.manifest_path(root, done.ledger_id)
        text = json.loads(path.read_text())
        text["batches"] = [b for b in text["batches"] if b["first_seq"] != 2001
                           or b["table"] != "usage_events"]
        path.write_text(json.dumps(text))  # as if the last usage batch's manifest never came
        found = verify(root)
        assert not found.ok and "is in no manifest" in str(found.problem)
        with Ledger.open(postgres.url(WRITER, database)) as writer:
            append_owner_usage(writer, "later", ts_us=_us(AFTER))
        again = export_postgres(shared, root, None, batch_rows=700)
    assert (again.batches_added, again.rows_added) == (2, 1001)  # 2001-2700, 2701-3001
    found = verify(root)
    assert found.ok and found.rows_checked == again.rows_total, found.problem


def test_pg_export_refuses_a_ledger_whose_exported_rows_changed(
        auditor: str, postgres: PostgresServer, database: str, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    export(auditor, root)
    before = _files(root)
    # A superuser (who can switch the append-only triggers off) removes the last row.
    postgres.admin("SET session_replication_role = replica; "
                   f"DELETE FROM usage_events WHERE seq = {EVENTS}", database)
    with pytest.raises(LedgerError, match=f"ends its usage_events at row {EVENTS}") as caught:
        export(auditor, root)
    assert PASSWORD not in str(caught.value) and ":***@" in str(caught.value)
    assert _files(root) == before


def test_export_flushes_every_commit_it_read(auditor: str, postgres: PostgresServer,
                                            database: str, tmp_path: Path) -> None:
    """A commit can be seen before it is flushed (the writers' chain lock goes first): what
    an export read is on disk before it writes, so a server crash can't take back a row the
    dataset holds. The test server flushes asynchronous commits only every 10 s."""
    with psycopg.connect(postgres.url(SUPERUSER, database), autocommit=True) as conn:
        conn.execute("CREATE TABLE scratch (n int)")
        with conn.transaction():
            conn.execute("SET LOCAL synchronous_commit = off")
            conn.execute("INSERT INTO scratch VALUES (1)")
        committed = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()
        flushed = "SELECT pg_current_wal_flush_lsn() >= %s::pg_lsn"
        assert committed is not None and conn.execute(flushed, committed).fetchone() == (False,)
        export(auditor, tmp_path / "ds")
        assert conn.execute(flushed, committed).fetchone() == (True,)


def test_rows_out_of_day_order_still_verify(auditor: str, postgres: PostgresServer,
                                            database: str, tmp_path: Path) -> None:
    """Near midnight a row stamped on the day before may follow one of the day after
    (writers on several hosts): each data file holds consecutive rows, so the chain walks."""
    midnight = AFTER.replace(hour=0) + timedelta(days=1)
    with Ledger.open(postgres.url(WRITER, database)) as writer:
        for n, at in enumerate((midnight - timedelta(seconds=2), midnight + timedelta(seconds=1),
                                midnight - timedelta(seconds=1), midnight + timedelta(seconds=2))):
            append_owner_usage(writer, f"edge{n}", ts_us=_us(at))
    root = tmp_path / "ds"
    export(auditor, root)
    found = verify(root)
    assert found.ok, found.problem
    late = [p for p in _manifest(root, auditor).parts("usage_events") if p.first_seq > EVENTS]
    assert [(p.day.day, p.rows) for p in late] == [(1, 1), (2, 1), (1, 1), (2, 1)]
    edge = Dataset(root).scan("usage_events", since=midnight, until=midnight + timedelta(days=1))
    assert edge.select(pl.len()).collect().item() == 2


def test_many_exports_at_once_into_one_dataset(auditor: str, sqlite_ledger: Path,
                                               tmp_path: Path) -> None:
    """Two exports of the PostgreSQL ledger and two of a SQLite one, at once, as a team's
    hosts might run them: the PostgreSQL ledger's take turns on its lock, so its rows are
    exported once."""
    bob = _copy(sqlite_ledger, tmp_path / "b")
    root = tmp_path / "ds"
    procs = [subprocess.Popen([sys.executable, "-m", "etoro_nb.cli", "ledger", "export", str(src),
                               "--to", str(root)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT)
             for src in (auditor, bob, auditor, bob)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outs
    assert not [out for pair in outs for out in pair if PASSWORD in out]
    said = outs[0][0] + outs[2][0]  # the PostgreSQL ledger's two: one did it all
    assert said.count("nothing to export from") == 1 and said.count("exported ") == 1
    found = verify(root)
    assert found.ok and found.ledgers == 2, found.problem
    manifest = _manifest(root, auditor)
    assert [b["table"] for b in manifest.batches] == list(layout.TABLES)  # each row once


def test_export_while_writers_append(auditor: str, postgres: PostgresServer, database: str,
                                     tmp_path: Path) -> None:
    """Exports run again and again while two writer processes append: each takes the rows
    committed when it began, the next continues the chain, and once the writers are done
    one more export leaves the dataset holding every row, verified."""
    root = tmp_path / "ds"
    writers = [subprocess.Popen([sys.executable, "-m", "tests.ledger_writer",
                                 postgres.url(WRITER, database), "400", f"w{i}"],
                                stdout=subprocess.DEVNULL, cwd=ROOT) for i in range(2)]
    rounds = 0
    while any(w.poll() is None for w in writers) or rounds < 2:
        export(auditor, root)
        rounds += 1
    assert [w.wait(timeout=300) for w in writers] == [0, 0]
    export(auditor, root)
    found = verify(root)
    assert found.ok, found.problem
    with Ledger.open(auditor) as shared:
        assert_frame_equal(Dataset(root).scan("usage_events").drop("ledger_id").collect(),
                           shared.scan("usage_events").collect())
    assert Dataset(root).ledgers()["usage_rows"].item() == EVENTS + 800


def test_verify_a_pg_export_against_the_ledgers_checkpoint(auditor: str, postgres: PostgresServer,
                                                           database: str, tmp_path: Path) -> None:
    from etoro_nb.ledger import checkpoint as cp

    key = tmp_path / "keys" / "checkpoint.key"
    key.parent.mkdir()
    signing = cp.signing_key(key)
    with Ledger.open(postgres.url(WRITER, database)) as writer:
        cp.write_checkpoint(writer, tmp_path / "team.checkpoints", signing)
    root = tmp_path / "ds"
    export(auditor, root)
    trusted = cp.public_key(Path(f"{key}.pub"))
    found = verify(root, cp.read_checkpoints(tmp_path / "team.checkpoints", trusted))
    assert found.ok and found.checkpoints_checked == 1, found.problem
    # The last row rewritten with its hash recomputed, file and manifest made to match, as a
    # forger would: the dataset is consistent, but not the history the ledger signed.
    from etoro_nb.ledger.chain import chain_hash
    from etoro_nb.ledger.tables import TABLES

    manifest = _manifest(root, auditor)
    part = manifest.parts("usage_events")[-1]
    frame = pl.read_parquet(root / part.path)
    row = frame.row(-1, named=True)
    row["status"] = 599 if row["status"] != 599 else 200
    values = [row[c] for c in list(layout.schema("usage_events"))[1:-2]]
    row["row_hash"] = chain_hash(row["prev_hash"], TABLES["usage_events"].hashed_values(values))
    forged = pl.concat([frame.head(-1), pl.DataFrame([row], schema=frame.schema)])
    forged.write_parquet(root / part.path)
    text = json.loads(layout.manifest_path(root, manifest.ledger_id).read_text())
    batch = next(b for b in text["batches"] if b["table"] == "usage_events")
    batch["last_hash"] = row["row_hash"]
    batch["parts"][-1]["sha256"] = hashlib.sha256((root / part.path).read_bytes()).hexdigest()
    layout.manifest_path(root, manifest.ledger_id).write_text(json.dumps(text))
    assert verify(root).ok  # internally consistent
    found = verify(root, cp.read_checkpoints(tmp_path / "team.checkpoints", trusted))
    assert not found.ok and f"usage_events row {EVENTS} of ledger" in str(found.problem)
    assert "differs from the checkpoint" in str(found.problem)


def test_template_09_with_one_ledger_on_postgresql(postgres: PostgresServer) -> None:
    """Template 09 with ETORO_NB_TEAM_PG set keeps one owner's ledger in a database it
    makes on that server, and its outputs are the stored ones (nbval, strict). A server
    it can't use fails the run: the setting is not ignored."""
    def run(url: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "ETORO_NB_TEAM_PG": url}
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
             "notebooks/09-team-audit.ipynb"], cwd=ROOT, env=env, capture_output=True,
            text=True, check=False, timeout=600)

    done = run(postgres.url(SUPERUSER, "postgres"))
    assert done.returncode == 0, done.stdout[-3000:]
    postgres.admin("DROP ROLE IF EXISTS nobody_team; CREATE ROLE nobody_team LOGIN")
    refused = run(postgres.url("nobody_team", "postgres"))  # may not create a database
    assert refused.returncode == 1 and "permission denied to create database" in refused.stdout
    left = _databases(postgres)
    assert not [name for name in left if name.startswith("etoro_nb_team")]  # removed at the end


def _databases(postgres: PostgresServer) -> list[str]:
    with psycopg.connect(postgres.url(SUPERUSER, "postgres"), autocommit=True) as conn:
        return [str(r[0]) for r in conn.execute("SELECT datname FROM pg_database").fetchall()]


def test_synth_into_postgresql_does_not_show_the_password(
        postgres: PostgresServer, capsys: pytest.CaptureFixture[str]) -> None:
    """Template 09 writes its PostgreSQL owner with `etoro-nb ledger synth --out URL`."""
    from etoro_nb.cli import main

    name = postgres.new_database()
    assert main(["ledger", "synth", "--events", "10", "--portfolios", "1", "--days", "1",
                 "--out", postgres.url(f"{SUPERUSER}:{PASSWORD}", name)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("wrote 10 usage events to postgresql://") and PASSWORD not in out
