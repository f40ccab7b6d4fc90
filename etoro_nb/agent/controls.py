"""The owner's controls of an agent portfolio: its policy, pause and resume, and stopping
the agent. They live in the ledger (``events``), so an agent session in any process that
records into the same ledger file sees them before its next order.

``PolicyControls`` / ``AsyncPolicyControls`` give ``client.agent_portfolios`` its
``set_policy``, ``policy``, ``controls``, ``pause``, ``resume`` and ``stop_agent``.
Loosening a policy needs ``consent=`` (the owner's confirmation, recorded with it), as
granting a write scope does in the panels; tightening needs none. A refused loosening is
recorded too (``phase = 'failed'``), so both show in the audit.

``ControlWatcher`` is how a session keeps up: one query per order (on the primary key,
over the rows appended since it last looked) asks whether any owner event for its
portfolio came, and only then reads the controls again.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

import polars as pl

from etoro_nb import rules
from etoro_nb._base import Flow
from etoro_nb.agent import events
from etoro_nb.agent.policy import RiskPolicy
from etoro_nb.errors import ConfigurationError, ConsentRequired, InvalidInputError, LedgerError
from etoro_nb.ledger import Ledger

if TYPE_CHECKING:
    from etoro_nb._runner import AsyncRunner, Runner, RunnerState
    from etoro_nb.models import AgentPortfolio


@dataclass(frozen=True)
class Controls:
    """One agent portfolio's controls as the ledger holds them."""

    portfolio_id: str
    policy: RiskPolicy | None = None
    version: int = 0
    """The policy's version (1 for the first; 0: no policy set)."""
    virtual_balance_usd: float | None = None
    """The portfolio's virtual balance when the policy was set (for share limits)."""
    paused: bool = False
    reason: str | None = None
    """Why it was paused, while it is."""
    changed_at: datetime | None = None


def controls_from(events_frame: pl.DataFrame, portfolio_id: str) -> Controls:
    """The controls a ``frames.policy_events`` frame ends with, for one portfolio."""
    owner = events_frame.filter(pl.col("portfolio_id") == portfolio_id,
                                pl.col("source") == "owner", pl.col("phase").ne_missing("failed"))
    policy, version, balance, paused, reason, at = None, 0, None, False, None, None
    for e in owner.sort("seq").iter_rows(named=True):
        detail = json.loads(e["detail"]) if e["detail"] else {}
        at = e["ts"]
        if e["kind"] == events.POLICY_SET:
            policy = RiskPolicy.from_limits(detail["policy"])
            version = int(detail.get("policy_version") or version + 1)
            balance = detail.get("virtual_balance_usd")
        elif e["kind"] == events.PAUSED:
            paused, reason = True, detail.get("reason")
        elif e["kind"] == events.RESUMED:
            paused, reason = False, None
    return Controls(portfolio_id, policy, version, balance, paused, reason, at)


def read_controls(ledger: Ledger, portfolio_id: str) -> Controls:
    """One portfolio's controls, read from the whole ledger (sealed segments included)."""
    from etoro_nb.frames.ledger import policy_events

    return controls_from(policy_events(ledger, portfolio=portfolio_id, server_refusals=False),
                         portfolio_id)


