"""``AgentSession``: the way an agent trades under a policy.

Before an order leaves, the session checks it (``checks``, in that order) against its own
policy and the owner's (``controls``, from the ledger, seen before every order), and
refuses locally with ``PolicyViolation``: nothing is sent, and the refusal is recorded.
Closes and cancels are held only to the scope, pause and expiry checks.

Reads. The session keeps its own book (``book``) from its orders' answers and reads the
account only: at start (its scopes, the account, and the day's closed trades), after an
order whose outcome is unknown, every ``reconcile_every_orders`` orders or
``reconcile_every_seconds`` seconds (the tightest policy's), when a new UTC day begins,
and when a limit on the book would refuse but a read could show more room. The agent's
own ``portfolio()`` / ``pnl()`` reads refresh the book too.

Kill switch. A 401 or 403 from the server (the owner revoked the token, or narrowed its
scopes or whitelist) stops the session for good: no retry, no further request (orders
waiting for the session's lock are abandoned), a final ``session_stopped`` event with
the reason, and ``SessionStopped`` from then on.

One body, two clients. ``SessionCore`` holds the logic, each operation written once as
work (``etoro_nb._runner``): the resources' flows for requests, ``blocking`` steps for the
ledger (the owner's controls, the day's counters, the session's events). ``AgentSession``
drives that work on an ``EtoroClient`` in the calling thread; ``AsyncAgentSession``
(``agent.async_session``) awaits it on an ``AsyncEtoroClient``, the ledger steps in a
worker thread, so an event loop never waits on SQLite.
"""

from __future__ import annotations

import math
import threading
import uuid
import weakref
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from etoro_nb import rules
from etoro_nb._base import AMBIGUOUS  # the order may or may not have been placed
from etoro_nb._runner import Work, blocking, drive
from etoro_nb.agent import checks, events
from etoro_nb.agent.book import Book, BookView, Holding
from etoro_nb.agent.checks import Instrument, Order
from etoro_nb.agent.controls import Controls, ControlWatcher
from etoro_nb.agent.policy import RiskPolicy, instrument_key
from etoro_nb.agent.room import Room, amount_room
from etoro_nb.errors import (
    APIError,
    AuthenticationError,
    ConfigurationError,
    EtoroError,
    InvalidInputError,
    PermissionDeniedError,
    PolicyViolation,
    SessionStopped,
)
from etoro_nb.models import ClosedOrder, OrderInfo, OrderPlaced, Portfolio, Trade
from etoro_nb.operations import catalogue, trade_operations
from etoro_nb.resources.trading import (
    PAGE_SIZE,
    Paths,
    cancel_flow,
    close_flow,
    history_flow,
    lookup_flow,
    open_flow,
    order_body,
    portfolio_flow,
)
from etoro_nb.scopes import Access, scope_for

if TYPE_CHECKING:
    from etoro_nb._base import Flow
    from etoro_nb.client_api import AnyClient, ClientAPI
    from etoro_nb.ledger import Ledger

T = TypeVar("T")
Rule = Callable[[RiskPolicy, BookView], PolicyViolation | None]
Account = Literal["real", "demo"]
INSTRUMENT_FIELDS = ("instrumentId", "symbol", "internalAssetClassId", "internalAssetClassName")


