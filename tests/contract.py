"""Checking HTTP answers against the subset document, the contract of the sandbox.

``check_response(method, path, status, body)`` finds the operation for a concrete path
(``/api/v1/agent-portfolios/3f2c...`` matches ``/api/v1/agent-portfolios/{agentPortfolioId}``;
``orders:lookup`` is literal), finds the JSON schema the document gives for that status,
and validates the parsed body with ``OAS30Validator`` (which understands ``nullable``),
with ``$ref: #/components/schemas/...`` resolved inside the document and formats
(``date-time``, ``uuid``, ``int32``...) checked. Every violation is listed in one
``AssertionError``; on success it returns the operationId, so callers can count coverage.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import quote, urlsplit

from jsonschema.exceptions import ValidationError
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from referencing import Registry
from referencing.jsonschema import DRAFT4

from etoro_nb.spec import load_subset

DOCUMENT_URI = "urn:etoro-nb:agent-portfolios-subset"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
JSON_TYPES = ("application/json",)
_TEMPLATE_PARAM = re.compile(r"\{([^{}/]+)\}")


@dataclass(frozen=True)
class Operation:
    """One operation of the document: its id, method (upper case) and path template."""

    operation_id: str
    method: str
    template: str
    pattern: re.Pattern[str]
    literal_length: int  # characters outside {parameters}: more literal wins a tie


def _escape_pointer(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _pattern(template: str) -> re.Pattern[str]:
    parts: list[str] = []
    last = 0
    for m in _TEMPLATE_PARAM.finditer(template):
        parts.append(re.escape(template[last:m.start()]))
        parts.append(f"(?P<{re.sub(r'[^0-9A-Za-z_]', '_', m.group(1))}>[^/]+)")
        last = m.end()
    parts.append(re.escape(template[last:]))
    return re.compile("".join(parts))


def _close_schema(schema: Any) -> None:
    """Forbid undeclared properties in ``schema`` and every schema inside it, wherever it
    declares ``properties`` and says nothing about ``additionalProperties``."""
    if not isinstance(schema, dict):
        return
    if "properties" in schema and "additionalProperties" not in schema:
        schema["additionalProperties"] = False
    for sub in (schema.get("properties") or {}).values():
        _close_schema(sub)
    for key in ("items", "additionalProperties", "not"):
        _close_schema(schema.get(key))
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(key) or []:
            _close_schema(sub)


def closed_document(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``document`` whose object schemas admit only the fields they declare."""
    doc = copy.deepcopy(document)
    for schema in doc.get("components", {}).get("schemas", {}).values():
        _close_schema(schema)
    for item in doc["paths"].values():
        for method, op in item.items():
            if method not in HTTP_METHODS:
                continue
            bodies = [op.get("requestBody") or {}, *op.get("responses", {}).values()]
            for body in bodies:
                for entry in (body.get("content") or {}).values():
                    _close_schema(entry.get("schema"))
    return doc


