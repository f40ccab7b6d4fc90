"""The intent spool: an intent is on disk before its request leaves, a dead process's spool
is recovered exactly once, and a ledger that can't be written stops the next request."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from etoro_nb import errors
from etoro_nb.client import EtoroClient
from etoro_nb.ledger import Ledger
from etoro_nb.ledger import core as ledger_core
from etoro_nb.sandbox import SandboxServer

ROOT = Path(__file__).resolve().parents[1]


class Watching(httpx.HTTPTransport):
    """A real transport that, before each request leaves, reads the ledger's spool files."""

    def __init__(self, spool_dir: Path) -> None:
        super().__init__()
        self.spool_dir = spool_dir
        self.sent: list[str] = []
        self.spooled_before: list[bool] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request_id = request.headers["x-request-id"]
        self.sent.append(request_id)
        self.spooled_before.append(any(
            row["request_id"] == request_id and row["phase"] == "intent"
            for row in _spooled(self.spool_dir)))
        return super().handle_request(request)


def _spooled(spool_dir: Path) -> list[dict[str, object]]:
    return [json.loads(line) for path in sorted(spool_dir.glob("*.jsonl"))
            for line in path.read_text().splitlines()]


def _client(server: SandboxServer, ledger: Ledger, transport: httpx.BaseTransport) -> EtoroClient:
    creds = server.credentials
    return EtoroClient(base_url=creds.base_url, api_key=creds.api_key, user_key=creds.user_key,
                  environment="sandbox", ledger=ledger, transport=transport)


def _intents(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute(
            "SELECT request_id FROM usage_events WHERE phase = 'intent' ORDER BY seq")]