class ControlWatcher:
    """Keeps one portfolio's ``Controls`` current at the cost of one query per look.

    The query runs on a read-only connection of its own to the ledger file, so it waits
    for no writer (WAL readers never block) and asks the ledger object nothing."""

    _SQL = ("SELECT (SELECT max(seq) FROM lifecycle_events), "
            "(SELECT coalesce(max(last_seq), 0) FROM segments "
            " WHERE table_name = 'lifecycle_events'), "
            "EXISTS (SELECT 1 FROM lifecycle_events WHERE seq > ? AND portfolio_id = ? AND kind IN ("
            + ", ".join(f"'{k}'" for k in events.CONTROL_KINDS) + "))")

    def __init__(self, ledger: Ledger, portfolio_id: str) -> None:
        self.ledger = ledger
        self.portfolio_id = portfolio_id
        self._conn: sqlite3.Connection | None = None  # a shared ledger: its reading connection
        if ledger.backend == "sqlite":
            try:
                self._conn = sqlite3.connect(f"{ledger.path.as_uri()}?mode=ro", uri=True,
                                             isolation_level=None, check_same_thread=False)
            except sqlite3.Error as exc:
                raise LedgerError(f"cannot read the ledger at {ledger.path}: {exc}") from None
        self._lock = threading.Lock()
        self._seen = self._head()[0]
        self.controls = read_controls(ledger, portfolio_id)

    def _head(self, since: int = 0) -> tuple[int, int, bool]:
        if self._conn is None:  # PostgreSQL (LedgerError if it can't be read)
            with self.ledger._reading() as conn:
                live, sealed, changed = conn.execute(self._SQL.replace("?", "%s"),
                                                     (since, self.portfolio_id)).fetchone()
            return max(int(live or 0), int(sealed)), int(sealed), bool(changed)
        try:
            with self._lock:
                live, sealed, changed = self._conn.execute(
                    self._SQL, (since, self.portfolio_id)).fetchone()
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot read the ledger at {self.ledger.path}: {exc}") from None
        return max(int(live or 0), int(sealed)), int(sealed), bool(changed)

    def current(self) -> Controls:
        """The controls now: read again only if an owner event for this portfolio came
        since the last look (or rows were sealed away before it could be seen). A
        ``LedgerError`` means they could not be read: the caller must not trade on."""
        head, sealed, changed = self._head(self._seen)
        if changed or sealed > self._seen:
            self.controls = read_controls(self.ledger, self.portfolio_id)
        self._seen = head
        return self.controls

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()


# -- the owner's side ---------------------------------------------------------------------
def _ledger_of(client: RunnerState) -> Ledger:
    ledger = client.changelog.ledger
    if ledger is None:
        raise ConfigurationError("policies and pauses live in the ledger, and this client has "
                                 "none: connect with a ledger (connect(ledger=PATH))")
    return ledger


def _now(client: RunnerState) -> datetime:
    """The time the client stamps its ledger rows with (its change log's clock)."""
    return client.changelog.clock()


def _consent_text(consent: str | None) -> str | None:
    if consent is not None and (not isinstance(consent, str) or not consent.strip()):
        raise InvalidInputError("consent", "is the owner's confirmation in words, a non-empty "
                                         "string")
    return consent


@dataclass(frozen=True)
class PortfolioFlows:
    """The flows of ``resources.agent_portfolios`` the owner's controls use, handed over by
    the resource (which imports this module, so this module cannot import it)."""

    find: Callable[[str], Flow[AgentPortfolio]]
    """The portfolio by id (``NotFoundError`` if there is none)."""
    revoke: Callable[..., Flow[None]]
    """Revoke a token: ``(portfolio_id, token_id, changelog, detail=)``, recorded."""


def set_policy_flow(client: RunnerState, flows: PortfolioFlows, portfolio_id: str,
                    policy: RiskPolicy, consent: str | None) -> Flow[Controls]:
    """Record a new policy version for the portfolio (which must exist: its virtual balance
    is recorded with it). Loosening without consent raises ``ConsentRequired`` and is
    recorded as refused."""
    if not isinstance(policy, RiskPolicy):
        raise InvalidInputError("policy", f"is a RiskPolicy, got {type(policy).__name__}")
    consent = _consent_text(consent)
    ledger = _ledger_of(client)
    rules.path_id(portfolio_id, "portfolio_id")
    portfolio = yield from flows.find(portfolio_id)
    now = _now(client)
    current = read_controls(ledger, portfolio_id)
    old = current.policy or RiskPolicy()
    loosens = old.loosened_by(policy)
    detail: dict[str, Any] = {"policy": policy.limits(), "changes": old.changes(policy),
                              "loosens": loosens, "virtual_balance_usd": portfolio.virtual_balance,
                              "portfolio_name": portfolio.name}
    if loosens and consent is None:
        events.record(ledger, events.POLICY_SET, now, portfolio_id=portfolio_id, phase="failed",
                      detail={**detail, "policy_version": current.version,
                              "reason": "ConsentRequired: loosening needs the owner's consent"})
        raise ConsentRequired(f"the new policy for {portfolio_id}", loosens)
    events.record(ledger, events.POLICY_SET, now, portfolio_id=portfolio_id,
                  detail={**detail, "policy_version": current.version + 1,
                          **({"consent": consent} if consent is not None else {})})
    return read_controls(ledger, portfolio_id)


