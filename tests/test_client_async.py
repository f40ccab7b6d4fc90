"""AsyncEtoroClient: the same flows, awaited."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from etoro_nb import errors, frames
from etoro_nb.client import AsyncEtoroClient
from etoro_nb.ledger import Ledger
from etoro_nb.sandbox import Faults, SandboxServer
from tests.helpers import ALL_SCOPES, DEMO_READ


def _client(server: SandboxServer) -> AsyncEtoroClient:
    creds = server.credentials
    return AsyncEtoroClient(base_url=creds.base_url, api_key=creds.api_key, user_key=creds.user_key,
                       environment="sandbox", allow_real=True)


def test_async_round_trip(server: SandboxServer) -> None:
    async def scenario() -> None:
        async with _client(server) as client:
            created = await client.agent_portfolios.create("async01", 1000, scopes=ALL_SCOPES)
            agent = client.as_agent(created.token)
            placed = await agent.trading("real").open_order("TSLA", amount=300)
            info = await agent.trading("real").lookup_order(placed.order_id)
            assert info.status.name == "Executed"
            assert len((await client.trading("real").portfolio()).mirrors[0].positions) == 1
            many = await asyncio.gather(*(agent.me() for _ in range(5)))
            assert {m.username for m in many} == {"async01"}
            rotation = await client.agent_portfolios.rotate_token(created.portfolio.id,
                                                                  created.token.id)
            await rotation.confirm()
            with pytest.raises(errors.AuthenticationError):
                await agent.me()
            assert await client.as_agent(rotation.new).trading("demo").history(
                date(2026, 1, 1)) == []
            assert (await client.market.rates([1]))[0].instrument_id == 1
            assert (await client.market.instrument("btc", fields=["instrumentId"])) == {
                "instrumentId": 100000, "symbol": "BTC"}  # the field matched comes too

    asyncio.run(scenario())


def test_async_partial_create_and_reconciled_create(server: SandboxServer) -> None:
    async def scenario() -> None:
        async with _client(server) as client:
            server.sandbox.set_faults(Faults(partial_create_rate=1.0))
            with pytest.raises(errors.PartialCreateError) as caught:
                await client.agent_portfolios.create("async01", 1000, scopes=[DEMO_READ])
            server.sandbox.set_faults(Faults())
            token = await caught.value.mint_token()
            assert token.portfolio_id == caught.value.portfolio.id

            async def no_wait(seconds: float) -> None:
                server.sandbox.set_faults(Faults())

            client._sleep = no_wait  # type: ignore[method-assign]
            server.sandbox.set_faults(Faults(drop_after_commit_rate=1.0))
            created = await client.agent_portfolios.create("async02", 1000, scopes=[DEMO_READ])
            names = [p.name for p in await client.agent_portfolios.list()]
            assert names == ["async01", "async02"]
            assert (await client.as_agent(created.token).me()).username == "async02"

    asyncio.run(scenario())


def test_async_raw_call_records_the_change(server: SandboxServer, tmp_path: Path) -> None:
    async def scenario() -> list[str]:
        creds = server.credentials
        async with AsyncEtoroClient(base_url=creds.base_url, api_key=creds.api_key,
                               user_key=creds.user_key, environment="sandbox", allow_real=True,
                               ledger=Ledger(tmp_path / "l.sqlite")) as client:
            created = (await client.call("createAgentPortfolioV2", body={
                "agentPortfolioName": "async02", "investmentAmountInUsd": 500,
                "userTokenName": "t", "scopeNames": [DEMO_READ]})).body
            agent = client.as_agent(created["userTokens"][0]["userToken"])
            await agent.me()
            assert client.ledger is not None
            usage = frames.usage(client.ledger, phase="outcome")
            assert isinstance(usage, pl.DataFrame)
            assert usage.filter(principal="agent")["token_id"].to_list() == [
                created["userTokens"][0]["userTokenId"]]
            return frames.lifecycle(client.ledger)["kind"].to_list()

    assert asyncio.run(scenario()) == ["portfolio_created", "token_minted"]
