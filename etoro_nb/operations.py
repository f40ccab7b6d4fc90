"""The contract's operations by id, read once from the package's copy of the document: method,
route template, the scope an agent needs, and what a form needs to offer it (summary,
parameters, an example body). Every request the client sends is built from an entry here
(``etoro_nb._base.Call.of``), and the playground lists these entries.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from etoro_nb import scopes
from etoro_nb.spec import load_subset

OWNER_ONLY = "owner"
METHODS = ("get", "post", "put", "patch", "delete")
# Not idempotent on the server: sent again, they make a second portfolio or token. (An
# order is: its request id is its idempotency key.)
NOT_IDEMPOTENT = frozenset({"createAgentPortfolio", "createAgentPortfolioV2",
                            "createAgentPortfolioUserToken", "createAgentPortfolioUserTokenV2"})
_PARAM = re.compile(r"{(\w+)}")


@dataclass(frozen=True)
class Parameter:
    """A path or query parameter of an operation (headers are the client's business)."""

    name: str
    location: Literal["path", "query"]
    required: bool
    example: str  # the document's example as text; empty when it gives none


@dataclass(frozen=True)
class OperationInfo:
    operation_id: str
    method: str
    route: str
    scope_required: str | None  # a scope name, "owner" for management, None for any key
    summary: str = ""
    deprecated: bool = False
    parameters: tuple[Parameter, ...] = ()
    body_example: str | None = None  # JSON text of a request body; None: it takes no body

    @property
    def places_trade(self) -> bool:
        """Opens or closes a position: a POST to a trading execution route (an order, a
        market open or a market close; cancelling an order is a DELETE and is not one)."""
        return self.method == "POST" and "/trading/execution/" in self.route

    @property
    def real_money(self) -> bool:
        """Acts on the real account's positions or orders (on live, it moves real money)."""
        return "/trading/execution/" in self.route and "/demo/" not in self.route

    @property
    def idempotent(self) -> bool:
        """Safe to send again after an ambiguous failure (see ``NOT_IDEMPOTENT``)."""
        return self.operation_id not in NOT_IDEMPOTENT

    @property
    def path_params(self) -> tuple[str, ...]:
        """The names in the route template, in order."""
        return tuple(_PARAM.findall(self.route))

    def example_body(self) -> Any:
        """A fresh copy of the example request body, or None when the operation takes none."""
        return None if self.body_example is None else json.loads(self.body_example)

    def matches(self, path: str) -> bool:
        """Whether ``path`` (no query string) is this route with its parameters filled in."""
        return _route_pattern(self.route).fullmatch(path) is not None


@cache
def _route_pattern(route: str) -> re.Pattern[str]:
    parts = _PARAM.split(route)  # literal, name, literal, name, ..., literal
    return re.compile("".join(re.escape(p) if i % 2 == 0 else "[^/]+"
                              for i, p in enumerate(parts)))


def scope_required(method: str, route: str) -> str | None:
    if "/trading/" in route:
        return scopes.scope_for("demo" if "/demo/" in route else "real",
                                "read" if method == "GET" else "write")
    if "/agent-portfolios" in route:
        return OWNER_ONLY
    return None


def example_body(op: dict[str, Any], spec: dict[str, Any]) -> Any:
    """A request body prefilled from the document: its example, else one built from the
    schema's properties and their examples; None when the operation takes no JSON body."""
    content = (op.get("requestBody") or {}).get("content", {}).get("application/json")
    if not content:
        return None
    if "example" in content:
        return content["example"]
    if content.get("examples"):
        return next(iter(content["examples"].values())).get("value")
    schema = content.get("schema", {})
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    out: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        if prop.get("deprecated"):
            continue
        if "example" in prop:
            out[name] = prop["example"]
        elif name in schema.get("required", []):
            out[name] = {"string": "", "integer": 0, "number": 0, "boolean": False,
                         "array": []}.get(prop.get("type", "string"))
    return out


def _parameters(op: dict[str, Any]) -> tuple[Parameter, ...]:
    return tuple(
        Parameter(p["name"], p["in"], bool(p.get("required")),
                  str(p.get("example", p.get("schema", {}).get("example", ""))))
        for p in op.get("parameters", []) if p["in"] in ("path", "query"))


@cache
def catalogue() -> dict[str, OperationInfo]:
    """Every operation of the contract by id, in the document's order."""
    spec = load_subset()
    out: dict[str, OperationInfo] = {}
    for route, ops in spec["paths"].items():
        for method, op in ops.items():
            if method in METHODS:
                m = method.upper()
                body = example_body(op, spec)
                out[op["operationId"]] = OperationInfo(
                    op["operationId"], m, route, scope_required(m, route),
                    summary=op.get("summary") or "", deprecated=bool(op.get("deprecated")),
                    parameters=_parameters(op),
                    body_example=None if body is None else json.dumps(body))
    return out


SANDBOX_STATUS = OperationInfo("sandboxStatus", "GET", "/", None,
                               summary="The embedded sandbox's status and clock (not eToro's)")
"""The one request the client makes outside the contract: the sandbox's clock (``now()``)."""


def operation(operation_id: str) -> OperationInfo | None:
    """The entry the client builds a request to ``operation_id`` from, if there is one."""
    if operation_id == SANDBOX_STATUS.operation_id:
        return SANDBOX_STATUS
    return catalogue().get(operation_id)


def trade_operations() -> frozenset[str]:
    """The ids of the contract's operations that open or close a position
    (``OperationInfo.places_trade``)."""
    return frozenset(op for op, info in catalogue().items() if info.places_trade)


def describe(operation_id: str, method: str, path: str) -> OperationInfo:
    """The operation's entry, or one made from the call itself (a ledger row of an
    operation this version does not know)."""
    return operation(operation_id) or OperationInfo(operation_id, method, path, None)
