"""The sandbox as an ASGI application: one request pipeline in front of every operation.

For each request, in order: injected latency and 503s; the body, refused (413) past the
size limit without reading the rest; the two keys (401, or 403 for a whitelisted token used
from elsewhere); a UUID ``x-request-id`` (400); the rolling quota (429); the operation's
scope or owner rule (403); a JSON content type for a body (415); then the operation, in one
transaction. Every answer carries ``x-request-id`` and the ``X-RateLimit-*`` headers.
Order creation is idempotent on ``x-request-id``. A share of successful mutating
requests may be committed and then have their connection dropped (a fault switch).

Outside the contract, under ``/_sandbox/``, the owner can read and advance the clock and
switch faults; ``/openapi.json`` serves the subset document.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from etoro_nb.sandbox.config import Faults, SandboxConfig
from etoro_nb.sandbox.core import Sandbox
from etoro_nb.sandbox.delegation import DEMO_READ, REAL_READ, Principal, scope_for
from etoro_nb.sandbox.errors import ApiError, unauthorized, validation
from etoro_nb.sandbox.quota import QuotaDecision
from etoro_nb.sandbox.routes import OPERATIONS, Call, Operation
from etoro_nb.sandbox.validation import (
    Fields,
    check_json_media_type,
    iso,
    opt_number,
    refuse_repeats,
)
from etoro_nb.spec import subset_bytes

log = logging.getLogger("etoro_nb.sandbox")


class ConnectionDropped(httpx.RemoteProtocolError):
    """Raised by the app to drop a connection after committing (a fault switch).

    Over a socket the server closes the connection mid-response; in process the caller
    sees this exception, which is an ``httpx.TransportError`` like a real drop.
    """


class DroppedResponse(Response):
    """Starts the response, then breaks the connection before any body."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"1024")]})
        raise ConnectionDropped("the sandbox dropped the connection after committing")


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    if body is None:
        return Response(status_code=status, headers=headers)
    return JSONResponse(body, status_code=status, headers=headers)


def error_response(error: ApiError, *, problem: bool) -> Response:
    body: dict[str, Any] = {"errorCode": error.code, "errorMessage": error.message}
    if problem:
        body.update(type="about:blank", title=error.code, status=error.status,
                    detail=error.message)
    return JSONResponse(body, status_code=error.status)


def too_large(limit: int) -> ApiError:
    return ApiError(413, "PayloadTooLarge",
                    f"The request body is larger than the sandbox's limit of {limit} bytes")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) as soon as it is known to be over ``limit`` bytes: from a
    declared Content-Length before any of it is read, else while it streams in."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and (len(declared) > 19 or int(declared) > limit):
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _key_of(user_key: str | None) -> str:
    return hashlib.sha256((user_key or "").encode()).hexdigest()[:24]


def _check_access(principal: Principal, op: Operation) -> None:
    access = op.access
    if access == "owner":
        principal.require_owner()
    elif access == "identity":
        if not {REAL_READ, DEMO_READ} & set(principal.scopes):
            raise ApiError(403, "InsufficientScope",
                           "Reading the profile needs a read scope "
                           f"({DEMO_READ} or {REAL_READ})")
    elif isinstance(access, tuple):
        principal.require_scope(scope_for(*access))


def _request_id(raw: str | None) -> str:
    if not raw:
        raise validation("The x-request-id header is required (a UUID)")
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise validation(f"The x-request-id header must be a UUID, got {raw!r}") from None


def endpoint(sb: Sandbox, op: Operation) -> Callable[[Request], Awaitable[Response]]:
    kind = "read" if op.method == "GET" else "write"
    trading = isinstance(op.access, tuple)

    async def handle(request: Request) -> Response:
        faults = sb.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000.0)
        user_key = request.headers.get("x-user-key")
        quota: QuotaDecision | None = None
        request_id = request.headers.get("x-request-id", "")
        drop = False
        try:
            if sb.roll(faults.fail_rate):
                raise ApiError(503, "ServiceUnavailable",
                               "The sandbox injected a failure before doing anything (fail rate)")
            raw = await read_body(request, sb.config.max_body_bytes)
            now = sb.clock.now()
            client_ip = request.client.host if request.client else None
            with sb.store.lock:
                principal = sb.delegation.authenticate(
                    request.headers.get("x-api-key"), user_key, client_ip, now)
            request_id = _request_id(request.headers.get("x-request-id"))
            quota = sb.quota.check(_key_of(user_key), kind, now)
            if not quota.allowed:
                raise ApiError(429, "TooManyRequests",
                               f"Too many requests: {quota.limit} {kind}s per "
                               f"{sb.config.limit_window:g} s per user key; retry after "
                               f"{quota.retry_after} s")
            _check_access(principal, op)
            if op.takes_body:
                check_json_media_type(request.headers.get("content-type"), raw)
            query = Fields(request.query_params.multi_items())
            refuse_repeats(query, "The query gives the parameter")
            call = Call(sb, principal, now, request_id, dict(request.path_params), query, raw)
            if trading:
                with sb.store.transaction():
                    sb.trading.settle(now)
            with sb.store.transaction() as conn:
                status, body = _run(conn, op, call)
            response = _json(status, body)
            drop = kind == "write" and sb.roll(faults.drop_after_commit_rate)
        except ApiError as exc:
            response = error_response(exc, problem=op.problem_details)
        except Exception:  # a bug: still answer in the contract's shape
            log.exception("unhandled error in %s", op.operation_id)
            response = error_response(
                ApiError(500, "UnhandledException", "Global Error"), problem=op.problem_details)
        if drop:
            return DroppedResponse()
        if quota is None:
            quota = sb.quota.peek(_key_of(user_key), kind, sb.clock.now())
        response.headers.update(quota.headers())
        if response.status_code == 503:
            response.headers["Retry-After"] = "1"
        if response.status_code == 413:  # the rest of the body is not read, nor drained
            response.headers["Connection"] = "close"
        if request_id:
            response.headers["x-request-id"] = request_id
        return response

    return handle


