"""``connect()``, ``EtoroClient`` and ``AsyncEtoroClient``: authenticated access to the API.

Both clients drive the same flows over the same ``Core`` (``_base``); they differ only
in how they send (``httpx.Client`` / ``httpx.AsyncClient``) and sleep. With no live
credentials, ``connect()`` starts the embedded sandbox and says so.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, Unpack

import httpx
from pydantic import SecretStr

from etoro_nb._base import Answer, Call, Core, Flow, RetryPolicy, read
from etoro_nb.client_config import (
    ClientConfig,
    ClientSettings,
    Secret,
    config_of,
    is_loopback,
    reveal,
)
from etoro_nb.config import (
    ENV_LEDGER,
    Credentials,
    Environment,
    ledger_path,
    real_trading_allowed,
    resolve_credentials,
)
from etoro_nb.errors import (
    EtoroError,
    InvalidInputError,
    RealMoneyNotAllowedError,
)
from etoro_nb.ledger import Ledger
from etoro_nb.ledger.recorder import UsageRecorder
from etoro_nb.models import Me
from etoro_nb.operations import catalogue
from etoro_nb.ratelimit import Quota, RateLimiter
from etoro_nb.resources.agent_portfolios import (
    AgentPortfolios,
    AsyncAgentPortfolios,
    now_flow,
    raw_call_flow,
)
from etoro_nb.resources.changes import ChangeLog
from etoro_nb.resources.market import AsyncMarket, Market
from etoro_nb.resources.trading import AsyncTrading, Trading
from etoro_nb.sandbox.config import SandboxConfig

if TYPE_CHECKING:
    from etoro_nb.ledger.checkpoint import CheckpointConfig
    from etoro_nb.sandbox.server import SandboxServer

T = TypeVar("T")
__all__ = ["AsyncEtoroClient", "ClientConfig", "EtoroClient", "connect", "connect_async", "is_loopback"]


def operation_call(operation_id: str, path_params: Mapping[str, object] | None,
                   query: Mapping[str, object] | None, body: Any,
                   request_id: str | None) -> Call:
    """A call to any operation of the contract by id, its path filled in (ids quoted); a
    bad parameter is reported under the contract's name for it."""
    if operation_id not in catalogue():  # the sandbox's own status is not for client.call
        raise InvalidInputError("operation_id", f"{operation_id!r} is not an operation of the "
                                              "contract")
    return Call.of(operation_id, path_params, params=query, json=body, request_id=request_id,
                   names={})


def me_flow() -> Generator[Call, Answer, Me]:
    answer = yield Call.of("getAuthenticatedUserProfile")
    return read(answer, Me.model_validate)


