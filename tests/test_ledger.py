"""The ledger: append-only, chained, concurrent, durable, fail-closed, secret-free."""

from __future__ import annotations

import ast
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from etoro_nb import errors, frames
from etoro_nb.client import EtoroClient
from etoro_nb.ledger import Ledger
from etoro_nb.ledger import core as ledger_core
from etoro_nb.ledger import writer as writer_module
from etoro_nb.ledger.recorder import UsageRecorder
from etoro_nb.ledger.schema import MIGRATIONS
from etoro_nb.sandbox import SandboxServer
from tests.helpers import ALL_SCOPES, DEMO_READ
from tests.helpers import append_owner_usage as _usage

ROOT = Path(__file__).resolve().parents[1]




def _writer(path: Path, count: int, tag: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.ledger_writer", str(path), str(count),
                             tag], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _request_ids(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT request_id FROM usage_events ORDER BY seq")]


def test_migrations_are_recorded_once(tmp_path: Path) -> None:
    Ledger(tmp_path / "l.sqlite").close()
    Ledger(tmp_path / "l.sqlite").close()
    with sqlite3.connect(tmp_path / "l.sqlite") as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM _migrations ORDER BY name")]
    assert names == sorted(MIGRATIONS)  # each once


def test_the_database_refuses_updates_and_deletes(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite")
    _usage(ledger, "r1")
    ledger.append_lifecycle(kind="token_revoked", token_id="t1")
    ledger.learn_token("a-secret", "t1", "p1")
    with sqlite3.connect(tmp_path / "l.sqlite") as conn:
        for sql in ("UPDATE usage_events SET status = 200", "DELETE FROM usage_events",
                    "UPDATE lifecycle_events SET kind = 'token_minted'",
                    "DELETE FROM lifecycle_events", "DELETE FROM token_fingerprints"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                conn.execute(sql)
    assert ledger.verify().ok


def test_tampering_with_one_byte_of_a_row_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    ledger = Ledger(path, seal_threshold=None)
    for i in range(50):
        _usage(ledger, f"request-{i:04d}")
    ledger.close()
    with sqlite3.connect(path) as conn:  # fold the WAL in, so the bytes are in the main file
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = bytearray(path.read_bytes())
    # One byte of row 32's route (an unindexed column): /api/v1/me -> /api/v1/mf
    record = raw.index(b"request-0031owner")  # in the table's record, not in the index
    at = raw.index(b"/api/v1/me", record)
    raw[at + len("/api/v1/m")] = ord("f")
    path.write_bytes(bytes(raw))
    result = Ledger(path, seal_threshold=None).verify()
    assert not result.ok
    assert "usage_events row 32" in str(result.problem) and "altered" in str(result.problem)


def test_tampering_with_one_byte_of_a_segment_is_detected(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite", seal_threshold=None)
    for i in range(200):
        _usage(ledger, f"r{i}", status=200, latency_ms=1.5)
    segment = ledger.seal()
    assert segment is not None and segment["rows"] == 200
    for i in range(10):
        _usage(ledger, f"later{i}")
    assert ledger.verify().ok and ledger.verify().segments_checked == 1
    file = ledger.segments_dir / segment["file"]
    raw = bytearray(file.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    file.write_bytes(bytes(raw))
    result = ledger.verify()
    assert not result.ok and segment["file"] in str(result.problem)
    assert "SHA-256" in str(result.problem)


def test_a_sealed_ledger_verifies_and_continues_its_chain(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite", seal_threshold=1000)
    for i in range(2500):
        _usage(ledger, f"r{i}")
    assert ledger.wait_for_upkeep(timeout=60)  # seals run in the background
    assert [s["rows"] for s in ledger.segments("usage_events")] == [1000, 1000]
    assert ledger.live_count("usage_events") == 500
    result = ledger.verify()
    assert result.ok and result.rows_checked == 2500 + 2 and result.segments_checked == 2


def test_four_processes_append_40000_rows_gapless(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    Ledger(path).close()
    writers = [_writer(path, 10_000, f"w{i}") for i in range(4)]
    outputs = [w.communicate(timeout=600) for w in writers]
    assert [w.returncode for w in writers] == [0, 0, 0, 0], [o[1][-500:] for o in outputs]
    assert all("locked" not in err for _, err in outputs)
    with sqlite3.connect(path) as conn:
        seqs = [r[0] for r in conn.execute("SELECT seq FROM usage_events ORDER BY seq")]
    assert seqs == list(range(1, 40_001))
    assert len(set(_request_ids(path))) == 40_000
    assert Ledger(path).verify().ok


# A recording process: each request's intent made durable (spooled; then acknowledged on
# stdout), its outcome handed over without waiting, as the client records.
RECORDING_SCRIPT = """
import sys
from etoro_nb.ledger import Ledger
from etoro_nb.ledger.recorder import UsageRecorder
recorder = UsageRecorder(Ledger(sys.argv[1], seal_threshold=None), principal="owner",
                         environment="sandbox", user_key="k")
for i in range(100_000):
    request_id = f"{sys.argv[2]}-{i:06d}"
    recorder.intent("getAuthenticatedUserProfile", "GET", "/api/v1/me", request_id, 1)
    sys.stdout.write(request_id + "\\n")
    sys.stdout.flush()
    recorder.outcome("getAuthenticatedUserProfile", "GET", "/api/v1/me", request_id, 1, 200,
                     None, 1.0)
"""


def _phases(path: Path, tag: str) -> tuple[list[str], set[str]]:
    """The intents (in order) and the outcomes of one writer's requests."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT request_id, phase FROM usage_events WHERE request_id LIKE ? "
                            "ORDER BY seq", (f"{tag}-%",)).fetchall()
    return [r for r, p in rows if p == "intent"], {r for r, p in rows if p == "outcome"}


def test_sigkill_loses_no_acknowledged_intent_and_at_most_the_pending_outcome(
    tmp_path: Path
) -> None:
    path = tmp_path / "l.sqlite"
    Ledger(path).close()
    rng = random.Random(20261127)
    acknowledged: list[str] = []
    unanswered: list[str] = []
    for round_ in range(12):
        steady = _writer(path, 400, f"steady{round_}")
        tag = f"victim{round_}"
        victim = subprocess.Popen([sys.executable, "-c", RECORDING_SCRIPT, str(path), tag],
                                  cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        assert victim.stdout is not None
        # Kill after a random number of acknowledgements: a random moment in its work.
        for _ in range(rng.randint(1, 300)):
            acknowledged.append(victim.stdout.readline().strip())
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        victim.stdout.close()
        assert victim.stderr is not None
        victim.stderr.close()
        out, _ = steady.communicate(timeout=120)
        acknowledged += out.split()
        # The victim's acknowledged intents may still be in its spool only: the next
        # ledger opened on the file recovers them.
        Ledger(path).close()
        assert list(path.with_name(path.name + ".spool").glob("*.jsonl")) == []
        stored = set(_request_ids(path))
        assert not [r for r in acknowledged if r not in stored]
        # An outcome is committed with the next intent: only the newest stored request's
        # outcome may be lost (it was still waiting for the next intent).
        intents, outcomes = _phases(path, tag)
        assert outcomes <= set(intents)
        missing = [r for r in intents if r not in outcomes]
        assert missing in ([], intents[-1:]), missing
        unanswered += missing
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert Ledger(path).verify().ok
    # A lost outcome shows as an unanswered request, as if the process died mid-request.
    requests = frames.requests(Ledger(path))
    shown = requests.filter(requests["request_id"].is_in(unanswered))
    assert shown["phase"].to_list() == ["intent"] * len(unanswered)
    assert shown["status"].null_count() == len(unanswered)


def test_an_unwritable_ledger_stops_the_request(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "l.sqlite"
    ledger = Ledger(path, busy_timeout=0.05)
    creds = server.credentials
    client = EtoroClient(base_url=creds.base_url, api_key=creds.api_key, user_key=creds.user_key,
                    environment="sandbox", ledger=ledger)
    monkeypatch.setattr(ledger_core, "LOCK_DEADLINE", 0.2)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holds the file: no write can land
    with pytest.raises(errors.LedgerError, match="cannot write the ledger"):
        client.agent_portfolios.create("agent01", 500, scopes=[DEMO_READ])
    blocker.execute("ROLLBACK")
    blocker.close()
    owner = EtoroClient(base_url=creds.base_url, api_key=creds.api_key, user_key=creds.user_key,
                   environment="sandbox")
    assert owner.agent_portfolios.list() == []  # nothing reached the server
    client.close()
    owner.close()


def test_canary_secret_appears_in_no_ledger_file(
    server: SandboxServer, tmp_path: Path, make_client: Callable[..., EtoroClient],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rows wait in the spool until a read or a seal commits them: the spool is scanned too.
    monkeypatch.setattr(ledger_core, "OUTCOME_LINGER", 3600.0)
    ledger = Ledger(tmp_path / "l.sqlite", seal_threshold=None)
    client = make_client(server, ledger=ledger)
    created = client.agent_portfolios.create("canary", 1000, scopes=ALL_SCOPES)
    canary = created.token.secret.get_secret_value()
    agent = client.as_agent(created.token)
    agent.trading("demo").open_order(1001, amount=100)
    agent.me()
    client.agent_portfolios.update_token(created.portfolio.id, created.token.id,
                                         scopes=[DEMO_READ])
    with pytest.raises(errors.ScopeError):
        agent.trading("demo").open_order(1001, amount=100)
    rotation = client.agent_portfolios.rotate_token(created.portfolio.id, created.token.id)
    rotation.confirm()
    with pytest.raises(errors.AuthenticationError):
        agent.me()
    ledger.seal("usage_events")
    ledger.seal("lifecycle_events")
    _usage(ledger, "after-seal")
    client.agent_portfolios.list()  # its rows wait in the spool
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files)
    assert any(p.parent == ledger.spool_dir and p.stat().st_size for p in files)
    assert any(p.name.endswith("-wal") for p in files)
    for file in files:
        data = file.read_bytes()
        for secret in (canary, rotation.new.secret.get_secret_value(), server.credentials.user_key,
                       server.credentials.api_key):
            assert secret.encode() not in data, file.name
    assert ledger.verify().ok


FINGERPRINT_SCRIPT = """
import sys
from etoro_nb.ledger import Ledger
sys.stdin.readline()  # all start together
print(Ledger(sys.argv[1]).fingerprint("same-secret"))
"""


def test_processes_opening_a_new_ledger_at_once_share_one_key(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    procs = [subprocess.Popen([sys.executable, "-c", FINGERPRINT_SCRIPT, str(path)], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(6)]
    outs = [p.communicate("go\n", timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [err for _, err in outs]
    assert len({out.strip() for out, _ in outs}) == 1  # one key: fingerprints agree
    assert [p.name for p in tmp_path.iterdir() if ".key." in p.name] == []  # no drafts left


def test_a_damaged_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    Ledger(path)
    path.with_name("l.sqlite.key").write_text("")
    with pytest.raises(errors.LedgerError, match="key file"):
        Ledger(path)


def _runtime_imports(path: Path) -> set[str]:
    """The etoro_nb modules a file imports when it runs (anywhere, functions included),
    leaving out imports under ``if TYPE_CHECKING:``."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in found if m.startswith("etoro_nb")}


def test_no_module_the_ledger_core_uses_imports_it_back() -> None:
    package = ROOT / "etoro_nb" / "ledger"
    used = {m.rsplit(".", 1)[1] for m in _runtime_imports(package / "core.py")
            if m.startswith("etoro_nb.ledger.")}
    assert {"sealing", "scan", "verify", "upkeep", "checkpoint"} <= used
    cycles = {name: sorted(m for m in _runtime_imports(package / f"{name}.py")
                           if m in ("etoro_nb.ledger", "etoro_nb.ledger.core"))
              for name in used}
    assert {name: found for name, found in cycles.items() if found} == {}


def _recorder(ledger: Ledger) -> UsageRecorder:
    return UsageRecorder(ledger, principal="owner", environment="sandbox", user_key="k")


def _request(recorder: UsageRecorder, request_id: str) -> None:
    recorder.intent("getAuthenticatedUserProfile", "GET", "/api/v1/me", request_id, 1)
    recorder.outcome("getAuthenticatedUserProfile", "GET", "/api/v1/me", request_id, 1, 200,
                     None, 1.0)


def test_spooled_rows_are_committed_in_batches_off_the_request_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No 5 ms limit in the way (a loaded machine may pause this thread that long).
    monkeypatch.setattr(ledger_core, "OUTCOME_LINGER", 3600.0)
    ledger = Ledger(tmp_path / "l.sqlite", seal_threshold=None)
    recorder = _recorder(ledger)
    before = ledger._commits
    for i in range(50):
        _request(recorder, f"r{i}")
    assert ledger._commits == before  # no request waited for a commit
    ledger.close()  # commits them all
    assert ledger._commits - before == 1
    assert [p for _, p in _phase_rows(tmp_path / "l.sqlite")] == ["intent", "outcome"] * 50


def test_a_busy_caller_commits_each_full_batch_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The deadline of spooled rows slides while rows keep coming, so the writer thread
    # never competes with a busy caller: every BATCH_ROWS rows, the caller commits them.
    monkeypatch.setattr(ledger_core, "OUTCOME_LINGER", 3600.0)
    monkeypatch.setattr(writer_module, "BATCH_ROWS", 10)
    ledger = Ledger(tmp_path / "l.sqlite", seal_threshold=None)
    recorder = _recorder(ledger)
    committers: list[str] = []
    commit = ledger._commit_jobs

    def watched(jobs: Any) -> list[int]:
        committers.append(threading.current_thread().name)
        return commit(jobs)

    monkeypatch.setattr(ledger._writer, "_commit", watched)
    for i in range(25):  # 50 rows: 5 full batches
        _request(recorder, f"r{i}")
    assert committers == [threading.current_thread().name] * 5
    assert len(_phase_rows(tmp_path / "l.sqlite")) == 50
    ledger.close()


def _phase_rows(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT request_id, phase FROM usage_events ORDER BY seq").fetchall()


EXIT_SCRIPT = """
import sys
from etoro_nb.ledger import Ledger
from etoro_nb.ledger.recorder import UsageRecorder
recorder = UsageRecorder(Ledger(sys.argv[1]), principal="owner", environment="sandbox",
                         user_key="k")
recorder.intent("getAuthenticatedUserProfile", "GET", "/api/v1/me", "last", 1)
recorder.outcome("getAuthenticatedUserProfile", "GET", "/api/v1/me", "last", 1, 200, None, 1.0)
"""  # and exits without closing the ledger


def test_an_outcome_handed_over_is_committed_at_interpreter_exit(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    subprocess.run([sys.executable, "-c", EXIT_SCRIPT, str(path)], cwd=ROOT, check=True,
                   timeout=120)
    assert _phase_rows(path) == [("last", "intent"), ("last", "outcome")]


def test_reads_see_the_outcomes_handed_over(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite", seal_threshold=None)
    _request(_recorder(ledger), "r1")
    assert ledger.live_count("usage_events") == 2
    assert frames.requests(ledger)["status"].to_list() == [200]
    ledger.close()
