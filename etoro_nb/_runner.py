"""The small public surface resources need from a client, as typing protocols, and the
drivers that run *work* (flows with blocking steps) on either client.

Resources (``etoro_nb.resources``) drive flows through a *runner* and never touch a
client's private members, as openai-python's resources call their client's public
methods. ``EtoroClient`` satisfies ``Runner`` and ``AsyncEtoroClient`` satisfies ``AsyncRunner``;
the resources import only these protocols, so ``etoro_nb.resources`` imports nothing
from ``etoro_nb.client`` (the dependency goes one way: client -> resources -> runner).

*Work* is a flow that may also yield ``Blocking`` steps (a ledger read or write) and
``Via`` steps (a flow another client runs, such as an agent's read of its own account).
``run(client, work)`` drives it: with an ``EtoroClient`` it returns the result, each step
run in the calling thread; with an ``AsyncEtoroClient`` it returns an awaitable of it, each
call awaited and each blocking step run in a worker thread (``asyncio.to_thread``), so the
event loop never waits on SQLite. ``typing.overload`` tells mypy which. This is how the
frames loaders, ``AgentSession`` and ``Rebalancer`` serve both clients with one body.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, overload

if TYPE_CHECKING:
    from etoro_nb._base import Answer, Call, Flow
    from etoro_nb.config import Environment
    from etoro_nb.resources.changes import ChangeLog

T = TypeVar("T")


class RunnerState(Protocol):
    """What both runners expose besides running a flow."""

    @property
    def environment(self) -> Environment:
        """``"sandbox"`` or ``"live"``: a flow reads the server's clock only on a sandbox."""
        ...

    @property
    def changelog(self) -> ChangeLog:
        """Where delegation changes are recorded (an intent before, its outcomes after)."""
        ...

    @property
    def scope_cache(self) -> list[str]:
        """The scope names this key may grant, filled once by the first flow needing them
        (shared, mutable on purpose: later flows reuse it)."""
        ...

    def ensure_real_allowed(self, real_money: bool = True) -> None:
        """Raise ``RealMoneyNotAllowedError`` if a real-money call may not be made."""
        ...


class Runner(RunnerState, Protocol):
    """A synchronous runner (``EtoroClient``)."""

    def run_flow(self, flow: Flow[T]) -> T:
        """Drive ``flow`` to its result: send each call it yields, with retries, quota,
        ledger and the real-money guard, and hand back each answer (or error)."""
        ...


class AsyncRunner(RunnerState, Protocol):
    """An asyncio runner (``AsyncEtoroClient``)."""

    async def run_flow(self, flow: Flow[T]) -> T:
        """``Runner.run_flow``, awaited."""
        ...


@dataclass(frozen=True)
class Blocking(Generic[T]):
    """A step of work that blocks on something other than the network (SQLite)."""

    fn: Callable[[], T]


@dataclass(frozen=True)
class Via(Generic[T]):
    """A flow that ``runner`` runs (with its own key), not the client driving the work;
    it must be of the same kind (sync or async) as that client."""

    runner: Runner | AsyncRunner
    flow: Flow[T]


Work = Generator["Call | Blocking[Any] | Via[Any]", Any, T]
"""A flow that may also yield ``Blocking`` and ``Via`` steps; each step is answered with
its result (an ``Answer`` for a ``Call``), or has its error thrown in."""


def blocking(fn: Callable[[], T]) -> Generator[Blocking[T], Any, T]:
    """``result = yield from blocking(fn)`` inside work: ``fn()``, off the event loop."""
    result: T = yield Blocking(fn)
    return result


def via(runner: Runner | AsyncRunner, flow: Flow[T]) -> Generator[Via[T], Any, T]:
    """``result = yield from via(agent, flow)``: ``flow`` run by another client."""
    result: T = yield Via(runner, flow)
    return result


def is_async(client: Runner | AsyncRunner) -> bool:
    """Whether ``client`` runs flows on an event loop (its ``run_flow`` is a coroutine)."""
    return inspect.iscoroutinefunction(client.run_flow)


def _one(call: Call) -> Flow[Answer]:
    answer: Answer = yield call
    return answer


class _Feed(Generic[T]):
    """Hands a piece of work each step's outcome (its result, or its error thrown in)."""

    def __init__(self, work: Work[T]) -> None:
        self._work = work
        self._send: Any = None
        self._error: Exception | None = None
        self.result: T

    def step(self) -> Call | Blocking[Any] | Via[Any] | None:
        """The work's next step, or None once it has its result."""
        try:
            error, work = self._error, self._work
            step = work.throw(error) if error is not None else work.send(self._send)
        except StopIteration as stop:
            self.result = stop.value
            return None
        self._send, self._error = None, None
        return step

    def answer(self, value: Any) -> None:
        self._send = value

    def fail(self, error: Exception) -> None:
        # Thrown in after the except block that caught it: no error carries another as context.
        self._error = error


def drive(client: Runner, work: Work[T]) -> T:
    """Run ``work`` to its result on a synchronous client, in this thread."""
    from etoro_nb._base import Call

    feed = _Feed(work)
    while (step := feed.step()) is not None:
        try:
            if isinstance(step, Call):
                feed.answer(client.run_flow(_one(step)))
            elif isinstance(step, Blocking):
                feed.answer(step.fn())
            else:
                feed.answer(_runner_of(step, False).run_flow(step.flow))
        except Exception as exc:  # handed to the work, which decides
            feed.fail(exc)
    return feed.result


async def adrive(client: AsyncRunner, work: Work[T]) -> T:
    """Run ``work`` to its result on an asyncio client: calls awaited, blocking steps in a
    worker thread."""
    import asyncio

    from etoro_nb._base import Call

    feed = _Feed(work)
    while (step := feed.step()) is not None:
        try:
            if isinstance(step, Call):
                feed.answer(await client.run_flow(_one(step)))
            elif isinstance(step, Blocking):
                feed.answer(await asyncio.to_thread(step.fn))
            else:
                feed.answer(await _runner_of(step, True).run_flow(step.flow))
        except Exception as exc:
            feed.fail(exc)
    return feed.result


def _runner_of(step: Via[Any], on_loop: bool) -> Any:
    if is_async(step.runner) != on_loop:
        from etoro_nb.errors import InvalidInputError

        want = "asyncio (AsyncEtoroClient)" if on_loop else "synchronous (EtoroClient)"
        raise InvalidInputError("client", f"every client of one call must be {want}, like the "
                                          "one that makes it")
    return step.runner


@overload
def run(client: Runner, work: Work[T]) -> T: ...
@overload
def run(client: AsyncRunner, work: Work[T]) -> Awaitable[T]: ...
def run(client: Runner | AsyncRunner, work: Work[T]) -> T | Awaitable[T]:
    """Drive ``work`` with ``client``: the result from an ``EtoroClient``, an awaitable of
    it from an ``AsyncEtoroClient`` (nothing runs until it is awaited)."""
    if is_async(client):
        return adrive(client, work)  # type: ignore[arg-type]
    return drive(client, work)  # type: ignore[arg-type]


__all__ = ["AsyncRunner", "Blocking", "Runner", "RunnerState", "Via", "Work", "adrive", "blocking",
           "drive", "is_async", "run", "via"]
