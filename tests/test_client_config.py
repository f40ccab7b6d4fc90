"""ClientConfig: a client's settings, frozen and typed; connect_async, async end to end."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

import etoro_nb as enb
from etoro_nb import errors
from etoro_nb.client import AsyncEtoroClient, EtoroClient
from etoro_nb.client_config import CONFIG_FIELDS, ClientConfig, ClientSettings
from etoro_nb.sandbox import SandboxServer
from etoro_nb.sandbox import server as sandbox_server


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("ETORO_API_KEY", "ETORO_USER_KEY", "ETORO_BASE_URL", "ETORO_NB_ALLOW_REAL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_the_keywords_are_the_config_fields() -> None:
    assert set(ClientSettings.__annotations__) == CONFIG_FIELDS


def test_a_config_is_frozen_checked_and_keeps_keys_secret() -> None:
    config = ClientConfig(base_url="http://x/", api_key="app-secret",  # type: ignore[arg-type]
                          user_key=SecretStr("user-secret"), environment="live")
    assert config.base_url == "http://x" and isinstance(config.api_key, SecretStr)
    assert "secret" not in repr(config)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.allow_real = True  # type: ignore[misc]
    with pytest.raises(errors.ConfigurationError, match="api_key"):
        ClientConfig(base_url="http://x", api_key=SecretStr("a b"), user_key=SecretStr("u"),
                     environment="live")
    with pytest.raises(errors.ConfigurationError, match="environment"):
        ClientConfig(base_url="http://x", api_key=SecretStr("a"), user_key=SecretStr("u"),
                     environment="staging")  # type: ignore[arg-type]


def test_a_client_is_made_from_keywords_or_a_config_not_both() -> None:
    config = ClientConfig(base_url="http://x", api_key=SecretStr("a"), user_key=SecretStr("u"),
                          environment="live")
    with EtoroClient(base_url="http://x", api_key="a", user_key="u", environment="live") as by_kw, \
            EtoroClient(config) as by_config:
        assert by_kw.config == dataclasses.replace(by_config.config, timeout=by_kw.config.timeout)
        assert by_config.config is config
    with pytest.raises(errors.ConfigurationError, match="not both"):
        EtoroClient(config, base_url="http://y")
    with pytest.raises(TypeError, match="colour"):
        EtoroClient(base_url="http://x", api_key="a", user_key="u", environment="live",
               colour="red")  # type: ignore[call-arg]


def test_an_agent_client_shares_the_settings_but_not_the_sandbox(server: SandboxServer) -> None:
    creds = server.credentials
    with EtoroClient(base_url=creds.base_url, api_key=creds.api_key, user_key=creds.user_key,
                environment="sandbox", allow_real=True) as owner:
        agent = owner.as_agent("agent-key")
        assert agent.config.principal == "agent" and agent.config.sandbox is None
        assert agent.config.user_key.get_secret_value() == "agent-key"
        assert agent.config.api_key == owner.config.api_key
        assert (agent.environment, agent.allow_real) == ("sandbox", True)


def test_connect_async_is_a_coroutine_and_starts_the_sandbox_off_the_loop(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The sandbox starts in a worker thread: while it starts, the loop keeps running (a
    coroutine on the loop sets an event the start waits for; were the start on the loop,
    nothing could set it and the wait would give up)."""
    start = sandbox_server.start
    started, loop_ran = threading.Event(), threading.Event()
    seen: list[bool] = []

    def waiting_start(config: Any) -> SandboxServer:
        started.set()
        seen.append(loop_ran.wait(timeout=10))
        return start(config)

    monkeypatch.setattr(sandbox_server, "start", waiting_start)

    async def scenario() -> None:
        async def on_the_loop() -> None:
            while not started.is_set():
                await asyncio.sleep(0.001)
            loop_ran.set()

        ticker = asyncio.create_task(on_the_loop())
        connecting = enb.connect_async(env_file=None, ledger=tmp_path / "l.sqlite")
        assert asyncio.iscoroutine(connecting)
        client = await connecting
        ticker.cancel()
        async with client:
            assert isinstance(client, AsyncEtoroClient) and client.environment == "sandbox"
            assert (await client.me()).username == "sandbox.owner"

    asyncio.run(scenario())
    assert seen == [True]


def test_connect_async_probes_a_loopback_url_without_blocking(
    server: SandboxServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def blocking_get(*args: Any, **kw: Any) -> httpx.Response:
        raise AssertionError("connect_async made a blocking request")

    monkeypatch.setattr(httpx, "get", blocking_get)
    creds = server.credentials

    async def scenario() -> None:
        async with await enb.connect_async(creds.api_key, creds.user_key,
                                           base_url=creds.base_url, env_file=None,
                                           ledger=tmp_path / "l.sqlite") as client:
            assert client.environment == "sandbox" and client.allow_real
        async with await enb.connect_async("a", "b", base_url="http://127.0.0.1:9",
                                           env_file=None, ledger=tmp_path / "m.sqlite") as live:
            assert live.environment == "live" and not live.allow_real

    asyncio.run(scenario())
