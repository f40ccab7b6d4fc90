"""The small public surface resources need from a client, as typing protocols.

Resources (``etoro_nb.resources``) drive flows through a *runner* and never touch a
client's private members, as openai-python's resources call their client's public
methods. ``EtoroClient`` satisfies ``Runner`` and ``AsyncEtoroClient`` satisfies ``AsyncRunner``;
the resources import only these protocols, so ``etoro_nb.resources`` imports nothing
from ``etoro_nb.client`` (the dependency goes one way: client -> resources -> runner).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    from etoro_nb._base import Flow
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


__all__ = ["AsyncRunner", "Runner", "RunnerState"]