class _ClientBase:
    """Settings and state both clients hold; never a secret in its repr.

    Both implement the runner protocols of ``etoro_nb._runner`` publicly (``run_flow``,
    ``changelog``, ``scope_cache``, ``ensure_real_allowed``, ``environment``): that is all
    the resources use."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        sandbox = config.sandbox
        self.environment: Environment = config.environment
        self.allow_real = config.allow_real
        self.principal = config.principal
        self.base_url = config.base_url
        self._timeout = config.timeout
        # On an embedded sandbox with a simulated clock, quota windows pass in simulated
        # time (as the sandbox counts them) and waiting in real time would achieve nothing.
        self._simulated_time = config.simulated_time or (
            sandbox is not None and sandbox.sandbox.clock.simulated)
        limiter = config.limiter
        if limiter is None and self._simulated_time:
            assert sandbox is not None
            sim_clock = sandbox.sandbox.clock
            limiter = RateLimiter(config.quota, clock=lambda: sim_clock.now().timestamp())
        self._limiter = limiter or RateLimiter(config.quota)
        self._retry = config.retry or RetryPolicy()
        self.ledger = config.ledger
        self._owns_ledger = config.owns_ledger  # opened by connect() for this client: closed with it
        # The ledger's timeline: an embedded sandbox's (possibly simulated) clock, else UTC now.
        self._clock = config.clock or (sandbox.sandbox.clock.now if sandbox is not None
                                       else lambda: datetime.now(UTC))
        user_key = config.user_key.get_secret_value()
        recorder = None if self.ledger is None else UsageRecorder(
            self.ledger, principal=self.principal, environment=self.environment,
            user_key=user_key, clock=self._clock, on_loop=isinstance(self, AsyncEtoroClient),
            application=config.application)
        self._core = Core(base_url=self.base_url, api_key=config.api_key.get_secret_value(),
                          user_key=user_key, limiter=self._limiter, policy=self._retry,
                          recorder=recorder)
        self._scope_cache: list[str] = []
        # Delegation changes: an intent before each change's request, its outcome after.
        self._changelog = ChangeLog(self.ledger, self._clock)
        self._sandbox = sandbox

    @property
    def sandbox(self) -> SandboxServer | None:
        """The embedded sandbox this client started, if it did (clock, faults, state)."""
        return self._sandbox

    @property
    def recorder(self) -> UsageRecorder | None:
        """What records this client's requests into its ledger (None without one)."""
        return self._core.recorder

    @property
    def changelog(self) -> ChangeLog:
        """Where this client records delegation changes (runner protocol)."""
        return self._changelog

    @property
    def scope_cache(self) -> list[str]:
        """The scope names this key may grant, once fetched (runner protocol)."""
        return self._scope_cache

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(environment={self.environment!r}, "
                f"principal={self.principal!r}, base_url={self.base_url!r})")

    def recorded_now(self) -> datetime:
        """The time this client stamps its ledger rows with, read without a request: a
        sandbox's simulated clock, else this machine's UTC clock."""
        return self._clock()

    def ensure_real_allowed(self, real_money: bool = True) -> None:
        """Raise ``RealMoneyNotAllowedError`` now if this client may not trade the real
        account (live without the opt-in): for agents that should fail at start, not at
        their first order. ``real_money=False`` checks nothing (a demo call)."""
        if real_money and self.environment == "live" and not self.allow_real:
            raise RealMoneyNotAllowedError(
                "the real trading endpoints move real money on this live connection; opt in "
                "with connect(..., allow_real=True) or ETORO_NB_ALLOW_REAL=1")

    def _agent_config(self, token: Secret) -> ClientConfig:
        """This client's settings acting with ``token``: same limiter, retry, ledger and
        clock; the agent's client neither owns the ledger nor stops the sandbox."""
        return replace(self.config, user_key=SecretStr(reveal(token)), principal="agent",
                       limiter=self._limiter, retry=self._retry, clock=self._clock,
                       simulated_time=self._simulated_time, sandbox=None, owns_ledger=False,
                       quota=None)

    def _close_owned(self) -> None:
        """Stop the sandbox this client started and close the ledger it opened (both
        clients' close, even when closing the HTTP client failed)."""
        try:
            if self._sandbox is not None:
                self._sandbox.stop()
        finally:
            if self._owns_ledger and self.ledger is not None:
                self.ledger.close()


