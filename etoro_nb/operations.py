"""The contract's operations by id: method, route template and the scope an agent needs."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from etoro_nb.spec import load_subset

OWNER_ONLY = "owner"


@dataclass(frozen=True)
class OperationInfo:
    operation_id: str
    method: str
    route: str
    scope_required: str | None  # a scope name, "owner" for management, None for any key

    @property
    def places_trade(self) -> bool:
        """Opens or closes a position: a POST to a trading execution route (an order, a
        market open or a market close; cancelling an order is a DELETE and is not one)."""
        return self.method == "POST" and "/trading/execution/" in self.route


def scope_required(method: str, route: str) -> str | None:
    if "/trading/" in route:
        mode = "demo" if "/demo/" in route else "real"
        access = "read" if method == "GET" else "write"
        return f"etoro-public:trade.{mode}:{access}"
    if "/agent-portfolios" in route:
        return OWNER_ONLY
    return None


@cache
def catalogue() -> dict[str, OperationInfo]:
    out: dict[str, OperationInfo] = {}
    for route, ops in load_subset()["paths"].items():
        for method, op in ops.items():
            if method in ("get", "post", "put", "patch", "delete"):
                m = method.upper()
                out[op["operationId"]] = OperationInfo(op["operationId"], m, route,
                                                       scope_required(m, route))
    return out


def trade_operations() -> frozenset[str]:
    """The ids of the contract's operations that open or close a position
    (``OperationInfo.places_trade``)."""
    return frozenset(op for op, info in catalogue().items() if info.places_trade)


def describe(operation_id: str, method: str, path: str) -> OperationInfo:
    """The operation's entry, or one made from the call itself (e.g. the sandbox's root)."""
    return catalogue().get(operation_id) or OperationInfo(operation_id, method, path, None)