class Contract:
    """The subset document, indexed for response checking.

    With ``closed=True`` every object schema also forbids properties it does not
    declare: stricter than the document (which closes none), for an implementation that
    promises to answer with the document's field names and nothing else.
    """

    def __init__(self, document: dict[str, Any] | None = None, *, closed: bool = False) -> None:
        document = document if document is not None else load_subset()
        self.document = closed_document(document) if closed else document
        self.registry: Registry[Any] = Registry().with_resource(
            DOCUMENT_URI, DRAFT4.create_resource(self.document)
        )
        self.operations: list[Operation] = []
        for template, item in self.document["paths"].items():
            for method, op in item.items():
                if method not in HTTP_METHODS:
                    continue
                self.operations.append(Operation(
                    op["operationId"], method.upper(), template, _pattern(template),
                    len(_TEMPLATE_PARAM.sub("", template)),
                ))
        self._validators: dict[str, Any] = {}

    @property
    def operation_ids(self) -> list[str]:
        return sorted(op.operation_id for op in self.operations)

    # -- finding things -------------------------------------------------------------------
    def operation_by_id(self, operation_id: str) -> Operation:
        for op in self.operations:
            if op.operation_id == operation_id:
                return op
        raise AssertionError(f"the document has no operation {operation_id!r}")

    def operation(self, method: str, path: str) -> Operation:
        """The operation serving ``method`` on a concrete path (query string ignored)."""
        path = urlsplit(path).path
        method = method.upper()
        matches = [op for op in self.operations
                   if op.method == method and op.pattern.fullmatch(path)]
        if not matches:
            raise AssertionError(f"the document has no operation for {method} {path}")
        matches.sort(key=lambda op: op.literal_length, reverse=True)
        if len(matches) > 1 and matches[0].literal_length == matches[1].literal_length:
            names = ", ".join(op.operation_id for op in matches)
            raise AssertionError(f"{method} {path} matches several operations: {names}")
        return matches[0]

    def _response(self, op: Operation, status: int) -> tuple[str, dict[str, Any]] | None:
        responses = self.document["paths"][op.template][op.method.lower()]["responses"]
        for key in (str(status), f"{status // 100}XX", f"{status // 100}xx", "default"):
            if key in responses:
                return key, responses[key]
        return None

    def documents_status(self, op: Operation, status: int) -> bool:
        """Whether the document lists ``status`` (exactly, as a range, or as default)."""
        return self._response(op, status) is not None

    def schema_pointer(self, op: Operation, status: int) -> str | None:
        """JSON pointer (within the document) of the JSON schema for ``status``, if any."""
        found = self._response(op, status)
        if found is None:
            return None
        key, response = found
        content = response.get("content") or {}
        for media in content:
            if media.split(";")[0].strip() in JSON_TYPES or media.endswith("+json"):
                if "schema" not in content[media]:
                    return None
                return "/" + "/".join(_escape_pointer(t) for t in (
                    "paths", op.template, op.method.lower(), "responses", key, "content",
                    media, "schema"))
        return None

    def request_schema_pointer(self, op: Operation) -> str | None:
        """JSON pointer of the JSON request-body schema of ``op``, if it has one."""
        body = self.document["paths"][op.template][op.method.lower()].get("requestBody") or {}
        for media, entry in (body.get("content") or {}).items():
            if media.split(";")[0].strip() in JSON_TYPES and "schema" in entry:
                return "/" + "/".join(_escape_pointer(t) for t in (
                    "paths", op.template, op.method.lower(), "requestBody", "content", media,
                    "schema"))
        return None

    def _validator(self, pointer: str) -> Any:
        validator = self._validators.get(pointer)
        if validator is None:
            ref = f"{DOCUMENT_URI}#{quote(pointer, safe='/~')}"
            validator = OAS30Validator({"$ref": ref}, registry=self.registry,
                                       format_checker=oas30_format_checker)
            self._validators[pointer] = validator
        return validator

    # -- checking -------------------------------------------------------------------------
    def violations(self, op: Operation, status: int, body: Any) -> list[str]:
        """Every way ``body`` breaks the document's schema for ``status`` (may be empty).

        A status the document does not list, or lists without a JSON schema, has nothing
        to validate, except that a 204 must have no body.
        """
        pointer = self.schema_pointer(op, status)
        if pointer is None:
            if status == 204 and body is not None:
                return [f"$: a 204 answer has no body, got {body!r:.200}"]
            return []
        if body is None:
            return ["$: the document gives a JSON schema for this status, but there is no "
                    "JSON body"]
        errors = sorted(self._validator(pointer).iter_errors(body),
                        key=lambda e: (list(map(str, e.absolute_path)), e.message))
        return [line for e in errors for line in _describe(e)]

    def request_violations(self, op: Operation, body: Any) -> list[str]:
        """Every way a JSON request body breaks the operation's request schema."""
        pointer = self.request_schema_pointer(op)
        if pointer is None or body is None:
            return []
        errors = sorted(self._validator(pointer).iter_errors(body),
                        key=lambda e: (list(map(str, e.absolute_path)), e.message))
        return [line for e in errors for line in _describe(e)]

    def check(self, method: str, path: str, status: int, body: Any) -> str:
        """Validate one answer; its operationId, or an AssertionError listing violations."""
        op = self.operation(method, path)
        problems = self.violations(op, status, body)
        if problems:
            pointer = self.schema_pointer(op, status)
            listing = "\n".join(f"  - {p}" for p in problems)
            raise AssertionError(
                f"{method.upper()} {urlsplit(path).path} -> {status} ({op.operation_id}): "
                f"{len(problems)} violation(s) of #{pointer}:\n{listing}"
            )
        return op.operation_id


def _describe(error: ValidationError, indent: str = "") -> list[str]:
    where = error.json_path
    lines = [f"{indent}{where}: {error.message}"]
    # anyOf/oneOf failures: say why each branch failed.
    for sub in sorted(error.context or [], key=lambda e: e.message):
        lines += _describe(sub, indent + "    ")
    return lines


@cache
def contract(*, closed: bool = False) -> Contract:
    """The shared contract over the packaged subset document (see ``Contract``)."""
    return Contract(closed=closed)


def check_response(method: str, path: str, status: int, body: Any) -> str:
    """Validate one answer against the packaged document; returns its operationId."""
    return contract().check(method, path, status, body)
