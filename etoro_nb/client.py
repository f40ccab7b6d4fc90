"""``connect()``, ``Client`` and ``AsyncClient``: authenticated access to the API.

Both clients drive the same flows over the same ``Core`` (``_base``); they differ only
in how they send (``httpx.Client`` / ``httpx.AsyncClient``) and sleep. With no live
credentials, ``connect()`` starts the embedded sandbox and says so.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable, Generator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import httpx
from pydantic import SecretStr

from etoro_nb._base import DEFAULT_TIMEOUT, Answer, Call, Core, RetryPolicy
from etoro_nb.config import (
    Environment,
    ledger_path,
    real_trading_allowed,
    resolve_credentials,
)
from etoro_nb.errors import (
    ConfigurationError,
    EtoroError,
    RealMoneyNotAllowedError,
    ValidationError,
)
from etoro_nb.ledger import Ledger
from etoro_nb.ledger.recorder import UsageRecorder
from etoro_nb.models import Me, MintedToken
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
Secret = str | SecretStr | MintedToken


def _reveal(value: Secret, name: str = "user_key") -> str:
    """The plain key, checked: printable ASCII with no spaces (as HTTP headers need)."""
    if isinstance(value, MintedToken):
        key = value.secret.get_secret_value()
    elif isinstance(value, SecretStr):
        key = value.get_secret_value()
    else:
        key = value
    if not isinstance(key, str) or not key or not key.isascii() or not key.isprintable() \
            or any(c.isspace() for c in key):
        # Never echo the value: it is a secret.
        raise ConfigurationError(f"{name} must be non-empty printable ASCII with no spaces")
    return key


def operation_call(operation_id: str, path_params: Mapping[str, object] | None,
                   query: Mapping[str, object] | None, body: Any,
                   request_id: str | None) -> Call:
    """A call to any operation of the contract by id, its path filled in (ids quoted); a
    bad parameter is reported under the contract's name for it."""
    if operation_id not in catalogue():  # the sandbox's own status is not for client.call
        raise ValidationError("operation_id", f"{operation_id!r} is not an operation of the "
                                              "contract")
    return Call.of(operation_id, path_params, params=query, json=body, request_id=request_id,
                   names={})


def me_flow() -> Generator[Call, Answer, Me]:
    answer = yield Call.of("getAuthenticatedUserProfile")
    return Me.model_validate(answer.body)


class _ClientBase:
    """Settings and state both clients hold; never a secret in its repr."""

    def __init__(self, *, base_url: str, api_key: Secret, user_key: Secret,
                 environment: Environment, allow_real: bool = False,
                 principal: Literal["owner", "agent"] = "owner",
                 quota: Quota | None = None, limiter: RateLimiter | None = None,
                 retry: RetryPolicy | None = None, timeout: httpx.Timeout = DEFAULT_TIMEOUT,
                 sandbox: SandboxServer | None = None, ledger: Ledger | None = None,
                 clock: Callable[[], datetime] | None = None,
                 simulated_time: bool = False, owns_ledger: bool = False) -> None:
        if environment == "sandbox" and sandbox is None and not is_loopback(base_url):
            # Saying "sandbox" switches off the real-money guard: only for this machine.
            raise ConfigurationError(
                f"environment='sandbox' is only for a sandbox on this machine (a loopback "
                f"base_url); {httpx.URL(base_url).host or base_url!r} is treated as live")
        self.environment: Environment = environment
        self.allow_real = allow_real
        self.principal = principal
        self.base_url = base_url.rstrip("/")
        self._api_key = SecretStr(_reveal(api_key, "api_key"))
        self._timeout = timeout
        # On an embedded sandbox with a simulated clock, quota windows pass in simulated
        # time (as the sandbox counts them) and waiting in real time would achieve nothing.
        self._simulated_time = simulated_time or (
            sandbox is not None and sandbox.sandbox.clock.simulated)
        if limiter is None and self._simulated_time:
            assert sandbox is not None
            sim_clock = sandbox.sandbox.clock
            limiter = RateLimiter(quota, clock=lambda: sim_clock.now().timestamp())
        self._limiter = limiter or RateLimiter(quota)
        self._retry = retry or RetryPolicy()
        self.ledger = ledger
        self._owns_ledger = owns_ledger  # opened by connect() for this client: closed with it
        # The ledger's timeline: an embedded sandbox's (possibly simulated) clock, else UTC now.
        self._clock = clock or (sandbox.sandbox.clock.now if sandbox is not None
                                else lambda: datetime.now(UTC))
        recorder = None if ledger is None else UsageRecorder(
            ledger, principal=principal, environment=environment, user_key=_reveal(user_key),
            clock=self._clock, on_loop=isinstance(self, AsyncClient))
        self._core = Core(base_url=self.base_url, api_key=_reveal(api_key, "api_key"),
                          user_key=_reveal(user_key), limiter=self._limiter, policy=self._retry,
                          recorder=recorder)
        self._scope_cache: list[str] = []
        # Delegation changes: an intent before each change's request, its outcome after.
        self._changelog = ChangeLog(ledger, self._clock)
        self._sandbox = sandbox

    @property
    def sandbox(self) -> SandboxServer | None:
        """The embedded sandbox this client started, if it did (clock, faults, state)."""
        return self._sandbox

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(environment={self.environment!r}, "
                f"principal={self.principal!r}, base_url={self.base_url!r})")

    def recorded_now(self) -> datetime:
        """The time this client stamps its ledger rows with, read without a request: a
        sandbox's simulated clock, else this machine's UTC clock."""
        return self._clock()

    def ensure_real_allowed(self) -> None:
        """Raise ``RealMoneyNotAllowedError`` now if this client may not trade the real
        account (live without the opt-in): for agents that should fail at start, not at
        their first order."""
        self._guard(True)

    def _guard(self, real_money: bool) -> None:
        """Refuse a real-money call on a live connection without the explicit opt-in."""
        if real_money and self.environment == "live" and not self.allow_real:
            raise RealMoneyNotAllowedError(
                "the real trading endpoints move real money on this live connection; opt in "
                "with connect(..., allow_real=True) or ETORO_NB_ALLOW_REAL=1")

    def _agent_settings(self, token: Secret) -> dict[str, Any]:
        return dict(base_url=self.base_url, api_key=self._api_key, user_key=_reveal(token),
                    environment=self.environment, allow_real=self.allow_real,
                    principal="agent", limiter=self._limiter, retry=self._retry,
                    timeout=self._timeout, ledger=self.ledger, clock=self._clock,
                    simulated_time=self._simulated_time)


