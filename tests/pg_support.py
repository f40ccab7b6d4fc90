"""A real PostgreSQL server for the tests, started in a temporary directory.

``postgres`` (session-scoped, made available to every test by ``conftest``) runs
``initdb`` and ``postgres`` from the machine's PostgreSQL (``/usr/lib/postgresql/<n>/bin``,
newest first, or the directory ``pg_config --bindir`` names) on a free port of 127.0.0.1,
its unix socket in the temporary directory, with ``trust`` authentication (roles still
hold their privileges; no password is ever needed or shown). ``initdb`` refuses to run as
root, so as root the server runs as the ``postgres`` OS user (``runuser``). The server is
stopped at the end of the session. ``fsync`` is off: the tests kill clients, never the
machine (the WAL is still written and "flushed" in order, which is what they check).

Where no PostgreSQL is found the tests that need it skip, saying why; with
``ETORO_NB_REQUIRE_POSTGRES=1`` (set by ``.ci/run``) they fail instead.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REQUIRE = "ETORO_NB_REQUIRE_POSTGRES"
SUPERUSER = "postgres"


def find_bindir() -> Path | None:
    """The directory of ``initdb`` and ``postgres``: Debian's layout, else pg_config's."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
                   reverse=True)
    if found:
        return found[0].parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        bindir = Path(out.stdout.strip())
        if (bindir / "initdb").is_file():
            return bindir
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """A running test server: ``url(role, database)``; ``stop()`` and ``start()`` it."""

    bindir: Path
    root: Path
    port: int
    run_as: list[str]
    fsync: bool = False
    _databases: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, role: str = SUPERUSER, database: str = "postgres") -> str:
        return f"postgresql://{role}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        out = subprocess.run([*self.run_as, *args], capture_output=True, text=True, check=False,
                             cwd=self.root)
        if out.returncode:
            log = (self.root / "server.log")
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed: {out.stderr.strip()}\n{tail}")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   f"-c fsync={'on' if self.fsync else 'off'} -c max_connections=60 "
                   # An asynchronous commit stays unflushed for seconds, not 200 ms: a test
                   # sees whether an append waited for its flush.
                   "-c wal_writer_delay=10000 -c shared_buffers=32MB")
        self._run(str(self.bindir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.data),
                  "-l", str(self.root / "server.log"), "-o", options)

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.data))

    def admin(self, sql: str, database: str = "postgres") -> None:
        """Run ``sql`` as the superuser, outside a transaction (CREATE DATABASE may not be in one)."""
        import psycopg

        with psycopg.connect(self.url(SUPERUSER, database), autocommit=True) as conn:
            conn.execute(sql.encode())

    def new_database(self) -> str:
        """A fresh, empty database's name."""
        name = f"ledger_{next(self._databases)}"
        self.admin(f"CREATE DATABASE {name}")
        return name


def start_server(*, fsync: bool = False) -> PostgresServer:
    """initdb and start a server in a new temporary directory (``fsync``: as in production,
    for benchmarks)."""
    bindir = find_bindir()
    if bindir is None:
        raise LookupError("no PostgreSQL server binaries (initdb) in /usr/lib/postgresql/*/bin "
                          "or pg_config --bindir; install Debian's postgresql package")
    root = Path(tempfile.mkdtemp(prefix="etoro-nb-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: the server runs as the postgres OS user
        shutil.chown(root, user=SUPERUSER)
        run_as = ["runuser", "-u", SUPERUSER, "--"]
    server = PostgresServer(bindir, root, _free_port(), run_as, fsync)
    server._run(str(bindir / "initdb"), "-D", str(server.data), "-U", SUPERUSER,
                "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
    server.start()
    return server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the tests' own, for the session; skipped (failed in CI) if none."""
    try:
        import psycopg  # noqa: F401
        server = start_server()
    except (ImportError, LookupError, RuntimeError, OSError) as exc:
        if os.environ.get(REQUIRE) == "1":
            pytest.fail(f"PostgreSQL is required here ({REQUIRE}=1) but could not start: {exc}")
        pytest.skip(f"no PostgreSQL server for the tests: {exc}")
    try:
        yield server
    finally:
        with contextlib.suppress(RuntimeError):
            server.stop()
        shutil.rmtree(server.root, ignore_errors=True)
