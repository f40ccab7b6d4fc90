"""Every error etoro-nb raises, in one tree.

```
EtoroError
├── ConfigurationError          missing or contradictory settings (says how to supply them)
├── InvalidInputError             bad input caught before sending (names field and rule)
├── RealMoneyNotAllowedError    a real-trading call on a live connection without opt-in
├── LedgerError                 the ledger can't be written: the request was not sent
├── PolicyViolation             an agent's order refused locally by its risk policy: not sent
│   └── SessionStopped          the agent session stopped (kill switch, or closed): not sent
├── ConsentRequired             a change that loosens a grant or a policy, without consent
├── ResponseFormatError         an answer of an unexpected shape (values never echoed)
├── APIConnectionError          no answer: connection refused, dropped, timed out
│   ├── APITimeoutError
│   └── OrderOutcomeUnknownError  an order got no answer, nor did its lookup: placed or not
└── APIError                    an answer: status, error_code, error_message, request_id
    ├── BadRequestError         400 (ValidationFailed, NoChangesDetected, IpsWhitelistInvalidIp, ...)
    ├── AuthenticationError     401: unknown, revoked or expired key
    ├── PermissionDeniedError   403: owner-only operation, IP whitelist
    │   └── ScopeError          403 for a missing scope, or a scope name not allowed
    ├── NotFoundError           404
    ├── ConflictError           409 UserKeyNameAlreadyExists; 429 MaxUserTokensExceeded
    ├── RateLimitError          429 TooManyRequests (retry_after)
    ├── ServerError             5xx
    ├── PartialCreateError      207: portfolio created, first token not (carries both)
    └── OrderNotPlacedError     an order got no answer; the server confirms it has no such order
```

One warning: ``LedgerWarning``, when a change was made but the ledger could not record
it (the caller still gets the result; the ledger shows the change as unfinished).

The class is chosen by the body's ``errorCode`` first and the status second. No error's
text ever contains a secret: messages are built from the server's code and message,
the request id and the operation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


class EtoroError(Exception):
    """Base of every etoro-nb error."""


class ConfigurationError(EtoroError):
    """Settings are missing or contradict each other."""


class InvalidInputError(EtoroError, ValueError):
    """Input broke a rule of the contract; nothing was sent."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class RealMoneyNotAllowedError(EtoroError):
    """The real trading endpoints move real money on a live connection."""


class LedgerError(EtoroError):
    """The usage ledger could not be written; the request it was about was not sent."""


class LedgerWarning(UserWarning):
    """A change was made but the ledger could not record its outcome."""


class PolicyViolation(EtoroError):
    """An agent session refused an order before sending it: ``rule`` (the ``RiskPolicy``
    field, or ``scope``, ``paused``, ``stopped``) with its ``limit`` and the value the
    order would have reached (``attempted``); ``detail`` says it in words. Nothing was sent;
    the ledger records it."""

    def __init__(self, rule: str, limit: Any, attempted: Any, *, message: str | None = None,
                 operation: str | None = None, figures: bool = True) -> None:
        self.rule = rule
        self.limit = limit
        self.attempted = attempted
        self.operation = operation
        shown = f"limit {_shown(limit)}, attempted {_shown(attempted)}"
        self.detail = shown if message is None else f"{message} ({shown})" if figures else message
        super().__init__(f"refused locally, nothing sent: {rule}: {self.detail}")


class SessionStopped(PolicyViolation):
    """The agent session has stopped (the server refused its token with 401/403, or it was
    stopped or closed): no request of it is sent any more. ``reason`` says why; ``cause``
    is the server's refusal that stopped it, if any."""

    def __init__(self, reason: str, *, operation: str | None = None,
                 cause: EtoroError | None = None) -> None:
        self.reason = reason
        self.cause = cause
        super().__init__("stopped", None, None, operation=operation, figures=False,
                         message=f"the agent session has stopped ({reason})")


class ConsentRequired(EtoroError):
    """A change loosens what an agent may do and was made without ``consent=``: nothing
    changed. ``loosens`` names each thing that would have loosened."""

    def __init__(self, what: str, loosens: list[str]) -> None:
        self.loosens = list(loosens)
        super().__init__(f"{what} loosens {'; '.join(self.loosens)}: pass consent=\"...\" "
                         "(the owner's confirmation, recorded in the ledger) to make it")


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) >= 1 or value == 0 else f"{value:.6g}"
    if isinstance(value, list | tuple | frozenset | set):
        return "[" + ", ".join(map(str, value)) + "]"
    return "none" if value is None else str(value)


class ResponseFormatError(EtoroError):
    """An answer did not have the shape the contract gives it.

    ``detail`` names the fields and rules broken, never the body's values (an answer may
    hold a secret); ``request_id`` and ``operation`` say which answer, when known."""

    def __init__(self, detail: str, *, request_id: str | None = None,
                 operation: str | None = None) -> None:
        where = "" if operation is None else f" [operation {operation}, request id {request_id}]"
        super().__init__(f"{detail}{where}")
        self.detail = detail
        self.request_id = request_id
        self.operation = operation