def pause(client: RunnerState, portfolio_id: str, reason: str | None) -> None:
    """Pause the portfolio's agents: their sessions place no order until ``resume``."""
    rules.path_id(portfolio_id, "portfolio_id")
    events.record(_ledger_of(client), events.PAUSED, _now(client),
                  portfolio_id=portfolio_id, detail={"reason": reason or "paused by the owner"})


def resume(client: RunnerState, portfolio_id: str, reason: str | None) -> None:
    rules.path_id(portfolio_id, "portfolio_id")
    events.record(_ledger_of(client), events.RESUMED, _now(client),
                  portfolio_id=portfolio_id, detail={"reason": reason or "resumed by the owner"})


def stop_flow(client: RunnerState, flows: PortfolioFlows, portfolio_id: str,
              reason: str | None) -> Flow[list[str]]:
    """Pause (so the agents stop before their next order even if a revocation fails),
    then revoke every token of the portfolio; returns the ids revoked."""
    why = reason or "stopped by the owner"
    pause(client, portfolio_id, why)
    portfolio = yield from flows.find(portfolio_id)
    revoked = []
    for token in portfolio.tokens:
        yield from flows.revoke(portfolio_id, token.id, client.changelog,
                               detail={"stop_agent": why})
        revoked.append(token.id)
    return revoked


class PolicyControls:
    """The owner's risk controls on ``client.agent_portfolios`` (a mixin)."""

    _client: Runner
    _flows: ClassVar[PortfolioFlows]

    def set_policy(self, portfolio_id: str, policy: RiskPolicy, *,
                   consent: str | None = None) -> Controls:
        """Make ``policy`` the portfolio's policy (its next version). Loosening anything
        (a higher limit, a limit removed, an instrument or asset class allowed, one no
        longer denied, a later expiry, wider hours, no required stop loss) needs
        ``consent``, the owner's confirmation in words; tightening needs none."""
        return self._client.run_flow(set_policy_flow(self._client, self._flows, portfolio_id,
                                                     policy, consent))

    def policy(self, portfolio_id: str) -> RiskPolicy | None:
        """The portfolio's current policy (None: none set), from the ledger."""
        return read_controls(_ledger_of(self._client), portfolio_id).policy

    def controls(self, portfolio_id: str) -> Controls:
        """The portfolio's policy, its version and whether it is paused, from the ledger."""
        return read_controls(_ledger_of(self._client), portfolio_id)

    def pause(self, portfolio_id: str, *, reason: str | None = None) -> None:
        """Pause the portfolio's agents: every session refuses its next order."""
        pause(self._client, portfolio_id, reason)

    def resume(self, portfolio_id: str, *, reason: str | None = None) -> None:
        resume(self._client, portfolio_id, reason)

    def stop_agent(self, portfolio_id: str, *, reason: str | None = None) -> list[str]:
        """Pause, then revoke every token of the portfolio (one call); returns the ids of
        the tokens revoked. The agents' next request gets 401 and their sessions stop."""
        return self._client.run_flow(stop_flow(self._client, self._flows, portfolio_id, reason))


class AsyncPolicyControls:
    """The ``AsyncEtoroClient`` twin of ``PolicyControls``."""

    _client: AsyncRunner
    _flows: ClassVar[PortfolioFlows]

    async def set_policy(self, portfolio_id: str, policy: RiskPolicy, *,
                         consent: str | None = None) -> Controls:
        return await self._client.run_flow(set_policy_flow(self._client, self._flows,
                                                           portfolio_id, policy, consent))

    async def policy(self, portfolio_id: str) -> RiskPolicy | None:
        return read_controls(_ledger_of(self._client), portfolio_id).policy

    async def controls(self, portfolio_id: str) -> Controls:
        return read_controls(_ledger_of(self._client), portfolio_id)

    async def pause(self, portfolio_id: str, *, reason: str | None = None) -> None:
        pause(self._client, portfolio_id, reason)

    async def resume(self, portfolio_id: str, *, reason: str | None = None) -> None:
        resume(self._client, portfolio_id, reason)

    async def stop_agent(self, portfolio_id: str, *, reason: str | None = None) -> list[str]:
        return await self._client.run_flow(stop_flow(self._client, self._flows, portfolio_id, reason))
