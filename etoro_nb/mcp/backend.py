"""One delegated token acting for one MCP client: its agent client (recording with the
client's application name), its ``AgentSession``, and a watch on the owner's changes.

Every call from the event loop into this synchronous code goes through ``off_loop``, the
one place that knows the session is synchronous (an async session could replace it there);
a backend's calls go to a worker thread of its own (``Backend.thread``), which is cheaper
to hand a call to than anyio's shared pool and keeps one client's calls in one thread.
``Backend.call`` looks at the ledger first (one indexed query on a read-only connection):
an owner's token change (narrowed, widened, revoked, portfolio deleted) makes it learn the
token's scopes again (``/api/v1/me``, recorded) and start a new session with them; a pause,
resume or policy version is read into ``controls``. A 401 or 403 from the server (a change
made where this ledger does not see it) leads to the same re-learning.
"""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio.to_thread

from etoro_nb import scopes
from etoro_nb.agent import events
from etoro_nb.agent.controls import Controls, read_controls
from etoro_nb.agent.policy import RiskPolicy
from etoro_nb.agent.session import AgentSession
from etoro_nb.errors import (
    AuthenticationError,
    LedgerError,
    PermissionDeniedError,
    PolicyViolation,
    SessionStopped,
)
from etoro_nb.mcp.failures import Failure, ToolFailure, failure_of

if TYPE_CHECKING:
    from etoro_nb.client import EtoroClient
    from etoro_nb.ledger import Ledger
    from etoro_nb.mcp.schemas import InstrumentItem

T = TypeVar("T")
Account = Literal["real", "demo"]
TOKEN_KINDS = ("token_updated", "token_revoked", "portfolio_deleted")


async def off_loop(call: Callable[..., T], *args: Any, thread: Executor | None = None) -> T:
    """Run blocking work (the agent session, the ledger) in a worker thread, so the server
    never blocks its event loop: ``thread`` (a backend's own), else one of anyio's. As with
    anyio's, work under way is awaited to its end before a cancellation is delivered (an
    order is never left half-known). The one call site of the synchronous session."""
    work = partial(call, *args)
    if thread is None:
        return await anyio.to_thread.run_sync(work)
    future = asyncio.get_running_loop().run_in_executor(thread, contextvars.copy_context().run,
                                                        work)
    with anyio.CancelScope(shield=True):
        result = await future
    return result