class EtoroClient(_ClientBase):
    """The synchronous client. Use it as a context manager or call ``close()``.

    Settings are ``ClientConfig``'s fields given as keywords
    (``EtoroClient(base_url=..., api_key=..., user_key=..., environment=...)``), or a
    ``ClientConfig`` already made (``EtoroClient(config)``), not both. ``transport`` or ``http``
    replace the connection (tests, sharing one pool)."""

    def __init__(self, config: ClientConfig | None = None, /, *,
                 transport: httpx.BaseTransport | None = None,
                 http: httpx.Client | None = None, **settings: Unpack[ClientSettings]) -> None:
        super().__init__(config_of(config, settings))
        self._owns_http = http is None
        self._http = http or httpx.Client(timeout=self._timeout, transport=transport)
        self.agent_portfolios = AgentPortfolios(self)
        self.market = Market(self)

    def trading(self, mode: str = "demo") -> Trading:
        """The demo or the real account of whoever this client acts as."""
        return Trading(self, mode)

    def me(self) -> Me:
        return self.run_flow(me_flow())

    def now(self) -> datetime:
        """The server's now (a sandbox's simulated clock, or UTC now on live)."""
        return self.run_flow(now_flow(self.environment))

    def call(self, operation_id: str, *, path_params: Mapping[str, object] | None = None,
             query: Mapping[str, object] | None = None, body: Any = None,
             request_id: str | None = None) -> Answer:
        """Any operation of the contract by its id, answered raw (status, body, headers):
        for exploring the API. Retries, quota, ledger and the real-money guard apply;
        an error answer raises as usual (its ``headers`` and ``body`` are on the error)."""
        call = operation_call(operation_id, path_params, query, body, request_id)
        return self.run_flow(raw_call_flow(call, path_params or {}, self._changelog))

    def as_agent(self, token: Secret) -> EtoroClient:
        """A client acting with a delegated token (a ``MintedToken`` or its secret).

        It shares this client's connections and quota bookkeeping; closing it is optional,
        closing this client closes both."""
        return EtoroClient(self._agent_config(token), http=self._http)

    def close(self) -> None:
        try:
            if self._owns_http:
                self._http.close()
        finally:
            self._close_owned()

    def __enter__(self) -> EtoroClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sleep(self, seconds: float) -> None:
        if not self._simulated_time:
            time.sleep(seconds)

    def _send(self, call: Call) -> Answer:
        self.ensure_real_allowed(call.real_money)  # every request passes here: no real order slips by
        core = self._core
        attempts = core.start(call)
        while True:
            attempts.number += 1
            wait = core.limiter.reserve(core.key_id, call.kind)
            if wait > 0:
                self._sleep(wait)
            request = core.build(self._http, call, attempts)
            started = core.before_send(call, attempts)
            failure: httpx.TransportError | None = None
            try:
                response = self._http.send(request)
            except httpx.TransportError as exc:
                failure = exc
            # Decided outside the except block, so no error we raise carries the request
            # (and its key headers) as its context.
            if failure is not None:
                delay = core.on_transport_error(call, attempts, failure, started)
            else:
                outcome = core.on_response(call, attempts, response, started)
                if isinstance(outcome, Answer):
                    return outcome
                delay = outcome
            self._sleep(delay)

    def run_flow(self, flow: Flow[T]) -> T:
        """Drive a flow (``_base``) to its result, sending each call it yields (runner
        protocol: what the resources use)."""
        try:
            call = next(flow)
            while True:
                try:
                    answer = self._send(call)
                except EtoroError as exc:
                    call = flow.throw(exc)
                else:
                    call = flow.send(answer)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]


class AsyncEtoroClient(_ClientBase):
    """The asyncio client: the same surface, awaited; made like ``EtoroClient``."""

    def __init__(self, config: ClientConfig | None = None, /, *,
                 transport: httpx.AsyncBaseTransport | None = None,
                 http: httpx.AsyncClient | None = None,
                 **settings: Unpack[ClientSettings]) -> None:
        super().__init__(config_of(config, settings))
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=self._timeout, transport=transport)
        self.agent_portfolios = AsyncAgentPortfolios(self)
        self.market = AsyncMarket(self)

    def trading(self, mode: str = "demo") -> AsyncTrading:
        return AsyncTrading(self, mode)

    async def me(self) -> Me:
        return await self.run_flow(me_flow())

    async def now(self) -> datetime:
        return await self.run_flow(now_flow(self.environment))

    async def call(self, operation_id: str, *, path_params: Mapping[str, object] | None = None,
                   query: Mapping[str, object] | None = None, body: Any = None,
                   request_id: str | None = None) -> Answer:
        call = operation_call(operation_id, path_params, query, body, request_id)
        return await self.run_flow(raw_call_flow(call, path_params or {}, self._changelog))

    def as_agent(self, token: Secret) -> AsyncEtoroClient:
        return AsyncEtoroClient(self._agent_config(token), http=self._http)

    async def aclose(self) -> None:
        try:
            if self._owns_http:
                await self._http.aclose()
        finally:
            self._close_owned()

    async def __aenter__(self) -> AsyncEtoroClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _sleep(self, seconds: float) -> None:
        if not self._simulated_time:
            import asyncio  # here, not at import: a sync user never needs it

            await asyncio.sleep(seconds)

    async def _send(self, call: Call) -> Answer:
        self.ensure_real_allowed(call.real_money)  # every request passes here: no real order slips by
        core = self._core
        attempts = core.start(call)
        while True:
            attempts.number += 1
            wait = core.limiter.reserve(core.key_id, call.kind)
            if wait > 0:
                await self._sleep(wait)
            request = core.build(self._http, call, attempts)
            started = await core.before_send_async(call, attempts)
            failure: httpx.TransportError | None = None
            try:
                response = await self._http.send(request)
            except httpx.TransportError as exc:
                failure = exc
            # Decided outside the except block, so no error we raise carries the request
            # (and its key headers) as its context.
            if failure is not None:
                delay = core.on_transport_error(call, attempts, failure, started)
            else:
                outcome = core.on_response(call, attempts, response, started)
                if isinstance(outcome, Answer):
                    return outcome
                delay = outcome
            await self._sleep(delay)

    async def run_flow(self, flow: Flow[T]) -> T:
        """``EtoroClient.run_flow``, awaited."""
        try:
            call = next(flow)
            while True:
                try:
                    answer = await self._send(call)
                except EtoroError as exc:
                    call = flow.throw(exc)
                else:
                    call = flow.send(answer)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]


