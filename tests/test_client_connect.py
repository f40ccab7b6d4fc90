"""connect(): the sandbox by default, live with credentials, and the real-money opt-in."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import etoro_nb as enb
from etoro_nb import errors
from etoro_nb.agent import AgentSession
from etoro_nb.config import resolve_credentials
from etoro_nb.ledger import Ledger
from etoro_nb.rebalancer import Rebalancer
from etoro_nb.sandbox import SandboxServer

UNREACHABLE = "http://127.0.0.1:9"  # discard port: nothing listens


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("ETORO_API_KEY", "ETORO_USER_KEY", "ETORO_BASE_URL", "ETORO_NB_ALLOW_REAL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_no_credentials_starts_the_sandbox_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    with enb.connect() as client:
        assert client.environment == "sandbox"
        assert client.sandbox is not None
        assert "SANDBOX" in capsys.readouterr().out
        assert client.me().username == "sandbox.owner"
        base = client.base_url
    assert client.sandbox is not None and not client.sandbox._thread.is_alive()
    assert base.startswith("http://127.0.0.1:")


def test_credentials_from_arguments_environment_and_dotenv(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("ETORO_API_KEY=from-file\nETORO_USER_KEY=user-file\n")
    creds = resolve_credentials()
    assert creds is not None and creds.api_key.get_secret_value() == "from-file"
    assert creds.base_url == "https://public-api.etoro.com"
    monkeypatch.setenv("ETORO_API_KEY", "from-env")
    creds = resolve_credentials()
    assert creds is not None and creds.api_key.get_secret_value() == "from-env"
    assert creds.user_key.get_secret_value() == "user-file"
    creds = resolve_credentials(api_key="from-arg", base_url="http://x/")
    assert creds is not None and creds.api_key.get_secret_value() == "from-arg"
    assert creds.base_url == "http://x"
    assert "from-arg" not in repr(creds)


def test_one_key_alone_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETORO_API_KEY", "only-this")
    with pytest.raises(errors.ConfigurationError) as caught:
        enb.connect()
    assert "user_key=" in str(caught.value) and "ETORO_USER_KEY" in str(caught.value)


def test_live_real_trading_needs_an_explicit_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    with enb.connect("app", "user", base_url=UNREACHABLE) as client:
        assert client.environment == "live"
        with pytest.raises(errors.RealMoneyNotAllowedError) as caught:
            client.trading("real").open_order(1001, amount=100)
        assert "allow_real=True" in str(caught.value)
        assert "ETORO_NB_ALLOW_REAL" in str(caught.value)
        with pytest.raises(errors.RealMoneyNotAllowedError):
            client.ensure_real_allowed()
        with pytest.raises(errors.RealMoneyNotAllowedError):  # the raw path is guarded too
            client.call("createRealOrder", body={"instrumentId": 1001, "amount": 100})
        with pytest.raises(errors.RealMoneyNotAllowedError):  # at start, not at its first order
            Rebalancer(client, "real", {"AAPL": 1.0})
        with pytest.raises(errors.RealMoneyNotAllowedError):  # said before anything else
            AgentSession(client, account="real")
        # Demo trading is not real money: it goes out (and finds nothing listening).
        client._sleep = lambda s: None  # type: ignore[method-assign]
        with pytest.raises(errors.APIConnectionError):
            client.trading("demo").open_order(1001, amount=100)
    monkeypatch.setenv("ETORO_NB_ALLOW_REAL", "1")
    with enb.connect("app", "user", base_url=UNREACHABLE) as client:
        client._sleep = lambda s: None  # type: ignore[method-assign]
        with pytest.raises(errors.APIConnectionError):
            client.trading("real").open_order(1001, amount=100)


def test_a_sandbox_url_is_recognised_as_the_sandbox(server: SandboxServer) -> None:
    creds = server.credentials
    with enb.connect(creds.api_key, creds.user_key, base_url=creds.base_url) as client:
        assert client.environment == "sandbox"
        assert client.trading("real").portfolio().credit == 100_000


def test_close_closes_the_ledger_connect_opened_not_one_given(tmp_path: Path,
                                                              server: SandboxServer) -> None:
    creds = server.credentials
    opened = enb.connect(creds.api_key, creds.user_key, base_url=creds.base_url,
                         env_file=None, ledger=tmp_path / "own.sqlite")
    given = Ledger(tmp_path / "given.sqlite")
    lent = enb.connect(creds.api_key, creds.user_key, base_url=creds.base_url,
                       env_file=None, ledger=given)
    opened.close()
    lent.close()
    assert opened.ledger is not None
    with pytest.raises(sqlite3.ProgrammingError):  # closed with its client
        opened.ledger._conn.execute("SELECT 1")
    assert given.verify().ok  # still the caller's to use
