"""The open dataset: export (incremental, idempotent, many ledgers at once), verification
against the manifests, and frames reading it lazily with only the files a query needs."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from etoro_nb import frames
from etoro_nb.dataset import Dataset, export, layout, verify
from etoro_nb.errors import LedgerError
from etoro_nb.ledger import Ledger
from etoro_nb.ledger.checkpoint import ledger_identity
from etoro_nb.ledger.synth import START, synthesize
from tests.helpers import append_owner_usage

DAYS = 21


@pytest.fixture(scope="module")
def ledgers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two owners' synthetic ledgers over three weeks, made once (copied per test)."""
    folder = tmp_path_factory.mktemp("owners")
    made = {}
    for seed, name in enumerate(("alice", "bob"), 1):
        path = folder / f"{name}.sqlite"
        synthesize(path, events=3000, seed=seed, portfolios=3, days=DAYS).close()
        made[name] = path
    return made


def _copy(source: Path, to: Path) -> Path:
    """A ledger file and its key, copied (the copy has the same identity)."""
    to.mkdir(parents=True, exist_ok=True)
    for item in source.parent.glob(source.name + "*"):
        target = to / item.name
        (shutil.copytree if item.is_dir() else shutil.copy2)(item, target)
    return to / source.name


def _count(path: Path, table: str) -> int:
    with Ledger(path, seal_threshold=None) as ledger:
        return int(ledger.scan(table).select(pl.len()).collect().item())


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.endswith(".lock")}


def _relist(root: Path, ledger_id: str, path: str) -> None:
    """Put a data file's current SHA-256 in its manifest, as a forger would."""
    manifest = layout.manifest_path(root, ledger_id)
    text = json.loads(manifest.read_text())
    for seg in text["segments"]:
        for part in seg["parts"]:
            if part["path"] == path:
                part["sha256"] = hashlib.sha256((root / path).read_bytes()).hexdigest()
    manifest.write_text(json.dumps(text))


def test_export_is_incremental_and_idempotent(ledgers: dict[str, Path], tmp_path: Path) -> None:
    path = _copy(ledgers["alice"], tmp_path / "src")
    root = tmp_path / "ds"
    lifecycle = _count(path, "lifecycle_events")
    first = export(path, root)
    assert first.segments_added == 2 and first.rows_added == first.rows_total == 3000 + lifecycle
    days = {p.day for p in layout.read_manifests(root)[0].parts("usage_events")}
    assert first.files_written == len(layout.data_files(root)) >= DAYS
    assert len(days) == DAYS
    before = _files(root)

    again = export(path, root)
    assert (again.segments_added, again.rows_added, again.files_written) == (0, 0, 0)
    assert _files(root) == before  # not a byte changed, manifest included

    with Ledger(path, seal_threshold=None) as ledger:
        later = datetime(2026, 3, 1, 12, tzinfo=UTC)
        for n in range(3):
            append_owner_usage(ledger, f"r{n}", ts_us=int((later + timedelta(days=n))
                                                         .timestamp() * 1e6))
        ledger.flush()
    third = export(path, root)
    assert (third.segments_added, third.rows_added, third.files_written) == (1, 3, 3)
    assert set(before) < set(_files(root))
    assert all(_files(root)[name] == data for name, data in before.items()
               if not name.startswith(layout.MANIFESTS))
    with Ledger(path) as ledger:
        mine = frames.usage(ledger)
    theirs = frames.usage(Dataset(root))
    assert_frame_equal(theirs, mine)
    assert verify(root).ok


def test_export_without_seal_takes_only_sealed_history(ledgers: dict[str, Path],
                                                       tmp_path: Path) -> None:
    path = _copy(ledgers["alice"], tmp_path / "src")
    result = export(path, tmp_path / "ds", seal=False)
    assert result.segments_added == 0 and layout.data_files(tmp_path / "ds") == []
    with Ledger(path, seal_threshold=None) as ledger:
        assert ledger.live_count("usage_events") == 3000  # left live
    assert export(path, tmp_path / "ds").rows_total == 3000 + _count(path, "lifecycle_events")


