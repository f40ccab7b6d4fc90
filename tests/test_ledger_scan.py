"""Ledger.scan: sealed and live rows as one frame, filters pushed into both parts, consistent
under concurrent seals; and sealing kept off the request path."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from etoro_nb.ledger import Ledger, drafts, sealing
from etoro_nb.ledger.upkeep import CHECKPOINT_EVERY

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 3, 1, tzinfo=UTC)
PORTFOLIOS = ("p-a", "p-b", "p-c")
TOKENS = ("t-1", "t-2", None)


def _event(i: int) -> dict[str, Any]:
    """Event ``i``: spread over 3 portfolios, 3 tokens (one none), both phases and
    ``i`` minutes after T0."""
    return dict(phase=("intent", "outcome")[i % 2], request_id=f"r{i // 2}", attempt=1,
                principal="agent", environment="sandbox", method="GET", route="/api/v1/me",
                operation_id="getAuthenticatedUserProfile", portfolio_id=PORTFOLIOS[i % 3],
                token_id=TOKENS[(i // 3) % 3], status=200 if i % 2 else None,
                latency_ms=1.25 if i % 2 else None,
                ts_us=int((T0 + timedelta(minutes=i)).timestamp() * 1_000_000))


def _append(ledger: Ledger, start: int, count: int) -> None:
    for i in range(start, start + count):
        ledger.append_usage(**_event(i))


def _half_sealed(path: Path) -> Ledger:
    """600 events: rows 1-200 and 201-400 in two segments, 401-600 live."""
    ledger = Ledger(path, seal_threshold=None)
    for start in (0, 200):
        _append(ledger, start, 200)
        assert ledger.seal() is not None
    _append(ledger, 400, 200)
    return ledger


FILTERS: list[dict[str, Any]] = [
    {},
    {"since": T0 + timedelta(minutes=150), "until": T0 + timedelta(minutes=450)},
    {"until": T0 + timedelta(minutes=30)},
    {"since": T0 + timedelta(minutes=590)},
    {"portfolio_id": "p-b"},
    {"token_id": "t-2", "phase": "outcome"},
    {"since": T0 + timedelta(minutes=100), "portfolio_id": "p-c", "token_id": "t-1"},
    {"portfolio_id": "nobody"},
]


def _expected(filters: dict[str, Any]) -> list[int]:
    """The seqs (row i is seq i + 1) that the filters keep, worked out from the events."""
    out = []
    for i in range(600):
        event, at = _event(i), T0 + timedelta(minutes=i)
        if "since" in filters and at < filters["since"]:
            continue
        if "until" in filters and at >= filters["until"]:
            continue
        if any(event[k] != v for k, v in filters.items() if k not in ("since", "until")):
            continue
        out.append(i + 1)
    return out


@pytest.mark.parametrize("filters", FILTERS)
def test_filters_give_the_same_rows_on_sealed_and_live_parts(
    tmp_path: Path, filters: dict[str, Any]
) -> None:
    ledger = _half_sealed(tmp_path / "l.sqlite")
    everything = ledger.scan("usage_events").collect()
    assert everything["seq"].to_list() == list(range(1, 601))
    assert everything.row(500, named=True) == {**dict.fromkeys(everything.columns), "seq": 501,
                                               **_event(500)}
    reference = everything.filter(pl.col("seq").is_in(_expected(filters)))
    fresh = Ledger(tmp_path / "l.sqlite", seal_threshold=None)  # nothing read yet: SQL alone
    for reader in (fresh, ledger):  # ledger has its live rows decoded already
        got = reader.scan("usage_events", **filters).collect()
        assert got.equals(reference), filters
        assert got.schema == everything.schema


def test_a_filtered_scan_pushes_its_conditions_into_the_live_rows_sql(tmp_path: Path) -> None:
    _half_sealed(tmp_path / "l.sqlite").close()
    ledger = Ledger(tmp_path / "l.sqlite", seal_threshold=None)
    statements: list[str] = []
    with ledger._reading() as conn:
        conn.set_trace_callback(statements.append)
    got = ledger.scan("usage_events", until=T0 + timedelta(minutes=500), portfolio_id="p-a",
                      phase="intent").collect()
    live_reads = [s for s in statements if "FROM usage_events" in s and "SELECT seq" in s]
    assert len(live_reads) == 1
    assert "ts_us < " in live_reads[0] and "portfolio_id = 'p-a'" in live_reads[0]
    assert "phase = 'intent'" in live_reads[0]
    assert got["seq"].to_list() == _expected({"until": T0 + timedelta(minutes=500),
                                              "portfolio_id": "p-a", "phase": "intent"})


def test_kept_live_rows_follow_appends_and_seals_by_another_writer(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    reader = Ledger(path, seal_threshold=None)
    writer = Ledger(path, seal_threshold=None)
    _append(writer, 0, 150)
    assert reader.scan("usage_events").collect()["seq"].to_list() == list(range(1, 151))
    _append(writer, 150, 100)
    writer.seal()  # rows 1-250 leave SQLite for a segment
    _append(writer, 250, 50)
    for _ in range(2):
        got = reader.scan("usage_events").collect()
        assert got["seq"].to_list() == list(range(1, 301))
    assert reader.scan("usage_events", portfolio_id="p-a").collect()["seq"].to_list() == \
        [s for s in range(1, 301) if (s - 1) % 3 == 0]


def test_a_sealed_row_awaiting_deletion_is_read_once_and_verifies(tmp_path: Path) -> None:
    ledger = _half_sealed(tmp_path / "l.sqlite")
    # A seal whose deletions have not run yet (they run after it commits, a few at a time).
    with ledger._reading() as conn:
        draft = sealing.draft_segment(conn, ledger.segments_dir, "usage_events", None)
    assert draft is not None
    ledger._write(lambda: sealing._commit(ledger, "usage_events", draft))
    with ledger._reading() as conn:
        lingering = conn.execute("SELECT count(*) FROM usage_events").fetchone()[0]
    assert lingering == 200
    assert ledger.live_count("usage_events") == 0
    assert ledger.scan("usage_events").collect()["seq"].to_list() == list(range(1, 601))
    assert Ledger(tmp_path / "l.sqlite").scan("usage_events").collect().height == 600
    assert ledger.verify().ok  # verify's snapshot finishes the deletions first
    with ledger._reading() as conn:
        assert conn.execute("SELECT count(*) FROM usage_events").fetchone()[0] == 0


SEALER = """
import sys
from etoro_nb.ledger import Ledger
from tests.test_ledger_scan import _append
ledger = Ledger(sys.argv[1], seal_threshold=None)
for round_ in range(40):
    _append(ledger, 600 + round_ * 25, 25)
    ledger.seal()
