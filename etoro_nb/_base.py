"""What ``EtoroClient`` and ``AsyncEtoroClient`` share: request building, retry decisions, error
mapping, quota bookkeeping, and the flows that make up multi-step operations.

A *flow* is a generator that yields ``Call``s and receives ``Answer``s (or has the
error thrown into it), returning the operation's result. The sync and async clients
drive the same flows; they differ only in how they send and sleep.

Retry policy (constants below): connection errors, 408, 429 and 5xx are retried with
exponential backoff and jitter, honouring ``Retry-After`` up to a cap; 400, 401, 403,
404 and 409 never are. Every attempt of one logical call carries the same
``x-request-id``. A call that is not idempotent on the server (creating a portfolio,
minting a token) is retried only where the answer proves nothing happened (429, 503);
an ambiguous failure is handed to its flow, which reconciles.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
import uuid
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import httpx
from pydantic import ValidationError as PydanticValidationError

from etoro_nb import rules
from etoro_nb.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    InvalidInputError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    error_class,
)
from etoro_nb.operations import OperationInfo
from etoro_nb.operations import operation as operation_info
from etoro_nb.ratelimit import RateLimiter

if TYPE_CHECKING:
    from etoro_nb.ledger.recorder import UsageRecorder

MAX_RETRIES = 3
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
RETRY_AFTER_CAP = 60.0
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# Answers that prove the server did nothing, so even a non-idempotent call may be resent.
NOTHING_HAPPENED = frozenset({429, 503})
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Errors after which a write may or may not have taken effect (flows reconcile after them).
AMBIGUOUS = (APIConnectionError, ServerError)

T = TypeVar("T")


# The client's argument names for the contract's path parameters: a typed method's bad id
# is reported under the name its caller used (``portfolio_id``, not ``agentPortfolioId``).
ARGUMENT_NAMES: Mapping[str, str] = MappingProxyType({
    "agentPortfolioId": "portfolio_id", "userTokenId": "token_id", "positionId": "position_id",
    "orderId": "order_id", "instrumentId": "instrument_id", "candlesCount": "count"})


@dataclass(frozen=True)
class Call:
    """One logical request: every retry of it is the same call with the same request id.

    Built with ``Call.of`` from an operation id: its method, route, idempotency and whether
    it touches real money all come from the operation's catalogue entry
    (``etoro_nb.operations``); a path that is not the operation's route is refused."""

    operation: str
    path: str
    json: Any = None
    params: dict[str, Any] | None = None
    request_id: str | None = None
    info: OperationInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        info = operation_info(self.operation)
        if info is None or not info.matches(self.path):
            route = "no route" if info is None else f"route {info.route}"
            raise ValueError(f"{self.operation} has {route}; a call to {self.path!r} is not it "
                             "(build calls with Call.of)")
        object.__setattr__(self, "info", info)

    @classmethod
    def of(cls, operation_id: str, path_params: Mapping[str, object] | None = None, *,
           params: Mapping[str, Any] | None = None, json: Any = None,
           request_id: str | None = None,
           names: Mapping[str, str] = ARGUMENT_NAMES) -> Call:
        """The call to ``operation_id`` with its route's parameters filled in, each checked
        and quoted (``rules.path_id``); ``names`` maps a parameter to the name a bad value
        is reported under."""
        info = operation_info(operation_id)
        if info is None:
            raise InvalidInputError("operation_id", f"{operation_id!r} is not an operation of "
                                                  "the contract")
        given = path_params or {}
        path = info.route
        for name in info.path_params:
            label = names.get(name, name)
            if name not in given:
                raise InvalidInputError(label, "this path parameter is required")
            path = path.replace("{" + name + "}", rules.path_id(given[name], label))
        return cls(operation_id, path, json=json, params=dict(params) if params else None,
                   request_id=request_id)

    @property
    def method(self) -> str:
        return self.info.method

    @property
    def idempotent(self) -> bool:
        return self.info.idempotent

    @property
    def real_money(self) -> bool:
        return self.info.real_money

    @property
    def kind(self) -> Literal["read", "write"]:
        return "read" if self.method == "GET" else "write"


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any = field(repr=False)  # may hold a minted secret
    headers: httpx.Headers = field(repr=False)
    request_id: str
    attempts: int
    ambiguous_before: bool = False  # an earlier attempt may have taken effect
    operation: str = ""