class SessionCore:
    """What ``AgentSession`` and ``AsyncAgentSession`` share: state, checks, book and the
    work of every operation. Making one reads the ledger (the token's portfolio, the
    owner's controls) but sends nothing; ``_start()`` is the first work it runs."""

    def __init__(self, agent: AnyClient, policy: RiskPolicy | None = None, *,
                 account: Account = "demo", portfolio_id: str | None = None,
                 virtual_balance_usd: float | None = None) -> None:
        if account not in ("real", "demo"):
            raise InvalidInputError("account", f"is 'real' or 'demo', got {account!r}")
        if account == "real":  # a live real account needs the opt-in: say so first
            agent.ensure_real_allowed()
        if policy is not None and not isinstance(policy, RiskPolicy):
            raise InvalidInputError("policy", f"is a RiskPolicy or None, got {type(policy).__name__}")
        if virtual_balance_usd is not None:
            rules.positive(virtual_balance_usd, "virtual_balance_usd")
        if agent.principal != "agent":
            raise ConfigurationError("an AgentSession trades with an agent's client, made with "
                                     "client.as_agent(token): this one acts as the owner")
        self.account: Account = account
        self.policy = policy
        self._agent = agent
        self._paths = Paths(account)
        self._ledger: Ledger | None = agent.ledger
        recorder = agent.recorder
        self._fingerprint = recorder.fingerprint if recorder is not None else None
        # The client's application (an MCP client's "mcp:<name>"), named on the session's events.
        self._application = recorder.application if recorder is not None else None
        known = (self._ledger.token_for(self._fingerprint)
                 if self._ledger is not None and self._fingerprint else None)
        self.token_id = known[0] if known else None
        self.portfolio_id = portfolio_id or (known[1] if known else None)
        if self._ledger is not None and self.portfolio_id is None:
            raise ConfigurationError(
                "the ledger does not know this token's agent portfolio (it was not minted "
                "through it), so the owner's policy and pause could not reach this session: "
                "give portfolio_id=")
        self._watcher = (ControlWatcher(self._ledger, self.portfolio_id)
                         if self._ledger is not None and self.portfolio_id else None)
        self._virtual_balance = virtual_balance_usd
        self._book = Book()
        self._instruments: dict[int | str, Instrument] = {}
        self._scopes: frozenset[str] = frozenset()
        self._stopped: SessionStopped | None = None
        self._started = False
        self._needs_read = True
        self._base_equity: float | None = None
        self._booklog = events.BookLog(self._ledger, self.portfolio_id, self.token_id,
                                       self._application)
        # A session dropped without close() still writes its last batch (at exit at latest).
        weakref.finalize(self, self._booklog.flush)
        if self._watcher is not None:  # and lets go of its connection to the ledger file
            weakref.finalize(self, self._watcher.close)
        self._tightest_for: tuple[Any, ...] | None = None
        self._tightest_limits: tuple[float | None, float | None] = (None, None)

    def __repr__(self) -> str:
        if not hasattr(self, "_stopped"):  # a failed __init__, in a traceback's locals
            return f"{type(self).__name__}(not made)"
        state = "stopped" if self._stopped else "running"
        return (f"{type(self).__name__}(account={self.account!r}, "
                f"portfolio_id={self.portfolio_id!r}, {state})")

    # -- state -----------------------------------------------------------------------------
    @property
    def mode(self) -> Account:
        """The account, named as ``client.trading(mode)`` names it."""
        return self.account

    @property
    def stopped(self) -> SessionStopped | None:
        """Why the session stopped (the error its calls raise), or None while it runs."""
        return self._stopped

    @property
    def scopes(self) -> frozenset[str]:
        """The token's scopes, as ``/api/v1/me`` gave them at start (or after a 403)."""
        return self._scopes

    @property
    def controls(self) -> Controls | None:
        """The owner's controls as last seen (None without a ledger)."""
        return None if self._watcher is None else self._watcher.controls

    def policies(self) -> list[tuple[str, RiskPolicy]]:
        """The policies every order is held to: the owner's (from the ledger, as last
        seen) and the session's own, each labelled."""
        out = []
        owner = self.controls
        if owner is not None and owner.policy is not None:
            out.append(("owner", owner.policy))
        if self.policy is not None:
            out.append(("session", self.policy))
        return out

    @property
    def book(self) -> BookView:
        """The session's book figures now (no request)."""
        return self._book.view(self._now())

    def holdings(self) -> tuple[Holding, ...]:
        """What the book holds now: positions (by id once a read showed them) and orders."""
        return tuple(self._book.holdings.values())

    def now(self) -> datetime:
        """The clock the session (and the ledger) runs on: the client's."""
        return self._now()

    def _now(self) -> datetime:
        return self._agent.recorded_now()

    def _alive(self, op: str) -> None:
        """Refuse at once if the session has stopped (also for calls that were waiting for
        its lock when it stopped: queued work is abandoned)."""
        if self._stopped is not None:
            raise SessionStopped(self._stopped.reason, operation=op, cause=self._stopped.cause)

    def _failed_start(self) -> None:
        if self._watcher is not None:
            self._watcher.close()

    # -- starting, reading, reconciling ----------------------------------------------------
    def _start(self) -> Work[None]:
        from etoro_nb.client import me_flow

        me = yield from self._guarded("getAuthenticatedUserProfile", me_flow())
        self._scopes = frozenset(me.scopes)
        read = self._scope("read")
        if read not in self._scopes:
            raise PolicyViolation("scope", sorted(self._scopes), read, figures=False, message=(
                f"an agent session reads its account to keep its book, and the token lacks "
                f"{read}"))
        now = self._now()
        self._book.roll(now)
        if self._ledger is not None and self._fingerprint is not None:
            self._book.count_orders((yield from blocking(lambda: self._ledger_orders(now))))
        yield from self._reconcile(now, "start")
        self._base_equity = self._book.equity_at_cost
        self._started = True

    def _ledger_orders(self, now: datetime) -> list[datetime]:
        """This token's orders on this account since the earlier of the day's start and an
        hour ago, from the ledger (so a restart keeps the day's counters). As in the book, an
        order whose outcome is unknown counts as placed: only one whose last attempt the
        server answered with a 4xx was not (a process killed after sending leaves an intent
        with no outcome, and the server may well have placed it)."""
        import polars as pl

        from etoro_nb.frames.ledger import usage

        assert self._ledger is not None
        demo = self.account == "demo"
        ops = sorted(op for op in trade_operations()
                     if ("/demo/" in catalogue()[op].route) == demo)
        since = min(now.replace(hour=0, minute=0, second=0, microsecond=0),
                    now - timedelta(hours=1))
        frame = usage(self._ledger, since=since, lazy=True)
        assert isinstance(frame, pl.LazyFrame)
        outcome = pl.col("phase") == "outcome"
        refused = ((outcome.sum() >= (pl.col("phase") == "intent").sum())
                   & pl.col("status").filter(outcome).sort_by(pl.col("seq").filter(outcome))
                   .last().is_between(400, 499).fill_null(False))
        placed = (frame.filter(pl.col("token_fingerprint") == self._fingerprint,
                               pl.col("operation_id").is_in(ops))
                  .group_by("request_id").agg(pl.col("ts").min(), refused=refused)
                  .filter(~pl.col("refused")).collect())
        return sorted(placed["ts"].to_list())

    def _reconcile(self, now: datetime, why: str, portfolio: Portfolio | None = None
                   ) -> Work[None]:
        """One read of the account (``portfolio`` if the agent just read it), and of the
        day's closed trades when the day's realised P&L is not known yet."""
        if portfolio is None:
            portfolio = yield from self._guarded(self._paths.ops["portfolio"],
                                                 portfolio_flow(self._paths, pnl=False))
        self._book.roll(now)
        realized = None
        if self._book.realized_today_usd is None:
            trades = yield from self._guarded(self._paths.ops["history"], history_flow(
                self._paths, now.date(), PAGE_SIZE, None))
            realized = _realized_on(trades, now.date())
        self._book.reconcile(portfolio, now, realized)
        self._needs_read = False
        yield from self._record(events.RECONCILED, now, {"reason": why})

    def _reconcile_asked(self) -> Work[BookView]:
        yield from self._reconcile(self._now(), "asked")
        return self._book.view(self._now())

    def _due(self, now: datetime) -> str | None:
        """Why the book should be read before this order, if it should."""
        if self._needs_read:
            return "after an unknown outcome"
        if self._book.read_at is None or self._book.read_at.date() != now.date():
            return "a new UTC day"
        for _, policy in self.policies():
            every = policy.reconcile_every_orders
            if every is not None and self._book.orders_since_read >= every:
                return f"every {every} orders"
            seconds = policy.reconcile_every_seconds
            if seconds is not None and (now - self._book.read_at).total_seconds() >= seconds:
                return f"every {seconds:g} seconds"
        return None

    # -- reads the agent makes -------------------------------------------------------------
    def _read_account(self, op: str) -> Work[Portfolio]:
        self._require(self._scope("read"), op)
        answer = yield from self._guarded(self._paths.ops[op],
                                          portfolio_flow(self._paths, pnl=op == "pnl"))
        yield from self._reconcile(self._now(), f"the agent read {op}", answer)
        return answer

    def _history(self, since: date | datetime) -> Work[list[Trade]]:
        self._require(self._scope("read"), "history")
        day = since.date() if isinstance(since, datetime) else since
        return (yield from self._guarded(self._paths.ops["history"], history_flow(
            self._paths, day, PAGE_SIZE, None)))

    def _lookup(self, order_id: int | None, reference_id: str | None) -> Work[OrderInfo]:
        self._require(self._scope("read"), "lookup")
        return (yield from self._guarded(self._paths.ops["lookup"], lookup_flow(
            self._paths, order_id, reference_id)))

    # -- orders ----------------------------------------------------------------------------
    def _open(self, instrument: int | str, side: str, amount: float, leverage: int,
              stop_loss: float | None, take_profit: float | None, trailing_stop: bool,
              trigger_rate: float | None, request_id: str | None
              ) -> tuple[str, Work[OrderPlaced]]:
        """The operation and the work of an opening order; bad input raises here, first."""
        body = order_body(instrument, side, amount, None, leverage, stop_loss, take_profit,
                          trailing_stop, trigger_rate)
        amount = body["amount"] = round(float(amount), 2)
        op = self._paths.ops["open"]
        rid = request_id or str(uuid.uuid4())

        def work() -> Work[OrderPlaced]:
            now = self._now()
            order = yield from self._check(Order("open", None, amount, leverage, stop_loss),
                                           instrument, op, rid, now)
            known = order.instrument.instrument_id if order.instrument else None
            holding = Holding(instrument_key(instrument) if known is None else known,
                              side == "buy", amount, leverage,
                              pending=trigger_rate is not None,
                              triggers=stop_loss is not None or take_profit is not None)
            self._agent.ensure_real_allowed(self.account == "real")
            try:
                placed = yield from self._guarded(op, open_flow(self._paths, body, rid))
            except AMBIGUOUS:  # it may have been placed: count it, and read before the next
                self._book.placed(now)
                self._book.opened(None, holding)
                self._needs_read = True
                yield from self._booked(now, op, rid, {"outcome": "unknown",
                                                       **_order_detail(order)})
                raise
            self._book.placed(now)
            self._book.opened(placed.order_id, holding)
            yield from self._booked(now, op, rid, {"order_id": placed.order_id,
                                                   **_order_detail(order)})
            return placed
        return op, work()

    def _close(self, position_id: int, instrument_id: int, units: float | None,
               request_id: str | None) -> tuple[str, Work[ClosedOrder]]:
        rules.path_id(position_id, "position_id")
        if units is not None:
            rules.positive(units, "units")
        op = self._paths.ops["close"]
        rid = request_id or str(uuid.uuid4())

        def work() -> Work[ClosedOrder]:
            now = self._now()
            yield from self._check(Order("close"), None, op, rid, now)
            self._agent.ensure_real_allowed(self.account == "real")
            try:
                closed = yield from self._guarded(op, close_flow(
                    self._paths, position_id, instrument_id, units, rid))
            except AMBIGUOUS:
                self._book.placed(now)
                self._unsure()
                raise
            except APIError as exc:
                if exc.ambiguous_before:  # refused now, but a lost attempt may have closed it
                    self._unsure()
                raise
            self._book.placed(now)
            released = self._book.closed(position_id, units)
            yield from self._booked(now, op, rid, {"position_id": position_id, "units": units,
                                                   "released_usd": released})
            return closed
        return op, work()

    def _cancel(self, order_id: int) -> tuple[str, Work[None]]:
        rules.path_id(order_id, "order_id")
        op = self._paths.ops["cancel"]

        def work() -> Work[None]:
            now = self._now()
            yield from self._check(Order("cancel"), None, op, str(uuid.uuid4()), now)
            self._agent.ensure_real_allowed(self.account == "real")
            try:
                yield from self._guarded(op, cancel_flow(self._paths, order_id))
            except AMBIGUOUS:
                self._unsure()
                raise
            except APIError as exc:
                if exc.ambiguous_before:
                    self._unsure()
                raise
            self._book.cancelled(order_id)
            yield from self._booked(now, op, None, {"order_id": order_id})
        return op, work()

    def _unsure(self) -> None:
        """A close or cancel may or may not have happened: read before the next order."""
        self._book.unplaced = True
        self._needs_read = True

    def _room(self, instrument: int | str | None, leverage: int, stop_loss: bool = True
              ) -> Work[Room]:
        """``room``: the rules that hold closes too, the limits on the amount, then every
        other rule of an opening order (nothing recorded: it is a question, not an order)."""
        now = self._now()
        due = self._due(now)  # the read an order would make, before the room is counted
        if due is not None:
            yield from self._reconcile(now, due)
        try:
            yield from self._check(Order("close"), None, "room", None, now, record=False)
        except PolicyViolation as held:
            return _held(held, closes=False)
        room = amount_room(self.policies(), self._book.view(now), self._base(), leverage)
        if room.blocked:
            return room
        probe = Order("open", None, 0.0 if math.isinf(room.usd) else room.usd, leverage,
                      stop_loss=0.0 if stop_loss else None)
        try:
            yield from self._check(probe, instrument, "room", None, now, record=False)
        except PolicyViolation as held:
            return _held(held)
        return room

    # -- checking --------------------------------------------------------------------------
    def _check(self, order: Order, instrument: int | str | None, op: str, rid: str | None,
               now: datetime, *, record: bool = True) -> Work[Order]:
        """Every rule, in order; an opening order comes back with its instrument known.
        Raises the first ``PolicyViolation`` (recorded unless ``record`` is false)."""
        def refuse(violation: PolicyViolation, source: str | None = None) -> Work[PolicyViolation]:
            violation.operation = op
            if record:
                detail = {"rule": violation.rule, "limit": violation.limit,
                          "attempted": violation.attempted, "operation": op,
                          "policy": source, **_order_detail(order),
                          **self._figures(now)}
                controls = self.controls
                if source == "owner" and controls is not None:
                    detail["policy_version"] = controls.version
                yield from self._record(events.REFUSED, now, detail, request_id=rid)
            return violation

        violation = checks.scope(self._scopes, self._scope("write"))
        if violation is not None:
            raise (yield from refuse(violation))
        watcher = self._watcher
        controls = None if watcher is None else (yield from blocking(watcher.current))
        if controls is not None and controls.paused:
            raise (yield from refuse(PolicyViolation(
                "paused", controls.reason, op, figures=False,
                message=f"the owner paused this agent portfolio ({controls.reason})"), "owner"))
        for source, policy in self.policies():
            violation = checks.expiry(policy, now)
            if violation is not None:
                raise (yield from refuse(violation, source))
        due = self._due(now)
        if due is not None:
            yield from self._reconcile(now, due)
        if order.kind != "open":
            return order
        policies = self.policies()
        if instrument is not None:
            listed = any(p.allowed_instruments is not None or p.denied_instruments is not None
                         or p.allowed_asset_classes is not None for _, p in policies)
            known = (yield from self._instrument(instrument)) if listed else _named(instrument)
            order = Order(order.kind, known, order.amount_usd, order.leverage, order.stop_loss)
        view = self._book.view(now)
        groups: list[tuple[Rule, Callable[[], bool]]] = [
            (lambda p, v: checks.instruments(p, order), _never),
            (lambda p, v: checks.size(p, order), _never),
            (lambda p, v: checks.book(p, order, v, self._base()), self._book.may_overstate),
            (lambda p, v: checks.pace(p, v), _never),
            (lambda p, v: checks.loss(p, v), self._book.loss_uncertain),
            (lambda p, v: checks.timing(p, order, now), _never),
        ]
        for rule, a_read_may_help in groups:
            for source, policy in policies:
                violation = rule(policy, view)
                if violation is not None and a_read_may_help():
                    yield from self._reconcile(now, f"{violation.rule} would refuse")
                    view = self._book.view(now)
                    violation = rule(policy, view)
                if violation is not None:
                    raise (yield from refuse(violation, source))
        return order

    def _instrument(self, instrument: int | str) -> Work[Instrument]:
        """The instrument's id, symbol and asset class (one market-data read the first time
        it is named; unknown to the market: only what was given)."""
        from etoro_nb.resources.market import instrument_flow

        key = instrument_key(instrument)
        if key not in self._instruments:
            item = yield from self._guarded("searchForInstruments",
                                            instrument_flow(instrument, INSTRUMENT_FIELDS))
            found = _named(instrument)
            if item is not None:
                found = Instrument(item.get("instrumentId"), item.get("symbol"),
                                   item.get("internalAssetClassId"),
                                   item.get("internalAssetClassName"))
                for k in found.ids():
                    self._instruments[k] = found
            self._instruments[key] = found
        return self._instruments[key]

    def _base(self) -> float | None:
        """What exposure shares are of: the owner's recorded virtual balance, else the one
        given, else the account's value at cost at start."""
        controls = self.controls
        if controls is not None and controls.virtual_balance_usd:
            return controls.virtual_balance_usd
        return self._virtual_balance or self._base_equity

    def _figures(self, now: datetime) -> dict[str, Any]:
        """The book's figures and the tightest limits on them, for the ledger."""
        view = self._book.view(now)
        exposure_limit, loss_limit = self._tightest()
        return {"gross_exposure_usd": view.gross_exposure_usd,
                "exposure_limit_usd": exposure_limit,
                "realized_pnl_today_usd": view.worst_realized_pnl_today_usd,
                "loss_limit_usd": loss_limit, "open_positions": view.open_positions,
                "orders_today": view.orders_today}

    def _tightest(self) -> tuple[float | None, float | None]:
        """The tightest gross exposure limit (USD, shares of the base included) and daily
        loss limit in effect; worked out again only when the policies or the base change."""
        key = (self.controls, self.policy, self._base())
        if self._tightest_for is None or any(a is not b for a, b in zip(key, self._tightest_for,
                                                                        strict=True)):
            base = key[2]
            policies = [p for _, p in self.policies()]
            exposure = [p.max_gross_exposure_usd for p in policies]
            exposure += [p.max_gross_exposure_share * base for p in policies
                         if p.max_gross_exposure_share is not None and base]
            losses = [p.max_daily_loss_usd for p in policies]
            self._tightest_for = key
            self._tightest_limits = (min((x for x in exposure if x is not None), default=None),
                                     min((x for x in losses if x is not None), default=None))
        return self._tightest_limits

    def _scope(self, access: Access) -> str:
        return scope_for(self.account, access)

    def _require(self, scope: str, op: str) -> None:
        violation = checks.scope(self._scopes, scope)
        if violation is not None:
            violation.operation = op
            raise violation

    # -- the kill switch -------------------------------------------------------------------
    def _guarded(self, op: str, flow: Flow[T]) -> Work[T]:
        """Make a request; the server refusing the token (401/403) stops the session."""
        try:
            return (yield from flow)
        except (AuthenticationError, PermissionDeniedError) as exc:
            raise (yield from self._kill(exc, op)) from exc

    def _kill(self, error: APIError, op: str) -> Work[SessionStopped]:
        from etoro_nb.client import me_flow

        if isinstance(error, AuthenticationError):
            reason = (f"the server refused the token ({error.status} "
                      f"{error.error_code or 'no errorCode'}): revoked or expired")
        else:
            reason = (f"the server refused {op} ({error.status} "
                      f"{error.error_code or 'no errorCode'}): the token's scopes or IP "
                      "whitelist were narrowed")
            try:  # learn what the token may still do, for the record
                self._scopes = frozenset((yield from me_flow()).scopes)
                reason += f"; it now has {', '.join(sorted(self._scopes)) or 'no scope'}"
            except EtoroError:
                pass
        yield from self._stop(reason, op, error)
        assert self._stopped is not None
        return self._stopped

    def _stop(self, reason: str, op: str | None, error: APIError | None = None) -> Work[None]:
        if self._stopped is not None:
            return
        self._stopped = SessionStopped(reason, operation=op, cause=error)
        detail: dict[str, Any] = {"reason": reason, "operation": op, **self._figures(self._now())}
        if error is not None:
            detail.update(status=error.status, error_code=error.error_code,
                          failed_request_id=error.request_id)
        yield from self._record(events.STOPPED, self._now(), detail)
        if self._watcher is not None:
            self._watcher.close()  # no order will look again

    # -- recording -------------------------------------------------------------------------
    def _record(self, kind: str, at: datetime, detail: dict[str, Any],
                request_id: str | None = None) -> Work[None]:
        if kind != events.STOPPED and kind != events.REFUSED:
            detail = {**detail, **self._figures(at)}
        if self._application is not None:
            detail = {**detail, "application": self._application}

        def write() -> None:
            self._booklog.flush()  # the orders before it come first in the ledger too
            events.record_after(self._ledger, kind, at, portfolio_id=self.portfolio_id,
                                token_id=self.token_id, request_id=request_id, detail=detail)
        if self._ledger is not None:
            yield from blocking(write)

    def _booked(self, at: datetime, op: str, rid: str | None, detail: dict[str, Any]
                ) -> Work[None]:
        entry = {"operation": op, **detail, **self._figures(at)}
        if self._ledger is not None:
            yield from blocking(lambda: self._booklog.add(at, rid, entry))