ledger.close()
"""


def test_scans_stay_consistent_while_another_process_seals(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    ledger = _half_sealed(path)
    sealer = subprocess.Popen([sys.executable, "-c", SEALER, str(path)], cwd=ROOT,
                              stderr=subprocess.DEVNULL)
    seen = 0
    scans = 0
    done = False
    while not done or scans < 3:
        done = sealer.poll() is not None  # before the scan: the last scan sees every row
        seqs = ledger.scan("usage_events").collect()["seq"].to_list()
        assert seqs == list(range(1, len(seqs) + 1))  # no row dropped, none twice
        assert len(seqs) >= seen
        seen, scans = len(seqs), scans + 1
    assert sealer.returncode == 0
    assert seen == 600 + 40 * 25
    assert len(ledger.segments("usage_events")) == 2 + 40
    assert ledger.verify().ok


def test_the_append_crossing_the_threshold_returns_before_its_seal_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, release = threading.Event(), threading.Event()
    sealed_in: list[threading.Thread] = []
    real_seal = sealing.seal

    def held_seal(ledger: Ledger, table: str, **kwargs: Any) -> dict[str, Any] | None:
        sealed_in.append(threading.current_thread())
        if threading.current_thread() is threading.main_thread():
            raise AssertionError("the seal ran inside the append")
        started.set()
        assert release.wait(timeout=60)
        return real_seal(ledger, table, **kwargs)

    monkeypatch.setattr(sealing, "seal", held_seal)
    ledger = Ledger(tmp_path / "l.sqlite", seal_threshold=1000)
    _append(ledger, 0, 1000)  # the 1000th append crosses the threshold
    assert started.wait(timeout=60)  # the seal started, and is held: the append returned
    assert ledger.segments("usage_events") == []
    _append(ledger, 1000, 10)  # appends go on while the seal is in hand
    release.set()
    assert ledger.wait_for_upkeep(timeout=60)
    assert [s["rows"] for s in ledger.segments("usage_events")] == [1000]
    assert ledger.live_count("usage_events") == 10
    assert sealed_in and all(t is not threading.main_thread() for t in sealed_in)
    assert ledger.verify().ok
    ledger.close()


def test_wal_checkpoints_run_off_the_appending_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[threading.Thread] = []
    real = Ledger._checkpoint

    def recorded(self: Ledger) -> None:
        threads.append(threading.current_thread())
        real(self)

    monkeypatch.setattr(Ledger, "_checkpoint", recorded)
    ledger = Ledger(tmp_path / "l.sqlite", seal_threshold=None)
    with ledger._reading() as conn:
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    assert ledger._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    _append(ledger, 0, CHECKPOINT_EVERY)
    assert ledger.wait_for_upkeep(timeout=60)
    assert threads and threading.main_thread() not in threads
    ledger.close()


def test_bad_scan_arguments_are_refused_by_name(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite")
    with pytest.raises(ValueError, match="usage_events has no column portfolio"):
        ledger.scan("usage_events", portfolio="p-a")
    with pytest.raises(TypeError, match="since must be a datetime or a date, not str"):
        ledger.scan("usage_events", since="2026-03-01")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="table must be one of"):
        ledger.scan("segments")


# -- drafts: columnar copies of live rows -------------------------------------------------


def _drafted(ledger: Ledger) -> int:
    with ledger._reading() as conn:
        return drafts.draft_due(conn, ledger.segments_dir, "usage_events")


def test_a_cold_scan_reads_the_drafted_live_rows_from_their_drafts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(drafts, "DRAFT_ROWS", 10**9)  # no draft: the reference reads SQL
    path = tmp_path / "l.sqlite"
    ledger = _half_sealed(path)
    _append(ledger, 600, 30)  # rows 401-630 live
    plain = Ledger(path, seal_threshold=None)
    reference = {repr(f): plain.scan("usage_events", **f).collect() for f in FILTERS}
    monkeypatch.setattr(drafts, "DRAFT_ROWS", 50)
    assert drafts.present(ledger.segments_dir) == []
    assert _drafted(ledger) == 200  # rows 401-600; 601-630 are not a full draft yet
    for filters in FILTERS:
        fresh = Ledger(path, seal_threshold=None)
        statements: list[str] = []
        with fresh._reading() as conn:
            conn.set_trace_callback(statements.append)
        got = fresh.scan("usage_events", **filters).collect()
        assert got.equals(reference[repr(filters)]), filters
        live = [s for s in statements if "FROM usage_events WHERE seq >" in s]
        assert len(live) == 1 and "seq > 600" in live[0], live  # rows after the drafts only
        fresh.close()


def test_the_writers_upkeep_drafts_live_rows_and_deletes_those_a_seal_covers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(drafts, "DRAFT_ROWS", 100)
    ledger = Ledger(tmp_path / "l.sqlite", seal_threshold=None)
    _append(ledger, 0, CHECKPOINT_EVERY + 30)  # the checkpoint after 500 commits drafts
    assert ledger.wait_for_upkeep(timeout=120)
    assert [(d.first, d.last) for d in drafts.present(ledger.segments_dir)] == \
        [(1, 100), (101, 200), (201, 300), (301, 400), (401, 500)]
    assert ledger.verify().ok
    ledger.seal()  # rows 1-530 sealed: every draft is obsolete
    assert ledger.wait_for_upkeep(timeout=120)
    assert drafts.present(ledger.segments_dir) == []
    assert Ledger(tmp_path / "l.sqlite").scan("usage_events").collect().height == 530
    ledger.close()


def test_a_cold_read_of_many_undrafted_rows_drafts_them_for_the_next_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(drafts, "DRAFT_ROWS", 40)
    path = tmp_path / "l.sqlite"
    _half_sealed(path).close()  # rows 401-600 live, none drafted
    first = Ledger(path, seal_threshold=None).scan("usage_events").collect()
    assert [(d.first, d.last) for d in drafts.present(path.with_name("l.sqlite.segments"))] \
        == [(401 + 40 * k, 440 + 40 * k) for k in range(5)]
    nxt = Ledger(path, seal_threshold=None)
    statements: list[str] = []
    with nxt._reading() as conn:
        conn.set_trace_callback(statements.append)
    assert nxt.scan("usage_events").collect().equals(first)
    assert [s for s in statements if "FROM usage_events WHERE seq >" in s] == \
        ["SELECT seq, ts_us, phase, request_id, attempt, principal, portfolio_id, token_id, "
         "token_fingerprint, environment, method, route, operation_id, scope_required, status, "
         "error_code, latency_ms, application FROM usage_events WHERE seq > 600 ORDER BY seq"]


def test_a_draft_that_does_not_match_the_ledger_is_ignored_and_fails_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(drafts, "DRAFT_ROWS", 10**9)
    path = tmp_path / "l.sqlite"
    ledger = _half_sealed(path)
    expected = Ledger(path, seal_threshold=None).scan("usage_events").collect()
    monkeypatch.setattr(drafts, "DRAFT_ROWS", 100)
    # Drafts of other rows 1-500 (another ledger once at this path, say): 401-500 follows
    # the last sealed row, but is not this ledger's.
    other = Ledger(tmp_path / "other.sqlite", seal_threshold=None)
    _append(other, 1, 500)
    with other._reading() as conn:
        drafts.draft_due(conn, ledger.segments_dir, "usage_events")
    assert [(d.first, d.last) for d in drafts.present(ledger.segments_dir)][-1] == (401, 500)
    fresh = Ledger(path, seal_threshold=None)
    statements: list[str] = []
    with fresh._reading() as conn:
        conn.set_trace_callback(statements.append)
    assert fresh.scan("usage_events").collect().equals(expected)
    assert any("WHERE seq > 400" in s for s in statements)  # no draft used
    result = ledger.verify()
    assert not result.ok and "draft usage_events-" in str(result.problem)


def test_a_tampered_draft_is_caught_by_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(drafts, "DRAFT_ROWS", 100)
    ledger = _half_sealed(tmp_path / "l.sqlite")
    _drafted(ledger)
    assert ledger.verify().ok
    draft = drafts.present(ledger.segments_dir)[0]
    rows = pl.read_parquet(draft.path)
    rows.with_columns(status=pl.when(pl.col("seq") == 450).then(500).otherwise("status")) \
        .write_parquet(draft.path)  # same name, same hashes: only the status of row 450
    result = ledger.verify()
    assert not result.ok
    assert result.problem == (f"draft {draft.path.name} was altered: it does not hold the "
                              "usage_events rows 401-500 it claims (readers would use it in "
                              "their place)")


def test_a_draft_gone_before_it_is_read_leaves_its_rows_to_sql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(drafts, "DRAFT_ROWS", 100)
    path = tmp_path / "l.sqlite"
    ledger = _half_sealed(path)
    expected = Ledger(path, seal_threshold=None).scan("usage_events").collect()
    _drafted(ledger)
    real = drafts.usable

    def then_pruned(*args: Any) -> list[drafts.Draft]:
        chain = real(*args)
        chain[0].path.unlink()  # another process's upkeep pruned it meanwhile
        return chain

    monkeypatch.setattr(drafts, "usable", then_pruned)
    assert Ledger(path, seal_threshold=None).scan("usage_events").collect().equals(expected)


DRAFTING_SEALER = """
import sys
from etoro_nb.ledger import Ledger, drafts
from tests.test_ledger_scan import _append
drafts.DRAFT_ROWS = 20
ledger = Ledger(sys.argv[1], seal_threshold=None)
for round_ in range(40):
    _append(ledger, 600 + round_ * 25, 25)
    with ledger._reading() as conn:
        drafts.draft_due(conn, ledger.segments_dir, "usage_events")
        drafts.prune(conn, ledger.segments_dir)
    if round_ % 4 == 3:
        ledger.seal()
ledger.close()
"""


def test_scans_stay_consistent_while_another_process_drafts_and_seals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(drafts, "DRAFT_ROWS", 20)
    path = tmp_path / "l.sqlite"
    _half_sealed(path).close()
    writer = subprocess.Popen([sys.executable, "-c", DRAFTING_SEALER, str(path)], cwd=ROOT,
                              stderr=subprocess.DEVNULL)
    scans = 0
    seen = 0
    while writer.poll() is None or scans < 3:
        reader = Ledger(path, seal_threshold=None)  # cold each time: drafts and SQL
        seqs = reader.scan("usage_events").collect()["seq"].to_list()
        reader.close()
        assert seqs == list(range(1, len(seqs) + 1))  # no row dropped, none twice
        assert len(seqs) >= seen
        seen, scans = len(seqs), scans + 1
    assert writer.returncode == 0
    assert seen == 600 + 40 * 25
    final = Ledger(path, seal_threshold=None)
    assert final.verify().ok
    assert final.scan("usage_events").collect().equals(
        Ledger(path, seal_threshold=None).scan("usage_events").collect())