Flow = Generator[Call, Answer, T]


@dataclass
class Attempts:
    """Retry state of one call."""

    request_id: str
    number: int = 0
    ambiguous: bool = False


class RetryPolicy:
    """When to try again, and how long to wait first."""

    def __init__(self, max_retries: int = MAX_RETRIES, initial: float = INITIAL_RETRY_DELAY,
                 cap: float = MAX_RETRY_DELAY, retry_after_cap: float = RETRY_AFTER_CAP) -> None:
        self.max_retries = max_retries
        self.initial = initial
        self.cap = cap
        self.retry_after_cap = retry_after_cap

    def jitter(self) -> float:
        """A factor in [0.75, 1.0]; tests replace it to make delays exact."""
        return 1.0 - 0.25 * random.random()

    def backoff(self, attempt: int) -> float:
        return min(self.cap, self.initial * 2.0 ** (attempt - 1)) * self.jitter()

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_cap)
        return self.backoff(attempt)

    def retry_status(self, call: Call, status: int, attempt: int) -> bool:
        if attempt > self.max_retries or status not in RETRYABLE_STATUS:
            return False
        return call.idempotent or status in NOTHING_HAPPENED

    def retry_connection(self, call: Call, attempt: int) -> bool:
        return call.idempotent and attempt <= self.max_retries


def key_id(user_key: str) -> str:
    """A stable, secret-free id for a user key (quota bookkeeping, logs)."""
    return hashlib.sha256(user_key.encode()).hexdigest()[:16]


def parse_retry_after(headers: httpx.Headers) -> float | None:
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_body(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


# What reading a body of the wrong shape raises: pydantic's error, a missing key or index,
# a value of the wrong type (``None["x"]``, ``int("x")``, ``[].get``).
SHAPE_ERRORS = (PydanticValidationError, ResponseFormatError, KeyError, IndexError, TypeError,
                ValueError, AttributeError)


def describe(exc: Exception) -> str:
    """What was wrong with a body, by field and rule, never by value: pydantic's locations
    and messages (without their inputs), a missing key's name, else the error's type."""
    if isinstance(exc, PydanticValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or '(body)'}: {e['msg']}"
                         for e in exc.errors(include_input=False, include_url=False))
    if isinstance(exc, ResponseFormatError):
        return exc.detail
    if isinstance(exc, KeyError):  # the keys are the code's own literals, never body values
        return f"missing field {exc.args[0]!r}" if exc.args else "missing field"
    return f"{type(exc).__name__} reading it"


def read(answer: Answer, parse: Callable[[Any], T]) -> T:
    """``parse(answer.body)``: every typed result is read from an answer through here, so
    a body of the wrong shape is a ``ResponseFormatError`` naming the operation and the
    request id (and the fields, never their values: an answer may hold a secret)."""
    try:
        return parse(answer.body)
    except SHAPE_ERRORS as exc:
        detail = describe(exc)
    raise ResponseFormatError(f"unexpected answer: {detail}", request_id=answer.request_id,
                              operation=answer.operation or "-")