class OwnerWatch:
    """Which owner events about one portfolio came since the last look: one query on a
    read-only connection of its own (WAL readers never wait for a writer)."""

    @staticmethod
    def _exists(kinds: tuple[str, ...]) -> str:
        return ("EXISTS (SELECT 1 FROM lifecycle_events WHERE seq > :since AND portfolio_id = "
                ":portfolio AND coalesce(phase, 'outcome') <> 'intent' AND kind IN ("
                + ", ".join(f"'{k}'" for k in kinds) + "))")

    def __init__(self, ledger: Ledger, portfolio_id: str) -> None:
        self.portfolio_id = portfolio_id
        self._sql = ("SELECT coalesce((SELECT max(seq) FROM lifecycle_events), 0), "
                     "coalesce((SELECT max(last_seq) FROM segments "
                     "WHERE table_name = 'lifecycle_events'), 0), "
                     f"{self._exists(TOKEN_KINDS)}, {self._exists(events.CONTROL_KINDS)}")
        try:
            self._conn = sqlite3.connect(f"{ledger.path.as_uri()}?mode=ro", uri=True,
                                         isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot read the ledger at {ledger.path}: {exc}") from None
        self._seen = 0
        self.changed()

    def changed(self) -> tuple[bool, bool]:
        """(the token or the portfolio changed, the owner's controls changed) since the last
        look; rows sealed away since then count as both (they can no longer be seen here)."""
        try:
            live, sealed, token, controls = self._conn.execute(
                self._sql, {"since": self._seen, "portfolio": self.portfolio_id}).fetchone()
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot read the ledger: {exc}") from None
        unseen = int(sealed) > self._seen
        self._seen = max(int(live), int(sealed))
        return bool(token) or unseen, bool(controls) or unseen

    def close(self) -> None:
        self._conn.close()


class Backend:
    """The token as one MCP client uses it (thread-safe: calls are serialised).

    ``scopes`` are the token's, as the server last said; ``refused`` is set for good once
    the server refuses the token itself (401: revoked or expired); ``session`` is None
    while the token cannot read its account (no read scope), when only market data works.
    """

    def __init__(self, agent: EtoroClient, *, account: Account, policy: RiskPolicy | None,
                 portfolio_id: str | None) -> None:
        self.agent = agent
        self.account: Account = account
        self.policy = policy
        self.session: AgentSession | None = None
        self.scopes: frozenset[str] = frozenset()
        self.refused: Failure | None = None
        self.controls: Controls | None = None
        self.instruments: dict[int | str, InstrumentItem] = {}
        """Instruments the tools looked up, by id and by upper-case symbol (they never change)."""
        self._lock = threading.Lock()
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="etoro-nb-mcp")
        """Where the server runs this backend's calls (``off_loop(..., thread=)``)."""
        ledger = agent.ledger
        recorder = agent.recorder
        known = (ledger.token_for(recorder.fingerprint)
                 if ledger is not None and recorder is not None and recorder.fingerprint else None)
        self.token_id = known[0] if known else None
        self.portfolio_id = portfolio_id or (known[1] if known else None)
        self._watch = (OwnerWatch(ledger, self.portfolio_id)
                       if ledger is not None and self.portfolio_id else None)
        self._learn(None)

    @property
    def application(self) -> str | None:
        return self.agent.config.application

    @property
    def ledger(self) -> Ledger | None:
        return self.agent.ledger

    def scope(self, access: Literal["read", "write"]) -> str:
        return scopes.scope_for(self.account, access)

    # -- keeping up with the owner ---------------------------------------------------------
    def _learn(self, why: str | None) -> None:
        """(Re)start the session with the token's scopes as the server gives them now."""
        if self.session is not None and self.session.stopped is None:
            self.session.stop(f"the MCP server starts a new session: {why}")
        self.session = None
        try:
            self.session = AgentSession(self.agent, self.policy, account=self.account,
                                        portfolio_id=self.portfolio_id)
            self.scopes = self.session.scopes
        except SessionStopped as exc:  # the server refused the token at start
            self.scopes = frozenset()
            if isinstance(exc.cause, AuthenticationError):
                self.refused = failure_of(exc.cause)
            else:
                raise
        except PolicyViolation as exc:  # no read scope: the session can't keep its book
            if exc.rule != "scope":
                raise
            self.scopes = frozenset(exc.limit or ())
        if self.ledger is not None and self.portfolio_id is not None:
            self.controls = read_controls(self.ledger, self.portfolio_id)

    def look(self) -> None:
        """Catch up with the owner's changes the ledger shows (no request unless one came)."""
        with self._lock:
            self._look()

    def _look(self) -> None:
        if self.refused is not None or self._watch is None:
            return
        token, controls = self._watch.changed()
        if token:
            self._learn("the owner changed the token or its portfolio")
        elif controls and self.ledger is not None and self.portfolio_id is not None:
            # The session sees a pause or a policy itself before its next order; this is
            # for the tool descriptions, the resources and the notices on reads.
            self.controls = read_controls(self.ledger, self.portfolio_id)

    def view(self, read: Callable[[Backend], T]) -> T:
        """``read`` this backend's state after catching up with the owner (lists, resources)."""
        with self._lock:
            self._look()
            return read(self)

    def now(self, read: Callable[[Backend], T]) -> T:
        """``read`` this backend's state as it stands (no look at the ledger: a call just
        looked)."""
        with self._lock:
            return read(self)

    def call(self, work: Callable[[Backend], T]) -> T:
        """Run ``work`` after catching up with the owner; a refusal of the token by the
        server makes the backend learn again what the token may do, then re-raises."""
        with self._lock:
            self._look()
            if self.refused is not None:
                raise ToolFailure(self.refused)
            try:
                return work(self)
            except (SessionStopped, AuthenticationError, PermissionDeniedError) as exc:
                cause = exc.cause if isinstance(exc, SessionStopped) else exc
                if isinstance(cause, AuthenticationError | PermissionDeniedError):
                    self._learn(f"the server refused the token ({cause.status})")
                    if isinstance(cause, AuthenticationError):
                        self.refused = failure_of(cause)
                        raise ToolFailure(self.refused) from None
                    raise failure_for_403(exc, cause) from None
                raise

    def require_session(self) -> AgentSession:
        if self.session is None:
            raise ToolFailure(Failure(
                "ScopeMissing", f"this token lacks {self.scope('read')}, so no session can "
                "read the account: nothing was sent", scope=self.scope("read")))
        return self.session

    def close(self) -> None:
        with self._lock:
            if self.session is not None and self.session.stopped is None:
                self.session.close()
            if self._watch is not None:
                self._watch.close()
            self.agent.close()
        self.thread.shutdown(wait=False)  # idle by now: close runs after the last call


def failure_for_403(exc: BaseException, cause: PermissionDeniedError) -> ToolFailure:
    """A 403 on a call: the token's scopes (or whitelist) were narrowed."""
    failure = failure_of(cause)
    return ToolFailure(Failure(failure.code, f"{failure.message}. The token's scopes were "
                               "narrowed: the tool list now follows them", scope=failure.scope,
                               request_id=failure.request_id, status=failure.status, sent=True))
