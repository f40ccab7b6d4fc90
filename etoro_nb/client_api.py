"""``ClientAPI`` / ``AsyncClientAPI``: the client surface the frames loaders, ``AgentSession``
and ``Rebalancer`` use, as typing protocols, so they depend on what they call rather than on
the client classes (and ``etoro_nb.frames`` imports nothing of ``etoro_nb.client``).

Both are a runner (``etoro_nb._runner``) with the client's state: they differ only in
``run_flow`` (a result, or an awaitable of it). Code that serves both takes
``AnyClient`` and is typed with ``typing.overload``: given an ``EtoroClient`` a loader
returns a frame, given an ``AsyncEtoroClient`` an awaitable of that frame (see
``frames.api``); one body of logic, written as work that ``_runner.run`` drives.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Concatenate, Generic, Literal, ParamSpec, Protocol, TypeVar, overload

from etoro_nb._runner import AsyncRunner, Runner, RunnerState, Work, run

if TYPE_CHECKING:
    from etoro_nb.ledger import Ledger
    from etoro_nb.ledger.recorder import UsageRecorder


class ClientState(RunnerState, Protocol):
    """What both clients expose besides running flows."""

    @property
    def ledger(self) -> Ledger | None:
        """Where the client records its requests (the token loader reads revocations)."""
        ...

    @property
    def principal(self) -> Literal["owner", "agent"]:
        """Whom the client acts as: the owner, or an agent with a delegated token."""
        ...

    @property
    def recorder(self) -> UsageRecorder | None:
        """What records this client's requests (its key's fingerprint), if it records."""
        ...

    def recorded_now(self) -> datetime:
        """The time the client stamps its ledger rows with, read without a request."""
        ...


class ClientAPI(ClientState, Runner, Protocol):
    """A synchronous client (``EtoroClient``)."""


class AsyncClientAPI(ClientState, AsyncRunner, Protocol):
    """An asyncio client (``AsyncEtoroClient``)."""


AnyClient = ClientAPI | AsyncClientAPI
"""Either client: what code that serves both takes."""

P = ParamSpec("P")
T = TypeVar("T")


class Loader(Generic[P, T]):
    """A function of a client written once, as work (``work(client, ...)``): called with an
    ``EtoroClient`` it returns its result, with an ``AsyncEtoroClient`` an awaitable of it.
    ``loader.work`` is the work itself, for composing loaders."""

    def __init__(self, work: Callable[Concatenate[ClientState, P], Work[T]]) -> None:
        self.work = work
        functools.update_wrapper(self, work)
        self.__signature__ = _called(inspect.signature(work))

    def __repr__(self) -> str:
        return f"<loader {self.work.__module__}.{self.work.__qualname__}>"

    @overload
    def __call__(self, client: ClientAPI, /, *args: P.args, **kwargs: P.kwargs) -> T: ...
    @overload
    def __call__(self, client: AsyncClientAPI, /, *args: P.args,
                 **kwargs: P.kwargs) -> Awaitable[T]: ...
    def __call__(self, client: AnyClient, /, *args: P.args, **kwargs: P.kwargs) -> Any:
        return run(client, self.work(client, *args, **kwargs))


def _called(work: inspect.Signature) -> inspect.Signature:
    """What ``help()`` and editors show of a loader: the client it takes and what it gives
    (the work's own signature, with ``Work[X]`` read as ``X | Awaitable[X]``)."""
    params = list(work.parameters.values())
    if params:
        params[0] = params[0].replace(annotation="ClientAPI | AsyncClientAPI")
    result = work.return_annotation
    if isinstance(result, str) and result.startswith("Work[") and result.endswith("]"):
        result = f"{result[5:-1]} | Awaitable[{result[5:-1]}]"
    return work.replace(parameters=params, return_annotation=result)


__all__ = ["AnyClient", "AsyncClientAPI", "ClientAPI", "ClientState", "Loader"]