def _run(conn: Any, op: Operation, call: Call) -> tuple[int, Any]:
    """The handler, made idempotent on x-request-id for order creation."""
    if not op.creates_order:
        return op.handler(call)
    key = (call.principal.gcid, op.operation_id, call.request_id)
    row = conn.execute(
        "SELECT status, body FROM idempotency WHERE cid = ? AND route = ? AND request_id = ?", key
    ).fetchone()
    if row is not None:
        return int(row["status"]), json.loads(row["body"])
    status, body = op.handler(call)
    conn.execute(
        "INSERT INTO idempotency (cid, route, request_id, status, body) VALUES (?, ?, ?, ?, ?)",
        (*key, status, json.dumps(body)),
    )
    return status, body


# -- outside the contract -----------------------------------------------------------------
def _admin(sb: Sandbox, request: Request) -> None:
    api_key, user_key = request.headers.get("x-api-key"), request.headers.get("x-user-key")
    if api_key != sb.config.api_key or user_key != sb.config.user_key:
        raise unauthorized("The sandbox controls need the owner's x-api-key and x-user-key")


def _faults_body(f: Faults) -> dict[str, float]:
    return {"latencyMs": f.latency_ms, "failRate": f.fail_rate,
            "dropAfterCommitRate": f.drop_after_commit_rate,
            "partialCreateRate": f.partial_create_rate}


def admin_routes(sb: Sandbox) -> list[Route]:
    async def clock(request: Request) -> Response:
        try:
            _admin(sb, request)
            if request.method == "POST":
                body = json.loads(await read_body(request, sb.config.max_body_bytes) or b"{}")
                seconds = opt_number(body if isinstance(body, dict) else {}, "seconds")
                if seconds is None:
                    raise validation("seconds must be a number >= 0")
                try:
                    sb.clock.advance(seconds)
                except ValueError as exc:
                    raise validation(str(exc)) from None
        except ApiError as exc:
            return error_response(exc, problem=False)
        except ValueError:
            return error_response(validation("The body must be JSON"), problem=False)
        return JSONResponse({"now": iso(sb.clock.now()), "simulated": sb.clock.simulated})

    async def faults(request: Request) -> Response:
        try:
            _admin(sb, request)
            if request.method == "PUT":
                body = json.loads(await read_body(request, sb.config.max_body_bytes) or b"{}")
                if not isinstance(body, dict):
                    raise validation("The body must be a JSON object")
                current = _faults_body(sb.faults)
                unknown = set(body) - set(current)
                if unknown:
                    raise validation(f"Unknown fault switches: {', '.join(sorted(unknown))}")
                merged = {**current, **{k: opt_number(body, k) for k in body}}
                sb.set_faults(Faults(merged["latencyMs"] or 0.0, merged["failRate"] or 0.0,
                                     merged["dropAfterCommitRate"] or 0.0,
                                     merged["partialCreateRate"] or 0.0))
        except ApiError as exc:
            return error_response(exc, problem=False)
        except ValueError as exc:
            return error_response(validation(str(exc)), problem=False)
        return JSONResponse(_faults_body(sb.faults))

    return [
        Route("/_sandbox/clock", clock, methods=["GET", "POST"]),
        Route("/_sandbox/faults", faults, methods=["GET", "PUT"]),
    ]


async def _openapi(request: Request) -> Response:
    return Response(subset_bytes(), media_type="application/json")


async def _root(request: Request) -> Response:
    sb: Sandbox = request.app.state.sandbox
    return JSONResponse({
        "service": "etoro-nb sandbox",
        "environment": "sandbox",
        "now": iso(sb.clock.now()),
        "simulatedClock": sb.clock.simulated,
        "openapi": "/openapi.json",
        "operations": len(OPERATIONS),
    })


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "BadRequest")
    message = f"No operation {request.method} {request.url.path}"
    if exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    headers = dict(exc.headers or {})
    if exc.status_code == 405:  # Starlette's Allow names only the first route of the path
        headers["Allow"] = ", ".join(_methods_of(request))
    sb: Sandbox = request.app.state.sandbox
    kind = "read" if request.method == "GET" else "write"
    quota = sb.quota.peek(_key_of(request.headers.get("x-user-key")), kind, sb.clock.now())
    return JSONResponse({"errorCode": code, "errorMessage": message},
                        status_code=exc.status_code, headers={**headers, **quota.headers()})


def _methods_of(request: Request) -> list[str]:
    """Every method some route serves on the request's path."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches(request.scope)  # PARTIAL: the path, not the method
            if match is not Match.NONE:
                methods |= route.methods
    return sorted(methods)


def create_app(source: Sandbox | SandboxConfig | None = None) -> Starlette:
    """The ASGI app over a sandbox (made from ``source`` when it is a config)."""
    sb = source if isinstance(source, Sandbox) else Sandbox(source)
    routes = [Route(op.path, endpoint(sb, op), methods=[op.method]) for op in OPERATIONS]
    routes += admin_routes(sb)
    routes += [Route("/openapi.json", _openapi), Route("/", _root)]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    # A trailing slash is another path (404), not a redirect a client might follow.
    app.router.redirect_slashes = False
    app.state.sandbox = sb
    return app
