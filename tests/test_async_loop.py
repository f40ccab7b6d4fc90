"""The async client never blocks its event loop on the ledger: intents are spooled (one small
write) on the loop and committed (with their lock waits and retries) by the ledger's writer
thread while the loop runs on."""

from __future__ import annotations

import asyncio
import gc
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from etoro_nb import frames
from etoro_nb.client import AsyncEtoroClient
from etoro_nb.ledger import Ledger
from etoro_nb.ratelimit import Quota
from etoro_nb.sandbox.config import DEFAULT_API_KEY, DEFAULT_USER_KEY

UNTHROTTLED = 10**9
REQUESTS = 200
AT_ONCE = 2  # few at once: the loop's own work per wake-up (parsing answers) stays well under STALL
STALL = 0.005  # the longest the loop may be kept from a timer it is due to run

# Another process holds the ledger's write lock 20 ms at a time, as a busy writer would: every
# commit of ours waits for it (SQLite's busy handler sleeps, and so does our retry).
LOCK_HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
sys.stdout.write("holding\\n")
sys.stdout.flush()
while True:
    conn.execute("BEGIN IMMEDIATE")
    time.sleep(0.02)
    conn.execute("ROLLBACK")
    time.sleep(0.01)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served() -> Iterator[str]:
    """A sandbox in its own process: its request handling takes no turns on this
    process's interpreter lock, so the loop's lag measured here is the client's."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "etoro_nb.cli", "sandbox", "serve", "--port", str(port),
         "--read-limit", str(UNTHROTTLED), "--write-limit", str(UNTHROTTLED)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(transport=httpx.HTTPTransport(retries=50)) as c:
        c.get(f"{base}/openapi.json")  # it binds after starting: wait until it answers
    yield base
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def contended(tmp_path: Path) -> Iterator[Ledger]:
    """A ledger whose write lock another process keeps taking."""
    ledger = Ledger(tmp_path / "l.sqlite", seal_threshold=None)
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(ledger.path)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
    yield ledger
    holder.kill()
    holder.wait()
    holder.stdout.close()
    ledger.close()


def _runqueue_wait() -> Callable[[], float]:
    """Seconds this thread has spent ready to run but waiting for a CPU (Linux schedstat;
    0 where there is none)."""
    path = Path(f"/proc/self/task/{threading.get_native_id()}/schedstat")
    if not path.exists():
        return lambda: 0.0
    return lambda: int(path.read_text().split()[1]) / 1e9


async def _lags(stop: asyncio.Event, lags: list[float]) -> None:
    """How late each wake-up of a 1 ms sleep comes, less the time the loop's thread waited
    for a CPU meanwhile (other processes on a loaded machine): what is left is time the
    loop itself was held up, by a blocking call or a long step."""
    waited = _runqueue_wait()
    while not stop.is_set():
        due, before = time.perf_counter() + 0.001, waited()
        await asyncio.sleep(0.001)
        lags.append(time.perf_counter() - due - (waited() - before))


def run_frozen(scenario: Coroutine[Any, Any, None]) -> None:
    """``asyncio.run(scenario)`` with the objects alive before it frozen: the test runner
    holds millions (its plugins, earlier tests), and one full garbage collection over them
    stalls any loop for 100 ms or more, ledger or not. Frozen, they are left out of the
    collections made during the scenario."""
    gc.collect()
    gc.freeze()
    try:
        asyncio.run(scenario)
    finally:
        gc.unfreeze()


def assert_never_stalled(lags: list[float]) -> None:
    assert len(lags) > 100  # the ticker ran throughout
    assert max(lags) < STALL, f"the loop stalled {max(lags) * 1e3:.1f} ms"


def test_200_recorded_requests_never_stall_the_event_loop(served: str, contended: Ledger) -> None:
    lags: list[float] = []

    async def scenario() -> None:
        async with AsyncEtoroClient(base_url=served, api_key=DEFAULT_API_KEY,
                               user_key=DEFAULT_USER_KEY, environment="sandbox",
                               quota=Quota(read_limit=UNTHROTTLED, write_limit=UNTHROTTLED),
                               ledger=contended) as client:
            await client.me()  # connection made, caches warm: before the ticker starts
            stop = asyncio.Event()
            ticker = asyncio.create_task(_lags(stop, lags))
            for _ in range(REQUESTS // AT_ONCE):
                await asyncio.gather(*(client.me() for _ in range(AT_ONCE)))
            stop.set()
            await ticker

    run_frozen(scenario())
    assert_never_stalled(lags)
    recorded = frames.requests(contended)
    assert recorded.height == REQUESTS + 1  # every request recorded, intent and outcome
    assert recorded["status"].to_list() == [200] * (REQUESTS + 1)
    assert contended._spool is not None  # the intents went through the spool