def _says_sandbox(body: object) -> Environment:
    return "sandbox" if isinstance(body, dict) and body.get("environment") == "sandbox" else "live"


def _detect(base_url: str) -> Environment:
    """A sandbox on this machine (a loopback URL that answers as the etoro-nb sandbox) is
    the sandbox; any other URL is live, whatever it answers: the answer is unauthenticated,
    so a server elsewhere claiming to be a sandbox must not switch off the real-money guard.
    """
    if not is_loopback(base_url):
        return "live"
    try:
        body = httpx.get(base_url + "/", timeout=5.0).json()
    except (httpx.HTTPError, ValueError):
        return "live"
    return _says_sandbox(body)


async def _detect_async(base_url: str) -> Environment:
    """``_detect`` without blocking the event loop (the probe is an ``httpx.AsyncClient``)."""
    if not is_loopback(base_url):
        return "live"
    try:
        async with httpx.AsyncClient(timeout=5.0) as http:
            body = (await http.get(base_url + "/")).json()
    except (httpx.HTTPError, ValueError):
        return "live"
    return _says_sandbox(body)


def _resolve(api_key: str | None, user_key: str | None, base_url: str | None,
             env_file: str | Path | None) -> tuple[Credentials | None, CheckpointConfig | None]:
    """The live credentials, if any, and the checkpoint setting: read before anything starts,
    so a bad setting stops ``connect`` before a sandbox starts."""
    creds = resolve_credentials(api_key, user_key, base_url, env_file=env_file)
    from etoro_nb.ledger.checkpoint import checkpoint_from_env  # cryptography: only when used

    return creds, checkpoint_from_env()


def _start_sandbox(sandbox: SandboxConfig | None) -> SandboxServer:
    """Start the embedded sandbox (blocks until it listens) and say so."""
    from etoro_nb.sandbox.server import start as start_sandbox  # uvicorn: only when used

    server = start_sandbox(sandbox or SandboxConfig())
    print(f"etoro-nb: no live credentials given, so this is the embedded SANDBOX "
          f"(simulated money) at {server.base_url}")
    return server


def _sandbox_config(server: SandboxServer, quota: Quota | None,
                    ledger: Ledger | str | Path | None,
                    checkpoint: CheckpointConfig | None) -> ClientConfig:
    """The settings of a client of the sandbox ``connect`` started (it stops it on close);
    opens the ledger. On failure the sandbox is stopped: nothing is left running."""
    try:
        return ClientConfig(base_url=server.base_url,
                            api_key=SecretStr(server.credentials.api_key),
                            user_key=SecretStr(server.credentials.user_key),
                            environment="sandbox", allow_real=True, quota=quota, sandbox=server,
                            ledger=_ledger(ledger, "sandbox", checkpoint),
                            owns_ledger=not isinstance(ledger, Ledger))
    except BaseException:
        server.stop()
        raise


