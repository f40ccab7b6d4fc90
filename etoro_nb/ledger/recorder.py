"""Write-ahead usage recording for one client: intent before sending, outcome after.

The intent is made durable before the request is sent: at the default durability it is
written to the process's spool (``Ledger.spool_usage``: one ``os.write``) and committed by
the ledger's writer thread shortly after; at ``durability="full"`` it is committed (and
synced) first (``intent`` waits for it; ``intent_async`` awaits it without blocking the
event loop). The outcome is spooled too (best effort) and handed to the writer without
waiting (see ``core`` for when it is committed), except that at ``durability="full"`` the
synchronous client waits for it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import suppress
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from etoro_nb.errors import LedgerError
from etoro_nb.operations import describe

if TYPE_CHECKING:
    from etoro_nb.ledger.core import Ledger

log = logging.getLogger("etoro_nb.ledger")


PORTFOLIO_PARAM = "{agentPortfolioId}"


@lru_cache(maxsize=4096)
def _described(operation_id: str, method: str, path: str) -> tuple[str, str, str | None,
                                                                    str | None]:
    """(method, route, scope required, portfolio addressed) of a call: the same for every
    call to one path, so worked out once per path."""
    info = describe(operation_id, method, path)
    return info.method, info.route, info.scope_required, _portfolio_in(info.route, path)


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
                 clock: Callable[[], datetime] | None = None, on_loop: bool = False,
                 application: str | None = None) -> None:
        self.ledger = ledger
        self.application = application  # recorded on every row (None: not named)
        # An async client's recorder never waits in its thread (the event loop's).
        self.wait_outcomes = ledger.durability == "full" and not on_loop
        self.on_loop = on_loop  # so a full batch is left to the writer thread, not the loop
        # At the default durability rows go through the process's spool (see ``spool``).
        self.spooled = ledger.durability == "normal"
        self.clock = clock
        self.principal = principal
        self.environment = environment
        # An agent is known by its token; the owner's key is not a token and not recorded.
        self.fingerprint = ledger.fingerprint(user_key) if principal == "agent" else None

    def __repr__(self) -> str:
        return f"UsageRecorder({self.ledger!r}, principal={self.principal!r})"

    def _row(self, phase: str, operation_id: str, method: str, path: str, request_id: str,
             attempt: int) -> dict[str, Any]:
        method, route, scope, portfolio = _described(operation_id, method, path)
        token = self.ledger.token_for(self.fingerprint) if self.fingerprint else None
        row = {"phase": phase, "request_id": request_id, "attempt": attempt,
               "principal": self.principal,
               "portfolio_id": token[1] if token else portfolio,
               "token_id": token[0] if token else None, "token_fingerprint": self.fingerprint,
               "environment": self.environment, "method": method, "route": route,
               "operation_id": operation_id, "scope_required": scope,
               "application": self.application}
        if self.clock is not None:
            row["ts_us"] = int(self.clock().timestamp() * 1_000_000)
        return row

    def intent(self, operation_id: str, method: str, path: str, request_id: str,
               attempt: int) -> None:
        """Make the intent durable (spooled, or at ``durability="full"`` committed); a
        LedgerError here means the request must not be sent."""
        row = self._row("intent", operation_id, method, path, request_id, attempt)
        if self.spooled:
            self.ledger.spool_usage(row)
        else:
            self.ledger.append_usage(**row)

    async def intent_async(self, operation_id: str, method: str, path: str, request_id: str,
                           attempt: int) -> None:
        """``intent`` for an event loop. Spooling is one small ``os.write`` (done on the
        loop); a commit (``durability="full"``), with its lock waits and retries, runs in
        the writer thread and is awaited, never on the loop."""
        row = self._row("intent", operation_id, method, path, request_id, attempt)
        if self.spooled:
            self.ledger.spool_usage(row, on_loop=True)
        else:
            import asyncio  # here, not at import: a sync user never needs it

            await asyncio.wrap_future(self.ledger.submit_usage(row))

    def outcome(self, operation_id: str, method: str, path: str, request_id: str,
                attempt: int, status: int | None, error_code: str | None,
                latency_ms: float) -> None:
        """Hand the outcome to the ledger's writer without waiting (but see
        ``wait_outcomes``). The request already happened, so a failure to record it is
        logged; if the ledger can't be written, the next request's intent fails and stops
        further sending."""
        row = self._row("outcome", operation_id, method, path, request_id, attempt)
        row.update(status=status, error_code=error_code, latency_ms=latency_ms)

        def report(done: Future[int]) -> None:
            exc = done.exception()
            if exc is not None:
                log.error("could not record the outcome of %s (request id %s): %s",
                          operation_id, request_id, exc)

        try:
            if self.spooled:  # a failed commit is logged by the writer
                self.ledger.spool_usage(row, required=False, on_loop=self.on_loop)
                return
            future = self.ledger.submit_usage(row, deferred=True)
        except LedgerError as exc:  # the ledger is closed
            log.error("could not record the outcome of %s (request id %s): %s",
                      operation_id, request_id, exc)
            return
        future.add_done_callback(report)
        if self.wait_outcomes:
            with suppress(LedgerError):  # reported by the callback
                future.result()
