"""`etoro-nb sandbox serve`: a real process on a fixed port, answering like the contract."""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator

import httpx
import pytest

from etoro_nb.spec import load_subset


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served() -> Iterator[tuple[str, list[str]]]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "etoro_nb.cli", "sandbox", "serve", "--port", str(port),
         "--seed", "3", "--clock", "2026-03-02T14:30:00Z", "--api-key", "k-app",
         "--user-key", "k-owner", "--read-limit", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    banner = [proc.stdout.readline() for _ in range(5)]
    base = f"http://127.0.0.1:{port}"
    # The banner is printed before uvicorn binds; wait for it to accept connections.
    with httpx.Client(transport=httpx.HTTPTransport(retries=50)) as c:
        c.get(f"{base}/openapi.json")
    yield base, banner
    proc.terminate()
    proc.wait(timeout=10)
    proc.stdout.close()
    assert proc.stderr is not None
    proc.stderr.close()


def test_serve_prints_where_and_how(served: tuple[str, list[str]]) -> None:
    base, banner = served
    text = "".join(banner)
    assert "SANDBOX" in text
    assert f"ETORO_BASE_URL={base}" in text
    assert "ETORO_API_KEY=k-app" in text and "ETORO_USER_KEY=k-owner" in text


def test_serve_answers_the_contract(served: tuple[str, list[str]]) -> None:
    base, _ = served
    h = {"x-api-key": "k-app", "x-user-key": "k-owner", "x-request-id": str(uuid.uuid4())}
    with httpx.Client(base_url=base) as c:
        assert c.get("/openapi.json").json() == load_subset()
        me = c.get("/api/v1/me", headers=h)
        assert me.status_code == 200 and me.headers["x-ratelimit-limit"] == "5"
        r = c.post("/api/v2/agent-portfolios", headers=h,
                   json={"name": "MyAgent", "description": "from the product page"})
        assert r.status_code == 400 and "agentPortfolioName" in r.json()["errorMessage"]
        assert c.get("/api/v1/me", headers={**h, "x-user-key": "nope"}).status_code == 401


def test_bad_flags_are_refused() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "etoro_nb.cli", "sandbox", "serve", "--fail-rate", "3"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2 and "--fail-rate" in out.stderr
