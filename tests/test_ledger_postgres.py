"""The shared PostgreSQL ledger, on a real server of the tests' own (``pg_support``):
concurrent writers killed mid-run, append-only roles and triggers, tail deletion against a
checkpoint, a server that is down, and frames reading it unchanged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import polars as pl
import psycopg
import pytest

import etoro_nb as enb
from etoro_nb import cli
from etoro_nb.client import EtoroClient
from etoro_nb.errors import LedgerError
from etoro_nb.ledger import Ledger, schema
from etoro_nb.ledger.checkpoint import write_checkpoint
from etoro_nb.ledger.pg_admin import init_postgres
from etoro_nb.ledger.pg_schema import pg_migrations
from etoro_nb.ledger.postgres import PostgresLedger
from etoro_nb.ledger.tables import TABLES
from etoro_nb.sandbox import SandboxServer
from tests.helpers import Api
from tests.pg_support import SUPERUSER, PostgresServer

ROOT = Path(__file__).resolve().parents[1]
WRITER = "ledger_writer"
DEMO_READ = "etoro-public:trade.demo:read"
DEMO_WRITE = "etoro-public:trade.demo:write"


@pytest.fixture
def database(postgres: PostgresServer) -> str:
    """A fresh ledger database, set up by its administrator with the writer role."""
    name = postgres.new_database()
    init_postgres(postgres.url(SUPERUSER, name), WRITER)
    return name


@pytest.fixture
def url(postgres: PostgresServer, database: str) -> str:
    """The writer role's URL of the ledger."""
    return postgres.url(WRITER, database)


def _intent(ledger: Ledger, request_id: str) -> int:
    return ledger.append_usage(phase="intent", request_id=request_id, attempt=1, principal="agent",
                               environment="sandbox", method="GET", route="/api/v1/me",
                               operation_id="getAuthenticatedUserProfile")


