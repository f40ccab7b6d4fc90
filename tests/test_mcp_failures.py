"""How each failure becomes an MCP tool error (pure mapping, no server): the code, the
rule or scope, the request id, whether anything was sent; an unexpected exception is
named by its class only, so its text (which could hold anything) never reaches the AI."""

from __future__ import annotations

import logging

import pytest

from etoro_nb.errors import (
    AuthenticationError,
    InvalidInputError,
    PermissionDeniedError,
    PolicyViolation,
    SessionStopped,
)
from etoro_nb.mcp.failures import error_result, failure_of


def _api(kind: type[AuthenticationError] | type[PermissionDeniedError], status: int,
         code: str) -> AuthenticationError | PermissionDeniedError:
    return kind(status=status, error_code=code, error_message="refused", request_id="rid-1",
                operation="getPortfolioDemo")


def test_a_policy_refusal_keeps_its_rule_limit_and_the_orders_request_id() -> None:
    failure = failure_of(PolicyViolation("max_order_amount_usd", 100.0, 150.0), request_id="rid-9")
    assert (failure.code, failure.rule, failure.limit, failure.attempted) == (
        "PolicyViolation", "max_order_amount_usd", 100.0, 150.0)
    assert failure.request_id == "rid-9" and failure.sent is False
    scope = failure_of(PolicyViolation("scope", ["a:read"], "a:write"))
    assert (scope.rule, scope.scope, scope.limit) == ("scope", "a:write", ["a:read"])


def test_server_refusals_carry_status_and_request_id() -> None:
    revoked = failure_of(_api(AuthenticationError, 401, "Unauthorized"))
    assert (revoked.code, revoked.status, revoked.request_id, revoked.sent) == (
        "TokenRevoked", 401, "rid-1", True)
    denied = failure_of(_api(PermissionDeniedError, 403, "Forbidden"))
    assert (denied.code, denied.status, denied.request_id) == ("Forbidden", 403, "rid-1")
    stopped = failure_of(SessionStopped("the token was revoked",
                                        cause=_api(AuthenticationError, 401, "Unauthorized")))
    assert (stopped.code, stopped.rule, stopped.request_id) == ("SessionStopped", "stopped", "rid-1")


def test_bad_input_names_its_field() -> None:
    failure = failure_of(InvalidInputError("amount", "must be > 0"))
    assert (failure.code, failure.field, failure.rule) == ("InvalidInput", "amount", "must be > 0")
    result = error_result(failure)
    assert result.is_error and result.structured_content is not None
    assert result.structured_content["error"]["field"] == "amount"
    assert "field: amount" in result.content[0].text  # type: ignore[union-attr]


def test_an_unexpected_exception_is_named_by_its_class_only(
        caplog: pytest.LogCaptureFixture) -> None:
    canary = "etnb_canary_" + "secret_value"

    def fails() -> None:
        raise KeyError(canary)  # the message holds it; the source line does not

    with caplog.at_level(logging.ERROR, logger="etoro_nb.mcp"):
        try:
            fails()
        except KeyError as exc:
            failure = failure_of(exc)
    assert failure.code == "InternalError" and "KeyError" in failure.message
    assert "etnb_canary" not in failure.message
    assert "etnb_canary" not in error_result(failure).model_dump_json()
    assert "in fails" in caplog.text  # the operator's log says where it failed
    assert "etnb_canary" not in caplog.text