def test_an_intent_is_in_the_spool_before_its_request_leaves(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The writer commits (and empties the spool) only at close: a commit racing the
    # transport's look would hide the spooled line.
    monkeypatch.setattr(ledger_core, "OUTCOME_LINGER", 3600.0)
    ledger = Ledger(tmp_path / "l.sqlite", seal_threshold=None)
    transport = Watching(ledger.spool_dir)
    client = _client(server, ledger, transport)
    for _ in range(5):
        client.agent_portfolios.list()
    client.close()
    ledger.close()
    assert len(transport.sent) == 5 and all(transport.spooled_before)
    assert _intents(ledger.path) == transport.sent  # committed in the order sent
    assert list(ledger.spool_dir.iterdir()) == []  # all committed: nothing left to recover


# Records requests through the spool, with nothing committed (the writer waits an hour),
# acknowledges them, then waits to be killed.
SPOOLING_SCRIPT = """
import sys, time
from etoro_nb.ledger import core, writer
from etoro_nb.ledger.recorder import UsageRecorder
core.OUTCOME_LINGER = 3600.0
writer.BATCH_ROWS = 10**9
ledger = core.Ledger(sys.argv[1], seal_threshold=None)
recorder = UsageRecorder(ledger, principal="owner", environment="sandbox", user_key="k")
for i in range(int(sys.argv[2])):
    recorder.intent("getAuthenticatedUserProfile", "GET", "/api/v1/me", f"r{i:04d}", 1)
    recorder.outcome("getAuthenticatedUserProfile", "GET", "/api/v1/me", f"r{i:04d}", 1, 200,
                     None, 1.0)
print("spooled", flush=True)
time.sleep(3600)
"""

OPEN_SCRIPT = """
import sys
from etoro_nb.ledger import Ledger
sys.stdin.readline()  # all open at once
Ledger(sys.argv[1]).close()
"""


def _spool_and_kill(path: Path, count: int) -> None:
    proc = subprocess.Popen([sys.executable, "-c", SPOOLING_SCRIPT, str(path), str(count)],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "spooled\n"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()


def test_a_killed_process_spool_is_recovered_exactly_once_by_the_next_openers(
    tmp_path: Path
) -> None:
    path = tmp_path / "l.sqlite"
    Ledger(path).close()
    _spool_and_kill(path, 200)
    assert _intents(path) == []  # nothing was committed: the rows are in the spool only
    openers = [subprocess.Popen([sys.executable, "-c", OPEN_SCRIPT, str(path)], cwd=ROOT,
                                stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(4)]
    results = [p.communicate("go\n", timeout=120) for p in openers]
    assert [p.returncode for p in openers] == [0] * 4, [err for _, err in results]
    # Every intent once, in spool order; every outcome but the last held back (its line
    # waits for the next intent's write, as an outcome waited for the next commit).
    assert _intents(path) == [f"r{i:04d}" for i in range(200)]
    with sqlite3.connect(path) as conn:
        outcomes = conn.execute("SELECT count(*) FROM usage_events WHERE phase = 'outcome'"
                                ).fetchone()[0]
    assert outcomes == 199
    assert list(path.with_name("l.sqlite.spool").glob("*.jsonl")) == []
    ledger = Ledger(path)
    assert ledger.verify().ok
    ledger.close()


# Spools ten intents and commits them (sealing the first five), then puts their lines back
# in its spool, as a kill between a commit and the emptying leaves it, and spools five more.
COMMITTED_SCRIPT = """
import os, signal, sys
from etoro_nb.ledger import core, writer
from etoro_nb.ledger.recorder import UsageRecorder
core.OUTCOME_LINGER = 3600.0
writer.BATCH_ROWS = 10**9
ledger = core.Ledger(sys.argv[1], seal_threshold=None)
recorder = UsageRecorder(ledger, principal="owner", environment="sandbox", user_key="k")
def request(i):
    recorder.intent("getAuthenticatedUserProfile", "GET", "/api/v1/me", f"r{i:02d}", 1)
for i in range(5):
    request(i)
saved = ledger._spool.path.read_bytes()
ledger.flush()
ledger.seal("usage_events")
for i in range(5, 10):
    request(i)
saved += ledger._spool.path.read_bytes()
ledger.flush()
os.write(ledger._spool._fd, saved)
for i in range(10, 15):
    request(i)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_recovery_skips_rows_already_committed_live_or_sealed(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    subprocess.run([sys.executable, "-c", COMMITTED_SCRIPT, str(path)], cwd=ROOT, timeout=120,
                   check=False)
    assert len(_spooled(path.with_name("l.sqlite.spool"))) == 15
    ledger = Ledger(path, seal_threshold=None)
    intents = ledger.scan("usage_events", phase="intent").collect()["request_id"].to_list()
    assert intents == [f"r{i:02d}" for i in range(15)]
    assert len(ledger.segments("usage_events")) == 1
    assert ledger.verify().ok
    ledger.close()


class Counting(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        return super().handle_request(request)


def test_an_unwritable_spool_directory_means_the_request_is_not_sent(
    server: SandboxServer, tmp_path: Path
) -> None:
    ledger = Ledger(tmp_path / "l.sqlite", seal_threshold=None)
    ledger.spool_dir.write_text("")  # a file where the spool's folder must be
    transport = Counting()
    client = _client(server, ledger, transport)
    with pytest.raises(errors.LedgerError, match="cannot open the ledger's spool"):
        client.agent_portfolios.list()
    assert transport.sent == 0
    assert ledger.live_count("usage_events") == 0  # nothing half-recorded either
    client.close()
    ledger.close()


def test_the_writers_failure_makes_the_next_intent_fail_and_its_rows_are_recovered(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    make_client: Callable[..., EtoroClient]
) -> None:
    path = tmp_path / "l.sqlite"
    ledger = Ledger(path, busy_timeout=0.05, seal_threshold=None)
    monkeypatch.setattr(ledger_core, "LOCK_DEADLINE", 0.2)
    transport = Counting()
    client = _client(server, ledger, transport)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holds the file: no commit can land
    client.agent_portfolios.list()  # its intent is durable in the spool: it is sent
    ledger.flush()  # the writer tries, and fails
    with pytest.raises(errors.LedgerError, match="cannot write the ledger"):
        client.agent_portfolios.list()
    assert transport.sent == 1
    blocker.execute("ROLLBACK")
    blocker.close()
    client.close()
    ledger.close()
    assert _intents(path) == []
    assert len(_spooled(ledger.spool_dir)) == 2  # the intent and outcome, kept
    reopened = Ledger(path, seal_threshold=None)
    with sqlite3.connect(path) as conn:
        phases = [r[0] for r in conn.execute("SELECT phase FROM usage_events ORDER BY seq")]
    assert phases == ["intent", "outcome"]
    assert reopened.verify().ok
    reopened.close()


CONCURRENT_SCRIPT = """
import sys
from etoro_nb.ledger import Ledger
from etoro_nb.ledger.recorder import UsageRecorder
ledger = Ledger(sys.argv[1], seal_threshold=None)
recorder = UsageRecorder(ledger, principal="owner", environment="sandbox", user_key="k")
sys.stdin.readline()  # all start together
for i in range(int(sys.argv[3])):
    request_id = f"{sys.argv[2]}-{i:04d}"
    recorder.intent("getAuthenticatedUserProfile", "GET", "/api/v1/me", request_id, 1)
    recorder.outcome("getAuthenticatedUserProfile", "GET", "/api/v1/me", request_id, 1, 200,
                     None, 1.0)
ledger.close()
"""


def test_concurrent_processes_with_their_own_spools_make_a_gapless_verified_chain(
    tmp_path: Path
) -> None:
    path = tmp_path / "l.sqlite"
    Ledger(path).close()
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT_SCRIPT, str(path), f"p{n}",
                               "500"], cwd=ROOT, stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for n in range(3)]
    results = [p.communicate("go\n", timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 3, [err[-500:] for _, err in results]
    with sqlite3.connect(path) as conn:
        seqs = [r[0] for r in conn.execute("SELECT seq FROM usage_events ORDER BY seq")]
    assert seqs == list(range(1, 3001))
    intents = _intents(path)
    for n in range(3):  # each process's requests in its own order
        assert [r for r in intents if r.startswith(f"p{n}-")] == [f"p{n}-{i:04d}"
                                                                  for i in range(500)]
    assert list(path.with_name("l.sqlite.spool").iterdir()) == []
    assert Ledger(path).verify().ok
