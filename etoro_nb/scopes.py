"""The scopes a delegated token can hold, defined once for the client side: each v2 name,
the account and access it grants, its deprecated v1 ``scopeId`` and what it lets an agent
do in plain words (the wording consent texts use).

The sandbox keeps its own copy on purpose: it is the test oracle, so the client's
definitions are checked against it rather than shared with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Account = Literal["demo", "real"]
Access = Literal["read", "write"]

PREFIX = "etoro-public:"

DEMO_READ = "etoro-public:trade.demo:read"
DEMO_WRITE = "etoro-public:trade.demo:write"
REAL_READ = "etoro-public:trade.real:read"
REAL_WRITE = "etoro-public:trade.real:write"


@dataclass(frozen=True)
class Scope:
    name: str
    account: Account
    access: Access
    v1_id: int  # the deprecated v1 operations' ``scopeIds`` value
    meaning: str  # what it lets an agent do, completing "The agent will be able to ..."

    @property
    def short(self) -> str:
        """The name without its ``etoro-public:`` prefix (``trade.demo:read``)."""
        return short(self.name)


# In the order the server lists them (GET .../user-tokens/scopes). The v1 ids are the
# contract's: 200 real:read, 201 demo:read, 202 real:write, 203 demo:write.
SCOPES: dict[str, Scope] = {s.name: s for s in (
    Scope(DEMO_READ, "demo", "read", 201,
          "read its demo practice account (portfolio, P&L, trade history, orders)"),
    Scope(DEMO_WRITE, "demo", "write", 203,
          "open and close positions on its demo practice account (no real money)"),
    Scope(REAL_READ, "real", "read", 200,
          "read its real account (portfolio, P&L, trade history, orders)"),
    Scope(REAL_WRITE, "real", "write", 202,
          "open and close positions on its real account; each trade is copied into your "
          "mirror"),
)}
NAMES: tuple[str, ...] = tuple(SCOPES)
BY_V1_ID: dict[int, str] = {s.v1_id: s.name for s in SCOPES.values()}


def scope_for(account: Account, access: Access) -> str:
    """The name of the scope granting ``access`` to ``account``."""
    return next(s.name for s in SCOPES.values() if s.account == account and s.access == access)


def short(name: str) -> str:
    """A scope name without its ``etoro-public:`` prefix, for tables and labels."""
    return name.removeprefix(PREFIX)


def writes(names: Iterable[str]) -> list[Scope]:
    """The write scopes among ``names``, in the server's order: the ones that need consent."""
    chosen = set(names)
    return [s for s in SCOPES.values() if s.access == "write" and s.name in chosen]