def _live_config(creds: Credentials, environment: Environment, allow_real: bool | None,
                 quota: Quota | None, ledger: Ledger | str | Path | None,
                 checkpoint: CheckpointConfig | None) -> ClientConfig:
    """The settings of a client of ``creds.base_url``; opens the ledger."""
    return ClientConfig(base_url=creds.base_url, api_key=creds.api_key, user_key=creds.user_key,
                        environment=environment,
                        allow_real=True if environment == "sandbox"
                        else real_trading_allowed(allow_real),
                        quota=quota, ledger=_ledger(ledger, environment, checkpoint),
                        owns_ledger=not isinstance(ledger, Ledger))


def _ledger(chosen: Ledger | str | Path | None, environment: Environment,
            checkpoint: CheckpointConfig | None) -> Ledger:
    if isinstance(chosen, Ledger):
        return chosen
    from etoro_nb.ledger.pg_connect import is_postgres  # a postgresql:// URL: the shared ledger

    named = os.environ.get(ENV_LEDGER) if chosen is None else chosen
    if is_postgres(named):
        return Ledger.open(str(named), checkpoint=checkpoint)
    return Ledger(ledger_path(chosen, environment), checkpoint=checkpoint)


def connect(api_key: str | None = None, user_key: str | None = None, *,
            base_url: str | None = None, allow_real: bool | None = None,
            env_file: str | Path | None = ".env", sandbox: SandboxConfig | None = None,
            quota: Quota | None = None, ledger: Ledger | str | Path | None = None) -> EtoroClient:
    """A client for live eToro when keys are given (arguments, ``ETORO_API_KEY`` /
    ``ETORO_USER_KEY``, or a ``.env`` file), else for a freshly started embedded sandbox
    (configured by ``sandbox``). ``client.environment`` says which. On live, the real
    account's trading needs ``allow_real=True`` (or ``ETORO_NB_ALLOW_REAL=1``). Every
    request is recorded in ``client.ledger`` (``ledger=`` a path or a ``Ledger``, else
    ``ETORO_NB_LEDGER``, else a per-user default apart for sandbox and live); a ledger it
    opens writes signed checkpoints when ``ETORO_NB_CHECKPOINT`` names a file."""
    creds, checkpoint = _resolve(api_key, user_key, base_url, env_file)
    if creds is None:
        return EtoroClient(_sandbox_config(_start_sandbox(sandbox), quota, ledger, checkpoint))
    return EtoroClient(_live_config(creds, _detect(creds.base_url), allow_real, quota, ledger,
                               checkpoint))


async def connect_async(api_key: str | None = None, user_key: str | None = None, *,
                        base_url: str | None = None, allow_real: bool | None = None,
                        env_file: str | Path | None = ".env",
                        sandbox: SandboxConfig | None = None, quota: Quota | None = None,
                        ledger: Ledger | str | Path | None = None) -> AsyncEtoroClient:
    """``connect()`` for asyncio: the same choices, an ``AsyncEtoroClient``
    (``client = await enb.connect_async()``). Nothing blocks the event loop: reading the
    settings, starting the sandbox and opening the ledger run in a worker thread
    (``asyncio.to_thread``), and the probe of a loopback URL is an async request."""
    import asyncio

    creds, checkpoint = await asyncio.to_thread(_resolve, api_key, user_key, base_url, env_file)
    if creds is None:
        server = await asyncio.to_thread(_start_sandbox, sandbox)
        config = await asyncio.to_thread(_sandbox_config, server, quota, ledger, checkpoint)
    else:
        environment = await _detect_async(creds.base_url)
        config = await asyncio.to_thread(_live_config, creds, environment, allow_real, quota,
                                         ledger, checkpoint)
    return AsyncEtoroClient(config)


if TYPE_CHECKING:
    from etoro_nb._runner import AsyncRunner, Runner
    from etoro_nb.client_api import AsyncClientAPI, ClientAPI

    def _implements(client: EtoroClient, async_client: AsyncEtoroClient
                    ) -> tuple[Runner, AsyncRunner, ClientAPI, AsyncClientAPI]:
        """Checked by mypy only: each client implements the protocols it is used through."""
        return client, async_client, client, async_client