class Core:
    """Request building and answer handling, with no I/O of its own."""

    def __init__(self, *, base_url: str, api_key: str, user_key: str,
                 limiter: RateLimiter, policy: RetryPolicy,
                 recorder: UsageRecorder | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.recorder = recorder
        self._api_key = api_key
        self._user_key = user_key
        self.key_id = key_id(user_key)
        self.limiter = limiter
        self.policy = policy

    def __repr__(self) -> str:
        return f"Core(base_url={self.base_url!r}, key_id={self.key_id!r})"

    def start(self, call: Call) -> Attempts:
        return Attempts(call.request_id or str(uuid.uuid4()))

    def before_send(self, call: Call, attempts: Attempts) -> float:
        """Record the intent (write-ahead); returns the start time. A LedgerError raised
        here means the request is not sent: the ledger fails closed."""
        if self.recorder is not None:
            self.recorder.intent(call.operation, call.method, call.path, attempts.request_id,
                                 attempts.number)
        return time.perf_counter()

    async def before_send_async(self, call: Call, attempts: Attempts) -> float:
        """``before_send`` for an event loop: the intent's commit is awaited, off the loop."""
        if self.recorder is not None:
            await self.recorder.intent_async(call.operation, call.method, call.path,
                                             attempts.request_id, attempts.number)
        return time.perf_counter()

    def _record(self, call: Call, attempts: Attempts, started: float, status: int | None,
                error_code: str | None) -> None:
        if self.recorder is not None:
            self.recorder.outcome(call.operation, call.method, call.path, attempts.request_id,
                                  attempts.number, status, error_code,
                                  (time.perf_counter() - started) * 1000.0)

    def build(self, http: httpx.Client | httpx.AsyncClient, call: Call,
              attempts: Attempts) -> httpx.Request:
        headers = {"x-api-key": self._api_key, "x-user-key": self._user_key,
                   "x-request-id": attempts.request_id}
        return http.build_request(call.method, self.base_url + call.path, json=call.json,
                                  params=call.params, headers=headers)

    def on_transport_error(self, call: Call, attempts: Attempts, exc: Exception,
                           started: float) -> float:
        """The delay before retrying after no answer, or raise if we must not retry."""
        self._record(call, attempts, started, None, type(exc).__name__)
        # A request that never connected did nothing: safe to resend even if not idempotent.
        unsent = isinstance(exc, NEVER_SENT)
        attempts.ambiguous = attempts.ambiguous or not unsent
        if (unsent and attempts.number <= self.policy.max_retries) or \
                self.policy.retry_connection(call, attempts.number):
            return self.policy.backoff(attempts.number)
        cls = APITimeoutError if isinstance(exc, httpx.TimeoutException) else APIConnectionError
        raise cls(f"no answer after {attempts.number} attempt(s): {type(exc).__name__}",
                  request_id=attempts.request_id, operation=call.operation) from None

    def on_response(self, call: Call, attempts: Attempts, response: httpx.Response,
                    started: float) -> Answer | float:
        """An answer, or the delay before retrying; raises the mapped error otherwise."""
        self.limiter.observe(self.key_id, call.kind, response.headers)
        status = response.status_code
        body = parse_body(response)
        self._record(call, attempts, started, status,
                     body.get("errorCode") if isinstance(body, dict) else None)
        if 200 <= status < 300:
            return Answer(status, body, response.headers, attempts.request_id, attempts.number,
                          attempts.ambiguous, call.operation)
        retry_after = parse_retry_after(response.headers)
        code = body.get("errorCode") if isinstance(body, dict) else None
        if code != "MaxUserTokensExceeded" and self.policy.retry_status(
                call, status, attempts.number):
            if status not in NOTHING_HAPPENED:
                attempts.ambiguous = True
            return self.policy.delay(attempts.number, retry_after)
        raise self.error(call, attempts, status, body, retry_after, response.headers)

    def error(self, call: Call, attempts: Attempts, status: int, body: Any,
              retry_after: float | None, headers: httpx.Headers | None = None) -> APIError:
        code = body.get("errorCode") if isinstance(body, dict) else None
        message = body.get("errorMessage") if isinstance(body, dict) else None
        cls = error_class(status, code)
        kw: dict[str, Any] = dict(status=status, error_code=code, error_message=message,
                                  request_id=attempts.request_id, operation=call.operation,
                                  body=body, attempts=attempts.number,
                                  ambiguous_before=attempts.ambiguous,
                                  headers=dict(headers or {}))
        if cls is RateLimitError:
            return RateLimitError(retry_after=retry_after, **kw)
        return cls(**kw)