class Client(_ClientBase):
    """The synchronous client. Use it as a context manager or call ``close()``."""

    def __init__(self, *, transport: httpx.BaseTransport | None = None,
                 http: httpx.Client | None = None, **settings: Any) -> None:
        super().__init__(**settings)
        self._owns_http = http is None
        self._http = http or httpx.Client(timeout=self._timeout, transport=transport)
        self.agent_portfolios = AgentPortfolios(self)
        self.market = Market(self)

    def trading(self, mode: str = "demo") -> Trading:
        """The demo or the real account of whoever this client acts as."""
        return Trading(self, mode)

    def me(self) -> Me:
        return self._run(me_flow())

    def now(self) -> datetime:
        """The server's now (a sandbox's simulated clock, or UTC now on live)."""
        return self._run(now_flow(self.environment))

    def call(self, operation_id: str, *, path_params: Mapping[str, object] | None = None,
             query: Mapping[str, object] | None = None, body: Any = None,
             request_id: str | None = None) -> Answer:
        """Any operation of the contract by its id, answered raw (status, body, headers):
        for exploring the API. Retries, quota, ledger and the real-money guard apply;
        an error answer raises as usual (its ``headers`` and ``body`` are on the error)."""
        call = operation_call(operation_id, path_params, query, body, request_id)
        return self._run(raw_call_flow(call, path_params or {}, self._changelog))

    def as_agent(self, token: Secret) -> Client:
        """A client acting with a delegated token (a ``MintedToken`` or its secret).

        It shares this client's connections and quota bookkeeping; closing it is optional,
        closing this client closes both."""
        return Client(http=self._http, **self._agent_settings(token))

    def close(self) -> None:
        if self._owns_http:
            self._http.close()
        if self._sandbox is not None:
            self._sandbox.stop()
        if self._owns_ledger and self.ledger is not None:
            self.ledger.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sleep(self, seconds: float) -> None:
        if not self._simulated_time:
            time.sleep(seconds)

    def _send(self, call: Call) -> Answer:
        self._guard(call.real_money)  # every request passes here: no real order slips by
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

    def _run(self, flow: Generator[Call, Answer, T]) -> T:
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


