"""Write-ahead usage recording for one client: intent before sending, outcome after."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Literal

from etoro_nb.errors import LedgerError
from etoro_nb.ledger.core import Ledger
from etoro_nb.operations import describe

log = logging.getLogger("etoro_nb.ledger")


PORTFOLIO_PARAM = "{agentPortfolioId}"


def _portfolio_in(route: str, path: str) -> str | None:
    """The agent portfolio a call addresses by its path (the owner's management calls)."""
    if PORTFOLIO_PARAM not in route:
        return None
    at = route.split("/").index(PORTFOLIO_PARAM)
    parts = path.split("?")[0].split("/")
    return parts[at] if at < len(parts) else None


class UsageRecorder:
    """Records a client's requests: who (owner, or agent by token), what, and the answer.
    An agent's row names its token and that token's portfolio; an owner's row names the
    portfolio its path addresses (a token's update or revocation, a deletion), if any."""

    def __init__(self, ledger: Ledger, *, principal: Literal["owner", "agent"],
                 environment: str, user_key: str,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.ledger = ledger
        self.clock = clock
        self.principal = principal
        self.environment = environment
        # An agent is known by its token; the owner's key is not a token and not recorded.
        self.fingerprint = ledger.fingerprint(user_key) if principal == "agent" else None

    def __repr__(self) -> str:
        return f"UsageRecorder({self.ledger!r}, principal={self.principal!r})"

    def _row(self, operation_id: str, method: str, path: str, request_id: str,
             attempt: int) -> dict[str, object]:
        info = describe(operation_id, method, path)
        token = self.ledger.token_for(self.fingerprint) if self.fingerprint else None
        ts = {} if self.clock is None else {"ts_us": int(self.clock().timestamp() * 1_000_000)}
        return dict(**ts, request_id=request_id, attempt=attempt, principal=self.principal,
                    portfolio_id=token[1] if token else _portfolio_in(info.route, path),
                    token_id=token[0] if token else None,
                    token_fingerprint=self.fingerprint, environment=self.environment,
                    method=info.method, route=info.route, operation_id=operation_id,
                    scope_required=info.scope_required)

    def intent(self, operation_id: str, method: str, path: str, request_id: str,
               attempt: int) -> None:
        """Commit the intent; a LedgerError here means the request must not be sent."""
        self.ledger.append_usage(phase="intent",
                                 **self._row(operation_id, method, path, request_id, attempt))

    def outcome(self, operation_id: str, method: str, path: str, request_id: str,
                attempt: int, status: int | None, error_code: str | None,
                latency_ms: float) -> None:
        """Commit the outcome. The request already happened, so a failure here is logged
        (the next request's intent will fail and stop further sending)."""
        try:
            self.ledger.append_usage(
                phase="outcome", status=status, error_code=error_code, latency_ms=latency_ms,
                **self._row(operation_id, method, path, request_id, attempt))
        except LedgerError as exc:
            log.error("could not record the outcome of %s (request id %s): %s",
                      operation_id, request_id, exc)