class AgentSession(SessionCore):
    """An agent's trading, bounded by ``policy`` and by its owner's policy and pause.

    ``agent`` is the agent's client (``client.as_agent(token)``); ``account`` the account
    it trades (``"demo"`` unless told otherwise). The owner's controls are found by the
    token's portfolio, which the ledger knows when the token was minted through it; else
    give ``portfolio_id``. ``virtual_balance_usd`` is the base of exposure shares when the
    owner's policy does not carry one (else the account's value at cost at start).

    Use it as a context manager, or call ``close()``. Thread-safe: orders are serialised.
    With an ``AsyncEtoroClient``, use ``AsyncAgentSession`` (the same methods, awaited).
    """

    _agent: ClientAPI

    def __init__(self, agent: ClientAPI, policy: RiskPolicy | None = None, *,
                 account: Account = "demo", portfolio_id: str | None = None,
                 virtual_balance_usd: float | None = None) -> None:
        super().__init__(agent, policy, account=account, portfolio_id=portfolio_id,
                         virtual_balance_usd=virtual_balance_usd)
        self._lock = threading.Lock()
        with self._lock:
            try:
                drive(agent, self._start())
            except BaseException:
                self._failed_start()
                raise

    def __enter__(self) -> AgentSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, op: str, work: Work[T]) -> T:
        with self._lock:
            self._alive(op)
            return drive(self._agent, work)

    def reconcile(self) -> BookView:
        """Read the account now and take the book from it."""
        return self._run("reconcile", self._reconcile_asked())

    def portfolio(self) -> Portfolio:
        """The account (one read), which also refreshes the book."""
        return self._run("portfolio", self._read_account("portfolio"))

    def pnl(self) -> Portfolio:
        """The account with unrealised P&L (one read), which also refreshes the book."""
        return self._run("pnl", self._read_account("pnl"))

    def history(self, since: date | datetime) -> list[Trade]:
        return self._run("history", self._history(since))

    def lookup_order(self, order_id: int | None = None, *,
                     reference_id: str | None = None) -> OrderInfo:
        return self._run("lookup", self._lookup(order_id, reference_id))

    def open_order(self, instrument: int | str, side: str = "buy", *, amount: float,
                   leverage: int = 1, stop_loss: float | None = None,
                   take_profit: float | None = None, trailing_stop: bool = False,
                   trigger_rate: float | None = None,
                   request_id: str | None = None) -> OrderPlaced:
        """Open a position of ``amount`` USD (the margin; exposure is amount x leverage),
        after every check. ``trigger_rate`` makes it a pending market-if-touched order
        (counted in the book from now on). Raises ``PolicyViolation`` with nothing sent."""
        return self._run(*self._open(instrument, side, amount, leverage, stop_loss, take_profit,
                                     trailing_stop, trigger_rate, request_id))

    def close_position(self, position_id: int, instrument_id: int, *,
                       units: float | None = None, request_id: str | None = None) -> ClosedOrder:
        """Close a position, or ``units`` of it: held only to scope, pause and expiry."""
        return self._run(*self._close(position_id, instrument_id, units, request_id))

    def cancel_order(self, order_id: int) -> None:
        """Cancel a pending order: held only to scope, pause and expiry."""
        self._run(*self._cancel(order_id))

    def room_usd(self, instrument: int | str | None = None, *, leverage: int = 1) -> float:
        """The largest amount (USD) an opening order may take now, 0 if none may open:
        for sizing orders to the policy instead of being refused. With ``instrument``,
        its rules count too. May read (as an order would)."""
        return self._run("room", self._room(instrument, leverage)).usd

    def room(self, instrument: int | str | None = None, *, leverage: int = 1,
             stop_loss: bool = True) -> Room:
        """``room_usd`` with the rule that sets it (``Room``); ``stop_loss=False``: the
        order will carry none (a policy that requires one then allows no order)."""
        return self._run("room", self._room(instrument, leverage, stop_loss))

    def stop(self, reason: str = "stopped by the agent") -> None:
        """Stop for good (no request after this); records ``session_stopped``."""
        with self._lock:
            drive(self._agent, self._stop(reason, None))

    def close(self) -> None:
        """End the session (``stop`` with reason ``closed``); the client stays open."""
        self.stop("closed")


def _never() -> bool:
    return False


def _held(violation: PolicyViolation, *, closes: bool = True) -> Room:
    """No room: the rule that would refuse an opening order (and closes, unless ``closes``)."""
    return Room(0.0, violation.rule, violation.limit, None, closes, violation.detail)


def _named(instrument: int | str) -> Instrument:
    """An instrument known only by what the order named."""
    if isinstance(instrument, int):
        return Instrument(instrument, None)
    return Instrument(None, instrument)


def _order_detail(order: Order) -> dict[str, Any]:
    if order.kind != "open":
        return {}
    inst = order.instrument
    return {"instrument_id": inst.instrument_id if inst else None,
            "symbol": inst.symbol if inst else None, "amount_usd": order.amount_usd,
            "leverage": order.leverage}


def _realized_on(trades: list[Trade], day: date) -> float:
    """Net realised P&L of the trades closed on ``day`` (UTC)."""
    return round(float(sum(t.net_profit for t in trades if t.closed_at.date() == day)), 2)