def _writers(url: str, count: int, kill_after: dict[int, int], n: int = 8
             ) -> tuple[list[subprocess.Popen[str]], dict[int, list[str]]]:
    """``n`` writer processes of ``count`` appends each; writer ``i`` in ``kill_after`` is
    SIGKILLed once it has acknowledged that many. Returns the processes and each one's acks
    (request ids printed after their append returned)."""
    procs = [subprocess.Popen([sys.executable, "-m", "tests.ledger_writer", url, str(count), f"w{i}"],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT) for i in range(n)]
    acks: dict[int, list[str]] = {i: [] for i in range(n)}

    def read(i: int, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.endswith("\n"):
                acks[i].append(line[:-1])
            if len(acks[i]) == kill_after.get(i):
                os.kill(proc.pid, signal.SIGKILL)
        proc.stdout.close()
    readers = [threading.Thread(target=read, args=(i, p)) for i, p in enumerate(procs)]
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    for p in procs:
        p.wait()
    return procs, acks


def test_eight_writers_two_killed_lose_no_acknowledged_event(url: str) -> None:
    count, kill_after = 5000, {2: 600, 5: 1800}  # far from the end: a lagging reader still kills mid-run
    procs, acks = _writers(url, count, kill_after)
    for i, proc in enumerate(procs):
        if i in kill_after:
            assert proc.returncode == -signal.SIGKILL, f"writer {i} was not killed mid-run"
            assert len(acks[i]) < count
        else:
            assert proc.returncode == 0, f"writer {i} failed"
            assert len(acks[i]) == count
    with Ledger.open(url) as ledger:
        recorded = ledger.scan("usage_events").select("seq", "request_id").collect()
        result = ledger.verify()
    assert result.ok, result.problem
    assert result.rows_checked == recorded.height
    ids = set(recorded["request_id"].to_list())
    lost = [rid for i in acks for rid in acks[i] if rid not in ids]
    assert lost == [], f"{len(lost)} acknowledged events are missing, e.g. {lost[:3]}"
    assert recorded.height == len(ids)  # nothing recorded twice
    assert recorded["seq"].to_list() == list(range(1, recorded.height + 1))  # one gapless chain
    assert recorded.height >= 6 * count + sum(len(acks[i]) for i in kill_after)


def test_the_writer_role_can_only_insert(postgres: PostgresServer, database: str, url: str) -> None:
    with Ledger.open(url) as ledger:
        _intent(ledger, "r-1")
        _intent(ledger, "r-2")
    with psycopg.connect(url, autocommit=True) as conn:
        for sql in ("UPDATE usage_events SET status = 200", "DELETE FROM usage_events",
                    "TRUNCATE usage_events", "DELETE FROM lifecycle_events",
                    "UPDATE ledger_meta SET value = 'x'", "ALTER TABLE usage_events DISABLE TRIGGER ALL",
                    "INSERT INTO ledger_meta (key, value) VALUES ('k', 'v')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql.encode())
    # The owner is refused by the triggers, not by a grant.
    with psycopg.connect(postgres.url(SUPERUSER, database), autocommit=True) as conn:
        for sql in ("UPDATE usage_events SET status = 200 WHERE seq = 1",
                    "DELETE FROM usage_events WHERE seq = 2", "TRUNCATE usage_events"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(sql.encode())
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="identity"):
            conn.execute(b"UPDATE ledger_meta SET value = 'x' WHERE key = 'ledger_id'")
    with Ledger.open(url) as ledger:
        assert ledger.scan("usage_events").collect()["request_id"].to_list() == ["r-1", "r-2"]
        assert ledger.verify().ok


def test_a_tail_delete_by_a_superuser_is_detected_against_a_checkpoint(
        postgres: PostgresServer, database: str, url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    key, checkpoints = tmp_path / "keys" / "checkpoint.key", tmp_path / "checkpoints.jsonl"
    with Ledger.open(url) as ledger:
        for i in range(20):
            _intent(ledger, f"r-{i}")
        written = write_checkpoint(ledger, checkpoints, key)
        assert written.heads["usage_events"].seq == 20
        assert ledger.verify(checkpoints, key=key).ok
    with psycopg.connect(postgres.url(SUPERUSER, database), autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")  # a superuser skips the triggers
        conn.execute("DELETE FROM usage_events WHERE seq > 15")
    with Ledger.open(url) as ledger:
        assert ledger.verify().ok  # the chain alone can't tell: the rest is consistent
        result = ledger.verify(checkpoints, key=key)
    assert not result.ok
    assert result.problem is not None and "usage_events rows 16 to 20 were removed" in result.problem
    code = cli.main(["ledger", "verify", url, "--checkpoint", str(checkpoints), "--key", str(key)])
    assert code == 1
    assert "rows 16 to 20 were removed" in capsys.readouterr().out


def test_a_row_forged_by_a_writer_breaks_the_chain(url: str) -> None:
    with Ledger.open(url) as ledger:
        _intent(ledger, "r-1")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO usage_events (seq, ts_us, phase, request_id, attempt, principal, "
                     "environment, method, route, operation_id, prev_hash, row_hash) VALUES "
                     "(2, 1, 'outcome', 'r-1', 1, 'agent', 'sandbox', 'GET', '/x', 'op', %s, %s)",
                     (schema.GENESIS, "f" * 64))
    with Ledger.open(url) as ledger:
        result = ledger.verify()
    assert not result.ok
    assert result.problem == "usage_events row 2 in the PostgreSQL ledger: its link to row 1 is broken"


def test_an_append_is_flushed_before_it_is_acknowledged(postgres: PostgresServer, database: str,
                                                        url: str) -> None:
    """Appends commit asynchronously (the chain lock goes before the disk flush), so each
    must wait for the flush of its commit before it returns (``wal_writer_delay`` of the test
    server is 10 s: nothing else flushes it in time)."""
    admin = postgres.url(SUPERUSER, database)
    with Ledger.open(url) as ledger, psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        start = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
        _intent(ledger, "r-1")
        xid = conn.execute("SELECT xmin::text FROM usage_events WHERE seq = 1").fetchone()
        flushed = conn.execute(  # the records of the WAL on disk (this reads only those)
            "SELECT xid::text, record_type FROM pg_get_wal_records_info_till_end_of_wal(%s::pg_lsn) "
            "WHERE resource_manager = 'Transaction'", start).fetchall()
    assert xid is not None and (xid[0], "COMMIT") in flushed


def _remaining(owner: Api) -> int:
    return int(owner.get("/api/v1/me").headers["X-RateLimit-Remaining"])


def test_with_the_server_down_the_client_sends_nothing(
        postgres: PostgresServer, url: str, server: SandboxServer, owner: Api,
        make_client: Callable[..., EtoroClient]) -> None:
    ledger = Ledger.open(url)
    client = make_client(server, ledger=ledger)
    client.me()  # recorded: intent and outcome
    before = _remaining(owner)
    postgres.stop()
    try:
        with pytest.raises(LedgerError, match=r"cannot write the PostgreSQL ledger at "
                                              rf"postgresql://{WRITER}@127\.0\.0\.1:\d+/"):
            client.me()
        with pytest.raises(LedgerError):
            client.agent_portfolios.create("pgdown1", 1000, scopes=[DEMO_READ])
        # The sandbox saw only this probe since: neither call reached it.
        assert before - _remaining(owner) == 1
        assert owner.get("/api/v1/agent-portfolios").json()["agentPortfolios"] == []
    finally:
        postgres.start()
    client.me()  # the server is back: the ledger reconnects
    rows = enb.frames.requests(ledger)
    ledger.close()
    assert rows["operation_id"].to_list() == ["getAuthenticatedUserProfile"] * 2


def test_connect_to_a_ledger_server_that_is_down_raises_a_clear_error(
        postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.pg_support import _free_port

    down = f"postgresql://someone:hunter2-secret@127.0.0.1:{_free_port()}/ledger"
    with pytest.raises(LedgerError, match=r"cannot reach the PostgreSQL ledger at "
                                          r"postgresql://someone:\*\*\*@127\.0\.0\.1") as err:
        enb.connect(ledger=down)
    assert "hunter2" not in str(err.value)
    with pytest.raises(LedgerError, match="cannot reach"):
        Ledger.open(down)
    monkeypatch.setenv("ETORO_NB_LEDGER", down)  # the hosts' setting
    with pytest.raises(LedgerError, match="cannot reach") as err:
        enb.connect()
    assert "hunter2" not in str(err.value)
    with pytest.raises(ValueError, match="takes no durability"):  # a spool would send unrecorded
        Ledger.open(postgres.url(), durability="normal")


def test_init_postgres_of_a_server_that_is_down_fails_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.pg_support import _free_port

    down = f"postgresql://admin:hunter2-secret@127.0.0.1:{_free_port()}/ledger"
    assert cli.main(["ledger", "init-postgres", down, "--writer-role", WRITER]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the PostgreSQL ledger at postgresql://admin:***@127.0.0.1" in err
    assert "hunter2" not in err


def test_a_password_in_the_url_is_shown_nowhere(postgres: PostgresServer, database: str,
                                                 tmp_path: Path) -> None:
    secret = "pw-never-shown"  # the test server trusts local roles: the password goes unused
    url = f"postgresql://{WRITER}:{secret}@127.0.0.1:{postgres.port}/{database}"
    checkpoints = tmp_path / "checkpoints.jsonl"
    with Ledger.open(url) as ledger:
        _intent(ledger, "r-1")
        write_checkpoint(ledger, checkpoints, tmp_path / "keys" / "checkpoint.key")
        shown = [repr(ledger), ledger.where, str(ledger.verify(checkpoints,
                                                               key=tmp_path / "keys" / "checkpoint.key"))]
    shown.append(checkpoints.read_text())
    assert f"{WRITER}:***@" in shown[0]
    assert not [text for text in shown if secret in text]


@pytest.mark.parametrize("url", [
    "postgresql://writer:hunter%2-secret@127.0.0.1:1/ledger",  # libpq quotes what it can't parse
    "postgresql://writer@127.0.0.1:1/ledger?sslpassword=hunter%2-secret",
])
def test_a_password_libpq_cannot_parse_is_not_quoted_back(url: str) -> None:
    from etoro_nb.ledger.pg_connect import connect

    with pytest.raises(LedgerError) as caught:
        connect(url)
    assert "hunter" not in str(caught.value) and "***" in str(caught.value)


def test_an_async_client_records_into_a_postgres_ledger(url: str, server: SandboxServer) -> None:
    import asyncio

    from etoro_nb.client import AsyncEtoroClient

    async def scenario(ledger: Ledger) -> None:
        creds = server.credentials
        async with AsyncEtoroClient(base_url=creds.base_url, api_key=creds.api_key,
                                    user_key=creds.user_key, environment="sandbox",
                                    allow_real=True, ledger=ledger) as client:
            await asyncio.gather(*(client.me() for _ in range(5)))

    with Ledger.open(url) as ledger:
        asyncio.run(scenario(ledger))
        requests = enb.frames.requests(ledger)
        assert ledger.verify().ok
    assert requests.height == 5 and requests["status"].to_list() == [200] * 5


def test_a_role_that_may_not_migrate_is_told_who_must(postgres: PostgresServer) -> None:
    name = postgres.new_database()
    postgres.admin(f"DO $$ BEGIN CREATE ROLE plain LOGIN; EXCEPTION WHEN duplicate_object THEN "
                   f"NULL; END $$; GRANT CONNECT ON DATABASE {name} TO plain")
    with pytest.raises(LedgerError, match="ask its administrator to run `etoro-nb ledger init-postgres"):
        Ledger.open(postgres.url("plain", name))


def test_frames_read_a_postgres_ledger_as_they_read_sqlite(
        url: str, make_server: Callable[..., SandboxServer],
        make_client: Callable[..., EtoroClient], tmp_path: Path) -> None:
    def record(ledger: Ledger) -> None:
        client = make_client(make_server(seed=7), ledger=ledger)
        made = client.agent_portfolios.create("pgframe", 1000, scopes=[DEMO_READ])
        client.as_agent(made.token).me()

    sqlite, shared = Ledger(tmp_path / "l.sqlite"), Ledger.open(url)
    assert isinstance(shared, PostgresLedger)
    frames = []
    for ledger in (sqlite, shared):
        record(ledger)
        usage = enb.frames.usage(ledger).drop("seq", "ts", "request_id", "latency_ms")
        lifecycle = enb.frames.lifecycle(ledger).drop("seq", "ts", "request_id", "portfolio_id",
                                                      "token_id")
        frames.append((usage, lifecycle))
        ledger.close()
    (usage_a, life_a), (usage_b, life_b) = frames
    assert usage_b.schema == usage_a.schema and life_b.schema == life_a.schema
    assert usage_b.drop("portfolio_id", "token_id", "token_fingerprint").equals(
        usage_a.drop("portfolio_id", "token_id", "token_fingerprint"))
    assert life_b.equals(life_a)
    assert usage_b.filter(pl.col("principal") == "agent")["token_id"].null_count() == 0


def test_every_migration_has_a_postgres_translation_and_builds_the_spec(
        postgres: PostgresServer, database: str) -> None:
    assert list(pg_migrations()) == list(schema.MIGRATIONS)
    with psycopg.connect(postgres.url(SUPERUSER, database)) as conn:
        for table in TABLES.values():
            columns = dict(conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = %s", (table.name,)).fetchall())
            types = {"INTEGER": "bigint", "TEXT": "text", "REAL": "double precision"}
            assert columns == {**{c.name: types[c.sql] for c in table.columns},
                               "prev_hash": "text", "row_hash": "text"}


def test_init_postgres_verify_and_checkpoint_from_the_command_line(
        postgres: PostgresServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name = postgres.new_database()
    assert cli.main(["ledger", "init-postgres", postgres.url(SUPERUSER, name),
                     "--writer-role", WRITER, "--reader-role", "ledger_auditor"]) == 0
    assert "writers connect as ledger_writer" in capsys.readouterr().out
    url = postgres.url(WRITER, name)
    with Ledger.open(url) as ledger:
        _intent(ledger, "r-1")
        ledger.append_lifecycle(kind="policy_set", portfolio_id="p", detail={"policy": {}})
    assert cli.main(["ledger", "verify", url]) == 0
    assert "ledger verified: 2 rows" in capsys.readouterr().out
    key, checkpoints = tmp_path / "keys" / "checkpoint.key", tmp_path / "checkpoints.jsonl"
    assert cli.main(["ledger", "checkpoint", url, "--to", str(checkpoints), "--key", str(key)]) == 0
    assert cli.main(["ledger", "verify", url, "--checkpoint", str(checkpoints), "--key", str(key)]) == 0
    out = capsys.readouterr().out
    assert "matches 1 signed checkpoint(s)" in out and "usage_events to row 1" in out
    assert cli.main(["ledger", "seal", url]) == 2
    assert "not sealed" in capsys.readouterr().err
    with psycopg.connect(postgres.url("ledger_auditor", name), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM usage_events").fetchone() == (1,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO token_fingerprints VALUES ('f', 't', 'p', 1)")


def test_synth_writes_a_postgres_ledger_once(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["ledger", "synth", "--events", "2000", "--out", url, "--portfolios", "3"]) == 0
    assert "wrote 2000 usage events" in capsys.readouterr().out
    with Ledger.open(url) as ledger:
        assert enb.frames.usage(ledger).height == 2000
        assert enb.frames.lifecycle(ledger).height >= 3
        assert ledger.verify().ok
    assert cli.main(["ledger", "synth", "--events", "2000", "--out", url]) == 2
    assert "already holds events" in capsys.readouterr().err


def test_an_owner_pause_on_one_host_stops_an_agent_session_on_another(
        url: str, make_server: Callable[..., SandboxServer],
        make_client: Callable[..., EtoroClient]) -> None:
    from etoro_nb.agent import AgentSession
    from etoro_nb.errors import PolicyViolation

    server = make_server(read_limit=10_000, write_limit=10_000)
    owner = make_client(server, ledger=Ledger.open(url), owns_ledger=True,
                        clock=server.sandbox.clock.now)
    bot = owner.agent_portfolios.create("pgpause1", 1000, scopes=[DEMO_READ, DEMO_WRITE])
    agent = make_client(server, ledger=Ledger.open(url), owns_ledger=True,  # another host's
                        clock=server.sandbox.clock.now).as_agent(bot.token)
    session = AgentSession(agent, None, account="demo")
    session.open_order(1001, amount=50)
    owner.agent_portfolios.pause(bot.portfolio.id, reason="audit")
    with pytest.raises(PolicyViolation, match="audit"):
        session.open_order(1001, amount=50)
    agent.close()