class APIConnectionError(EtoroError):
    """The request got no answer (after every retry)."""

    def __init__(self, message: str, *, request_id: str, operation: str) -> None:
        super().__init__(f"{message} [operation {operation}, request id {request_id}]")
        self.detail = message
        self.request_id = request_id
        self.operation = operation


class APITimeoutError(APIConnectionError):
    """The request timed out."""


class OrderOutcomeUnknownError(APIConnectionError):
    """An order got no usable answer, and looking it up by its request id failed too: it
    may or may not have been placed. Look it up later with
    ``lookup_order(reference_id=error.request_id)``; placing it again with the same
    ``request_id`` is safe too (the request id is the order's idempotency key)."""


class APIError(EtoroError):
    """The API answered with an error."""

    def __init__(
        self, *, status: int, error_code: str | None, error_message: str | None,
        request_id: str, operation: str, body: Any = None, attempts: int = 1,
        ambiguous_before: bool = False, headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        #: The answer's headers (X-RateLimit-*, Retry-After, x-request-id).
        self.headers = dict(headers or {})
        self.attempts = attempts
        #: An earlier attempt of the same call got no answer and may have taken effect.
        self.ambiguous_before = ambiguous_before
        self.error_code = error_code
        self.error_message = error_message
        self.request_id = request_id
        self.operation = operation
        self.body = body
        code = error_code or "no errorCode"
        super().__init__(
            f"{status} {code}: {error_message or '(no message)'} "
            f"[operation {operation}, request id {request_id}]"
        )


class BadRequestError(APIError):
    """400: the server refused the input."""


class AuthenticationError(APIError):
    """401: the key is unknown, revoked or expired."""


class PermissionDeniedError(APIError):
    """403: not allowed for this caller (owner-only operation, IP whitelist)."""


class ScopeError(PermissionDeniedError):
    """403: the token lacks the scope, or the scope name is not allowed."""


class NotFoundError(APIError):
    """404."""


class ConflictError(APIError):
    """The request conflicts with existing state (a taken token name, the token cap)."""


class RateLimitError(APIError):
    """429 TooManyRequests; ``retry_after`` is the server's hint in seconds."""

    def __init__(self, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.retry_after = retry_after


class ServerError(APIError):
    """5xx."""


class PartialCreateError(APIError):
    """207: the agent portfolio exists but its first token was not created.

    ``portfolio`` is the new portfolio (an ``etoro_nb.models.AgentPortfolio``, typed ``Any``
    here so this module depends on nothing else in the package); ``mint_token()`` mints
    the token that was asked for (same name, scopes, whitelist and expiry) and returns it
    with its secret (from an ``AsyncEtoroClient``, it returns an awaitable).
    """

    def __init__(self, *, portfolio: Any, **kw: Any) -> None:
        super().__init__(**kw)
        self.portfolio = portfolio
        self._mint: Callable[[], Any] | None = None

    def bind(self, mint: Callable[[], Any]) -> PartialCreateError:
        self._mint = mint
        return self

    def mint_token(self) -> Any:
        if self._mint is None:
            raise RuntimeError("this error is not bound to a client")
        return self._mint()


class OrderNotPlacedError(APIError):
    """An order got no usable answer (no answer, or 5xx, after every retry), and the server
    confirms it has no order with its request id (404 on the lookup): it was NOT placed,
    and may be placed again. ``failure`` is the error its last attempt ended with."""

    def __init__(self, *, failure: EtoroError, **kw: Any) -> None:
        super().__init__(**kw)
        self.failure = failure


_BY_CODE: dict[str, type[APIError]] = {
    "Unauthorized": AuthenticationError,
    "InsufficientScope": ScopeError,
    "ScopeNameNotAllowed": ScopeError,
    "ScopeIdNotAllowed": ScopeError,
    "Forbidden": PermissionDeniedError,
    "NotFound": NotFoundError,
    "UserKeyNameAlreadyExists": ConflictError,
    "MaxUserTokensExceeded": ConflictError,
    "TooManyRequests": RateLimitError,
}
_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError, 401: AuthenticationError, 403: PermissionDeniedError,
    404: NotFoundError, 409: ConflictError, 429: RateLimitError,
}


def error_class(status: int, error_code: str | None) -> type[APIError]:
    """The class for an error answer: by ``errorCode`` first, then by status."""
    if error_code in _BY_CODE:
        cls = _BY_CODE[error_code]
        # A scope name refused as input is a 400 on create: keep it a bad request there.
        if cls is ScopeError and status == 400:
            return BadRequestError
        return cls
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, APIError)