class AsyncClient(_ClientBase):
    """The asyncio client: the same surface, awaited."""

    def __init__(self, *, transport: httpx.AsyncBaseTransport | None = None,
                 http: httpx.AsyncClient | None = None, **settings: Any) -> None:
        super().__init__(**settings)
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=self._timeout, transport=transport)
        self.agent_portfolios = AsyncAgentPortfolios(self)
        self.market = AsyncMarket(self)

    def trading(self, mode: str = "demo") -> AsyncTrading:
        return AsyncTrading(self, mode)

    async def me(self) -> Me:
        return await self._run(me_flow())

    async def now(self) -> datetime:
        return await self._run(now_flow(self.environment))

    async def call(self, operation_id: str, *, path_params: Mapping[str, object] | None = None,
                   query: Mapping[str, object] | None = None, body: Any = None,
                   request_id: str | None = None) -> Answer:
        call = operation_call(operation_id, path_params, query, body, request_id)
        return await self._run(raw_call_flow(call, path_params or {}, self._changelog))

    def as_agent(self, token: Secret) -> AsyncClient:
        return AsyncClient(http=self._http, **self._agent_settings(token))

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()
        if self._sandbox is not None:
            self._sandbox.stop()
        if self._owns_ledger and self.ledger is not None:
            self.ledger.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _sleep(self, seconds: float) -> None:
        if not self._simulated_time:
            await asyncio.sleep(seconds)

    async def _send(self, call: Call) -> Answer:
        self._guard(call.real_money)  # every request passes here: no real order slips by
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

    async def _run(self, flow: Generator[Call, Answer, T]) -> T:
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


LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


def is_loopback(base_url: str) -> bool:
    """Whether the URL's host is this machine: ``localhost`` or a loopback address
    (127.0.0.0/8, ``::1``, or 127.x mapped into IPv6)."""
    try:
        host = httpx.URL(base_url).host.lower()
    except httpx.InvalidURL:
        return False
    if host in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # any other name may resolve anywhere
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


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
    return "sandbox" if isinstance(body, dict) and body.get("environment") == "sandbox" else "live"


def _settings(api_key: str | None, user_key: str | None, base_url: str | None,
              allow_real: bool | None, env_file: str | Path | None,
              sandbox: SandboxConfig | None, quota: Quota | None,
              ledger: Ledger | str | Path | None) -> dict[str, Any]:
    creds = resolve_credentials(api_key, user_key, base_url, env_file=env_file)
    from etoro_nb.ledger.checkpoint import checkpoint_from_env  # cryptography: only when used

    checkpoint = checkpoint_from_env()  # a bad setting stops us before a sandbox starts
    if creds is None:
        from etoro_nb.sandbox.server import start as start_sandbox  # uvicorn: only when used

        server = start_sandbox(sandbox or SandboxConfig())
        print(f"etoro-nb: no live credentials given, so this is the embedded SANDBOX "
              f"(simulated money) at {server.base_url}")
        return dict(base_url=server.base_url, api_key=server.credentials.api_key,
                    user_key=server.credentials.user_key, environment="sandbox",
                    allow_real=True, quota=quota, sandbox=server,
                    ledger=_ledger(ledger, "sandbox", checkpoint), owns_ledger=not isinstance(ledger, Ledger))
    environment = _detect(creds.base_url)
    return dict(base_url=creds.base_url, api_key=creds.api_key, user_key=creds.user_key,
                environment=environment,
                allow_real=True if environment == "sandbox" else real_trading_allowed(allow_real),
                quota=quota, ledger=_ledger(ledger, environment, checkpoint),
                owns_ledger=not isinstance(ledger, Ledger))


def _ledger(chosen: Ledger | str | Path | None, environment: Environment,
            checkpoint: CheckpointConfig | None) -> Ledger:
    if isinstance(chosen, Ledger):
        return chosen
    return Ledger(ledger_path(chosen, environment), checkpoint=checkpoint)


def connect(api_key: str | None = None, user_key: str | None = None, *,
            base_url: str | None = None, allow_real: bool | None = None,
            env_file: str | Path | None = ".env", sandbox: SandboxConfig | None = None,
            quota: Quota | None = None, ledger: Ledger | str | Path | None = None) -> Client:
    """A client for live eToro when keys are given (arguments, ``ETORO_API_KEY`` /
    ``ETORO_USER_KEY``, or a ``.env`` file), else for a freshly started embedded sandbox
    (configured by ``sandbox``). ``client.environment`` says which. On live, the real
    account's trading needs ``allow_real=True`` (or ``ETORO_NB_ALLOW_REAL=1``). Every
    request is recorded in ``client.ledger`` (``ledger=`` a path or a ``Ledger``, else
    ``ETORO_NB_LEDGER``, else a per-user default apart for sandbox and live); a ledger it
    opens writes signed checkpoints when ``ETORO_NB_CHECKPOINT`` names a file."""
    return Client(**_settings(api_key, user_key, base_url, allow_real, env_file, sandbox, quota,
                              ledger))


def connect_async(api_key: str | None = None, user_key: str | None = None, *,
                  base_url: str | None = None, allow_real: bool | None = None,
                  env_file: str | Path | None = ".env", sandbox: SandboxConfig | None = None,
                  quota: Quota | None = None,
                  ledger: Ledger | str | Path | None = None) -> AsyncClient:
    """``connect()`` for asyncio: the same choices, an ``AsyncClient``."""
    return AsyncClient(**_settings(api_key, user_key, base_url, allow_real, env_file, sandbox,
                                   quota, ledger))