def test_two_ledgers_in_one_dataset_keep_their_chains(ledgers: dict[str, Path],
                                                      tmp_path: Path) -> None:
    alice = _copy(ledgers["alice"], tmp_path / "a")
    bob = _copy(ledgers["bob"], tmp_path / "b")
    root = tmp_path / "ds"
    # Four exports at once, two of each ledger, as a team's hosts might run them.
    procs = [subprocess.Popen([sys.executable, "-m", "etoro_nb.cli", "ledger", "export", str(p),
                               "--to", str(root)], stdout=subprocess.PIPE, text=True)
             for p in (alice, bob, alice, bob)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outs
    result = verify(root)
    assert result.ok, result.problem
    assert result.ledgers == 2
    dataset = Dataset(root)
    assert sorted(dataset.owners().values()) == ["alice", "bob"]
    with Ledger(alice) as a, Ledger(bob) as b:
        assert result.rows_checked == sum(
            x.scan(t).select(pl.len()).collect().item() for x in (a, b) for t in layout.TABLES)
        for ledger in (a, b):
            assert ledger.verify().ok

            manifest = layout.read_manifest(layout.manifest_path(root, ledger_identity(ledger)))
            heads = manifest.heads()
            for seg in ledger.segments():  # the heads are the ledger's last sealed rows
                assert heads[seg["table_name"]] == {"seq": seg["last_seq"],
                                                    "hash": seg["last_hash"]}
            assert heads["segments"]["hash"] == ledger.segments()[-1]["row_hash"]
    usage = frames.usage(dataset, lazy=True)
    assert isinstance(usage, pl.LazyFrame)
    ids = Dataset(root).scan("usage_events").select("ledger_id").unique().collect()
    assert ids.height == 2 and usage.select(pl.len()).collect().item() == 6000


def test_pushdown_reads_only_the_weeks_files(ledgers: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "ds"
    for name in ("alice", "bob"):
        export(_copy(ledgers[name], tmp_path / name), root)
    dataset = Dataset(root)
    since, until = START.date() + timedelta(days=7), START.date() + timedelta(days=14)
    portfolio = frames.usage(dataset)["portfolio_id"].drop_nulls()[0]
    everything = frames.usage(dataset)
    expected = everything.filter(pl.col("ts") >= datetime(since.year, since.month, since.day,
                                                         tzinfo=UTC),
                                 pl.col("ts") < datetime(until.year, until.month, until.day,
                                                         tzinfo=UTC),
                                 pl.col("portfolio_id") == portfolio)
    assert 0 < expected.height < everything.height
    needed = dataset.files("usage_events", since=since, until=until)
    every = dataset.files("usage_events")
    # 7 days of each of two ledgers, out of 21 (a file holds one ledger's rows of one day)
    assert len(needed) == 14 < len(every) == 2 * DAYS
    assert {p.parent.name for p in needed} == {f"day={since + timedelta(days=d)}" for d in range(7)}
    for path in set(every) - set(needed):  # any file opened now would fail the query
        path.write_bytes(b"not parquet")
    got = frames.usage(dataset, since=since, until=until, portfolio=portfolio)
    assert_frame_equal(got, expected)
    with pytest.raises(pl.exceptions.PolarsError):
        frames.usage(dataset)  # the damaged files are read by a query that needs them
    assert not verify(root).ok


def test_verify_names_a_tampered_file(ledgers: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "ds"
    export(_copy(ledgers["alice"], tmp_path / "a"), root)
    manifest = layout.read_manifests(root)[0]
    part = manifest.parts("usage_events")[5]
    target = root / part.path
    frame = pl.read_parquet(target)
    altered = frame.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(pl.lit(200))
                                 .otherwise(pl.col("status")).alias("status")
                                 if frame["status"][3] != 200 else
                                 pl.col("status").replace({200: 500}))
    altered.write_parquet(target, compression="zstd")
    out = subprocess.run([sys.executable, "-m", "etoro_nb.cli", "ledger", "verify", str(root)],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 1
    assert part.path in out.stdout and "altered" in out.stdout

    # The manifest's hash made to match: the rows' chain still names the row and file.
    _relist(root, manifest.ledger_id, part.path)
    found = verify(root)
    assert not found.ok and part.path in str(found.problem) and "hash does not match" in str(
        found.problem)


def test_verify_names_missing_and_stray_files(ledgers: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "ds"
    export(_copy(ledgers["alice"], tmp_path / "a"), root)
    part = layout.read_manifests(root)[0].parts("usage_events")[2]
    stray = root / "table=usage_events" / f"day={part.day}" / "extra.parquet"
    shutil.copy(root / part.path, stray)
    found = verify(root)
    assert not found.ok and "table=usage_events/day=" in str(found.problem)
    assert "extra.parquet is in no manifest" in str(found.problem)
    stray.unlink()
    (root / part.path).unlink()
    found = verify(root)
    assert not found.ok and f"{part.path} is missing" in str(found.problem)


def test_export_refuses_a_copy_with_another_history(ledgers: dict[str, Path],
                                                    tmp_path: Path) -> None:
    original = _copy(ledgers["alice"], tmp_path / "a")
    copy = _copy(ledgers["alice"], tmp_path / "b")
    root = tmp_path / "ds"
    export(original, root)
    with Ledger(original, seal_threshold=None) as ledger:
        append_owner_usage(ledger, "only-in-original")
    export(original, root)
    with Ledger(copy, seal_threshold=None) as ledger:
        append_owner_usage(ledger, "only-in-copy")
    before = _files(root)
    with pytest.raises(LedgerError, match="another ledger with the same identity"):
        export(copy, root)
    assert _files(root) == before


def test_export_refuses_an_altered_segment(ledgers: dict[str, Path], tmp_path: Path) -> None:
    path = _copy(ledgers["alice"], tmp_path / "a")
    with Ledger(path, seal_threshold=None) as ledger:
        ledger.seal("usage_events")
        segment = ledger.segments_dir / ledger.segments("usage_events")[0]["file"]
    with segment.open("r+b") as f:
        f.seek(100)
        f.write(b"\0\0\0\0")
    with pytest.raises(LedgerError, match="was altered"):
        export(path, tmp_path / "ds")
    assert layout.data_files(tmp_path / "ds") == []


def test_dataset_refuses_bad_input(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="no dataset at"):
        Dataset(tmp_path)
    (tmp_path / layout.MANIFESTS).mkdir()
    dataset = Dataset(tmp_path)
    with pytest.raises(ValueError, match="no column colour"):
        dataset.scan("usage_events", colour="red")
    with pytest.raises(ValueError, match="table must be one of"):
        dataset.files("segments")
    assert frames.usage(dataset).is_empty()
    assert frames.usage(dataset, since=date(2026, 1, 1)).schema == frames.USAGE_SCHEMA


def test_an_export_cut_short_is_finished_by_the_next(ledgers: dict[str, Path],
                                                     tmp_path: Path) -> None:
    """Data files written, manifest never saved (the process died): the files are named by
    verify as in no manifest; the next export writes them again, identically, and lists them."""
    path = _copy(ledgers["alice"], tmp_path / "a")
    root = tmp_path / "ds"
    export(path, root)
    written = _files(root)
    manifest = next(layout.manifests_dir(root).glob("*.json"))
    manifest.unlink()
    found = verify(root)
    assert not found.ok and "is in no manifest" in str(found.problem)
    again = export(path, root)
    assert again.segments_added == 2 and _files(root) == written
    assert verify(root).ok


def test_export_command(ledgers: dict[str, Path], tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    from etoro_nb.cli import main

    path = _copy(ledgers["bob"], tmp_path / "b")
    root = tmp_path / "ds"
    assert main(["ledger", "export", str(path), "--to", str(root), "--owner", "team-b"]) == 0
    assert "exported" in capsys.readouterr().out
    assert Dataset(root).ledgers()["owner"].to_list() == ["team-b"]
    assert main(["ledger", "export", str(path), "--to", str(root)]) == 0
    assert "nothing to export from team-b" in capsys.readouterr().out  # the label is kept
    assert main(["ledger", "export", str(tmp_path / "none.sqlite"), "--to", str(root)]) == 2
    assert "no ledger at" in capsys.readouterr().err
    assert main(["ledger", "verify", str(root), "--checkpoint", "x"]) == 2
    assert main(["ledger", "verify", str(root)]) == 0
    assert "dataset verified: 1 ledger(s)" in capsys.readouterr().out


def test_files_written_before_a_column_was_added_still_verify(ledgers: dict[str, Path],
                                                              tmp_path: Path) -> None:
    """A lifecycle file without ``phase`` (added by a later migration, not hashed while
    null) is what an older version wrote: it verifies, and reads with ``phase`` null."""
    root = tmp_path / "ds"
    export(_copy(ledgers["alice"], tmp_path / "a"), root)
    manifest = layout.read_manifests(root)[0]
    part = manifest.parts("lifecycle_events")[0]
    old = pl.read_parquet(root / part.path)
    assert old["phase"].null_count() == old.height
    old.drop("phase").write_parquet(root / part.path)
    _relist(root, manifest.ledger_id, part.path)
    assert verify(root).ok
    rows = Dataset(root).scan("lifecycle_events").collect()
    assert rows.height > 0 and rows["phase"].null_count() == rows.height
    pl.read_parquet(root / part.path).with_columns(colour=pl.lit("red")).write_parquet(
        root / part.path)
    _relist(root, manifest.ledger_id, part.path)
    found = verify(root)
    assert not found.ok and "columns this version does not know (colour)" in str(found.problem)


def test_verify_against_the_ledgers_checkpoints(ledgers: dict[str, Path], tmp_path: Path) -> None:
    from etoro_nb.cli import main
    from etoro_nb.ledger import checkpoint as cp

    original = _copy(ledgers["alice"], tmp_path / "a")
    fork = _copy(ledgers["alice"], tmp_path / "b")  # the same identity, soon another history
    key = tmp_path / "keys" / "checkpoint.key"
    key.parent.mkdir()
    signing = cp.signing_key(key)
    with Ledger(original, seal_threshold=None) as ledger:
        append_owner_usage(ledger, "one")
        ledger.flush()
        cp.write_checkpoint(ledger, tmp_path / "a.checkpoints", signing)
        append_owner_usage(ledger, "two")  # after the checkpoint: exported, not signed
    with Ledger(fork, seal_threshold=None) as ledger:
        append_owner_usage(ledger, "other")
        ledger.flush()
        cp.write_checkpoint(ledger, tmp_path / "b.checkpoints", signing)
    root = tmp_path / "ds"
    export(original, root)
    trusted = cp.public_key(Path(f"{key}.pub"))
    good = verify(root, cp.read_checkpoints(tmp_path / "a.checkpoints", trusted))
    assert good.ok and good.checkpoints_checked == 1 and "no exported row up to" in str(good)
    forged = verify(root, cp.read_checkpoints(tmp_path / "b.checkpoints", trusted),
                    source="b.checkpoints")
    assert not forged.ok and "usage_events row 3001" in str(forged.problem)
    assert "differs from the checkpoint" in str(forged.problem)
    args = ["ledger", "verify", str(root), "--checkpoint"]
    assert main([*args, str(tmp_path / "a.checkpoints"), "--key", f"{key}.pub"]) == 0
    assert main([*args, str(tmp_path / "b.checkpoints"), "--key", f"{key}.pub"]) == 1
    assert main([*args, str(tmp_path / "none"), "--key", f"{key}.pub"]) == 2
    other = tmp_path / "keys" / "other.key"
    cp.signing_key(other)
    assert main([*args, str(tmp_path / "a.checkpoints"), "--key", str(other)]) == 1


def test_rows_out_of_day_order_still_verify(ledgers: dict[str, Path], tmp_path: Path) -> None:
    """A row stamped before midnight recorded after one stamped past it (processes on one
    ledger, or a commit that waited): each data file holds consecutive rows, one day's, so
    the files walk the chain in order."""
    path = _copy(ledgers["alice"], tmp_path / "a")
    midnight = datetime(2026, 3, 2, tzinfo=UTC)
    with Ledger(path, seal_threshold=None) as ledger:
        for n, seconds in enumerate((-2, 1, -1, 2)):
            at = midnight + timedelta(seconds=seconds)
            append_owner_usage(ledger, f"edge{n}", ts_us=int(at.timestamp() * 1e6))
        ledger.flush()
    root = tmp_path / "ds"
    export(path, root)
    found = verify(root)
    assert found.ok, found.problem
    late = [p for p in layout.read_manifests(root)[0].parts("usage_events") if p.first_seq > 3000]
    assert [(p.day.day, p.rows) for p in late] == [(1, 1), (2, 1), (1, 1), (2, 1)]
