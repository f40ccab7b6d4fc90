"""Every failure of a tool call as an MCP tool error (``isError``): a short text for the
model and a structured ``error`` with the code, the rule or scope, and the request id.

Messages come from the project's errors, which never hold a secret; an unexpected
exception is reported by its class only (its text could hold anything) and logged.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import asdict, dataclass
from typing import Any

import mcp_types as types

from etoro_nb.errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    EtoroError,
    InvalidInputError,
    PolicyViolation,
    ResponseFormatError,
    SessionStopped,
)

log = logging.getLogger("etoro_nb.mcp")


@dataclass(frozen=True)
class Failure:
    """What a tool error says. ``code``: the server's ``errorCode``, or the local kind
    (``PolicyViolation``, ``ScopeMissing``, ``InvalidInput``, ``TokenRevoked`` ...);
    ``rule`` a policy rule or input rule; ``scope`` the scope needed; ``field`` the bad
    input; ``request_id`` the request (or the recorded refusal) it concerns."""

    code: str
    message: str
    rule: str | None = None
    scope: str | None = None
    field: str | None = None
    request_id: str | None = None
    status: int | None = None
    limit: Any = None
    attempted: Any = None
    sent: bool = False
    """Whether a request reached the server (False: refused here, nothing sent)."""


class ToolFailure(Exception):
    """Raised inside the server to end a tool call with ``failure``."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def scope_missing(scope: str, tool: str) -> ToolFailure:
    return ToolFailure(Failure(
        "ScopeMissing", f"{tool} needs the scope {scope}, which this token does not have "
        "(the owner narrowed it, or never granted it): nothing was sent", scope=scope))


def bad_input(field: str, rule: str) -> ToolFailure:
    return ToolFailure(Failure("InvalidInput", f"{field}: {rule} (nothing was sent)",
                               rule=rule, field=field))


def failure_of(exc: BaseException, *, request_id: str | None = None,
               scope: str | None = None) -> Failure:
    """The tool error an exception becomes. ``request_id``: the id the call used, when the
    exception does not carry one (a local refusal recorded under it)."""
    if isinstance(exc, ToolFailure):
        return exc.failure
    if isinstance(exc, SessionStopped):
        cause = exc.cause
        return Failure("SessionStopped", f"the agent session stopped: {exc.reason}. Nothing "
                       "was sent; the owner must grant again for trading to resume",
                       rule="stopped", request_id=getattr(cause, "request_id", None),
                       status=getattr(cause, "status", None))
    if isinstance(exc, PolicyViolation):
        if exc.rule == "scope":
            scope = str(exc.attempted)
        return Failure("PolicyViolation", str(exc),
                       rule=exc.rule, scope=scope if exc.rule == "scope" else None,
                       request_id=request_id, limit=_plain(exc.limit),
                       attempted=_plain(exc.attempted))
    if isinstance(exc, InvalidInputError):
        return Failure("InvalidInput", f"{exc.field}: {exc.rule} (nothing was sent)",
                       rule=exc.rule, field=exc.field)
    if isinstance(exc, AuthenticationError):
        return Failure("TokenRevoked", f"the server refused the token ({exc.status} "
                       f"{exc.error_code or 'no errorCode'}): the owner revoked it, or it "
                       "expired. No tool works until the owner grants a new token",
                       request_id=exc.request_id, status=exc.status, sent=True)
    if isinstance(exc, APIError):
        return Failure(exc.error_code or f"HTTP{exc.status}", str(exc), scope=scope,
                       request_id=exc.request_id, status=exc.status, sent=True)
    if isinstance(exc, APIConnectionError | ResponseFormatError):
        return Failure(type(exc).__name__, str(exc), request_id=exc.request_id, sent=True)
    if isinstance(exc, EtoroError):
        return Failure(type(exc).__name__, str(exc), request_id=request_id)
    # Where it failed, for the operator; not its text, which could hold anything.
    log.error("a tool call failed unexpectedly (%s), at:\n%s", type(exc).__name__,
              "".join(traceback.format_tb(exc.__traceback__)).rstrip())
    return Failure("InternalError", f"the server failed on this call ({type(exc).__name__}); "
                   "it keeps serving. See its log", request_id=request_id)


def error_result(failure: Failure) -> types.CallToolResult:
    """The MCP tool error: text for the model, the same as ``structuredContent.error``."""
    parts = [f"[{failure.code}] {failure.message}"]
    for name in ("rule", "scope", "field", "request_id"):
        value = getattr(failure, name)
        if value is not None:
            parts.append(f"{name}: {value}")
    text = "\n".join(parts)
    error = {k: v for k, v in asdict(failure).items() if v is not None}
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)],
                                structured_content={"error": error}, is_error=True)


def _plain(value: Any) -> Any:
    """A limit or attempted value as JSON can carry it."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return str(value)
