"""Agent portfolios and their user tokens: the delegation an owner hands to agents.

v2 operations are used where they exist; list, delete and revoke exist only in v1.
Creating and minting are not idempotent on the server, so after an answer that never
came (or a 5xx), the client looks at what exists before trying again:

- a create reconciles by name: the portfolio that exists is returned, never a second
  one; its first token's secret went down with the lost answer, so that token is
  revoked and a replacement with the same name and scopes is minted;
- a mint reconciles by token name: a token nobody received the secret of is revoked
  (and logged), then the mint is made again, so no live token exists that nobody holds.

Every change is recorded in the ledger as an intent before its request and an outcome
after (``changes``), reconciliation's own mints and revocations included.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from pydantic import StrictStr, TypeAdapter

from etoro_nb import rules
from etoro_nb._base import AMBIGUOUS, Answer, Call, Flow, read
from etoro_nb.agent.controls import AsyncPolicyControls, PolicyControls, PortfolioFlows
from etoro_nb.errors import (
    APIConnectionError,
    BadRequestError,
    EtoroError,
    InvalidInputError,
    NotFoundError,
    PartialCreateError,
)
from etoro_nb.models import AgentPortfolio, CreatedPortfolio, MintedToken, UserToken
from etoro_nb.resources.changes import Change, ChangeLog, grant_fields

if TYPE_CHECKING:
    from etoro_nb._runner import AsyncRunner, Runner

log = logging.getLogger("etoro_nb.client")


@cache
def scope_names() -> TypeAdapter[list[str]]:
    """The validator of the allowed-scopes answer, built on first use (not at import)."""
    return TypeAdapter(list[StrictStr])

SECRET_LOST = {"secret": "lost with the answer"}  # the detail of a token nobody received


@dataclass(frozen=True)
class TokenRequest:
    """A token grant as the caller asked for it, validated except for scope names."""

    name: str
    scopes: tuple[str, ...]
    ips_whitelist: tuple[str, ...] | None
    expires_at: datetime | timedelta | None

    def body(self, now: datetime, allowed: Iterable[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"userTokenName": self.name,
                               "scopeNames": rules.scopes(self.scopes, allowed)}
        expires = rules.expiry(self.expires_at, now)
        if expires is not None:  # the create and mint schemas don't allow null: never = absent
            out["expiresAt"] = expires
        if self.ips_whitelist is not None:
            out["ipsWhitelist"] = list(self.ips_whitelist)
        return out


def token_request(name: str, scopes: Iterable[str], ips_whitelist: Iterable[str] | None,
                  expires_at: datetime | timedelta | None) -> TokenRequest:
    whitelist = rules.ipv4_whitelist(ips_whitelist)
    return TokenRequest(rules.token_name(name), tuple([scopes] if isinstance(scopes, str)
                                                      else scopes),
                        None if whitelist is None else tuple(whitelist), expires_at)


def minted_from(body: Mapping[str, Any], portfolio_id: str) -> MintedToken:
    """A just-minted token from an answer's token object: a mint's answer, or one of a
    create's ``userTokens`` (whose scopes come as ``[{"name": ...}]``). Called inside
    ``read``, which reports a body of the wrong shape."""
    names = body.get("scopeNames") or [s["name"] for s in body.get("scopes", [])
                                       if isinstance(s, dict) and "name" in s]
    return MintedToken.model_validate({**body, "scopeNames": names, "portfolio_id": portfolio_id})


# -- flows --------------------------------------------------------------------------------
def now_flow(environment: str) -> Flow[datetime]:
    """The server's now: the sandbox's (possibly simulated) clock, else the local UTC clock."""
    if environment != "sandbox":
        return datetime.now(UTC)
    answer = yield Call.of("sandboxStatus")
    return read(answer, lambda body: datetime.fromisoformat(body["now"].replace("Z", "+00:00")))


def allowed_scopes_flow(cache: list[str]) -> Flow[list[str]]:
    if not cache:
        answer = yield Call.of("getAgentPortfolioAllowedScopesV2")
        cache[:] = read(answer, lambda body: scope_names().validate_python(
            [s["name"] for s in body["scopes"]]))
    return list(cache)


def list_flow() -> Flow[list[AgentPortfolio]]:
    answer = yield Call.of("getAgentPortfolios")
    return read(answer, lambda body: [AgentPortfolio.model_validate(p)
                                      for p in body["agentPortfolios"]])


def find_flow(portfolio_id: str) -> Flow[AgentPortfolio]:
    for portfolio in (yield from list_flow()):
        if portfolio.id == portfolio_id:
            return portfolio
    raise _local_not_found(f"agent portfolio {portfolio_id} not found")


def _local_not_found(message: str) -> NotFoundError:
    return NotFoundError(status=404, error_code="NotFound", error_message=message,
                         request_id="-", operation="getAgentPortfolios")


def change_flow(changelog: ChangeLog, change: Change, call: Call,
                done_before: Callable[[EtoroError], bool] | None = None) -> Flow[Answer | None]:
    """Send the call that makes ``change`` (under its request id); an error that proves
    nothing changed is recorded as the change failing. ``done_before(error)`` says an
    error means an earlier attempt made the change: then the answer is None."""
    try:
        return (yield replace(call, request_id=change.request_id))
    except EtoroError as exc:
        if done_before is not None and done_before(exc):
            return None
        changelog.failed(change, exc)
        raise


def _gone_before(exc: EtoroError) -> bool:
    """A 404 after an attempt that got no answer: that attempt did the deletion."""
    return isinstance(exc, NotFoundError) and exc.ambiguous_before


def revoke_flow(portfolio_id: str, token_id: str, changelog: ChangeLog,
                detail: Mapping[str, Any] | None = None) -> Flow[None]:
    call = Call.of("deleteAgentPortfolioUserToken",
                   {"agentPortfolioId": portfolio_id, "userTokenId": token_id})
    change = changelog.intent("token_revoked", portfolio_id=portfolio_id, token_id=token_id,
                              detail=detail)
    yield from change_flow(changelog, change, call, _gone_before)
    changelog.outcome(change, detail=detail)


def mint_flow(portfolio_id: str, grant: TokenRequest, environment: str, cache: list[str],
              changelog: ChangeLog, request_id: str | None = None,
              detail: Mapping[str, Any] | None = None) -> Flow[MintedToken]:
    mint = Call.of("createAgentPortfolioUserTokenV2", {"agentPortfolioId": portfolio_id})
    allowed = yield from allowed_scopes_flow(cache)
    now = yield from now_flow(environment)
    body = grant.body(now, allowed)
    # What existed before: only a token that appears after the call started can be ours.
    before = {t.id for t in (yield from find_flow(portfolio_id)).tokens}
    for _ in range(3):
        change = changelog.intent("token_minted", request_id=request_id,
                                  portfolio_id=portfolio_id, detail=detail, **grant_fields(body))
        request_id = None  # a mint made again is a new request
        call = replace(mint, json=body, request_id=change.request_id)
        try:
            answer = yield call
        except AMBIGUOUS as exc:
            portfolio = yield from find_flow(portfolio_id)
            orphan = next((t for t in portfolio.tokens
                           if t.name == grant.name and t.id not in before), None)
            if orphan is None:
                changelog.failed(change, exc, made_nothing=True)
                continue
            changelog.outcome(change, token=orphan, detail={**(detail or {}), **SECRET_LOST})
            yield from revoke_flow(portfolio_id, orphan.id, changelog, detail={
                "reconciliation": "nobody received its secret", "minted_by": change.request_id})
            log.warning("mint of token %r on %s had no answer (%s); the token it made "
                        "(%s) was revoked because nobody received its secret; minting again",
                        grant.name, portfolio_id, type(exc).__name__, orphan.id)
            continue
        except EtoroError as exc:
            changelog.failed(change, exc)
            raise
        token = read(answer, lambda body: minted_from(body, portfolio_id))
        changelog.outcome(change, token=token, detail=detail)
        return token
    raise APIConnectionError(f"minting token {grant.name!r} kept failing",
                             request_id=call.request_id or "-", operation=call.operation)


@dataclass(frozen=True)
class PortfolioRequest:
    name: str
    investment_usd: float
    description: str | None
    token: TokenRequest


def create_flow(req: PortfolioRequest, environment: str, cache: list[str],
                changelog: ChangeLog, request_id: str | None = None,
                consent: str | None = None) -> Flow[CreatedPortfolio]:
    allowed = yield from allowed_scopes_flow(cache)
    now = yield from now_flow(environment)
    body: dict[str, Any] = {"agentPortfolioName": req.name,
                            "investmentAmountInUsd": req.investment_usd,
                            **req.token.body(now, allowed)}
    if req.description is not None:
        body["agentPortfolioDescription"] = req.description
    asked = {"name": req.name, "investment_usd": req.investment_usd, **_consent(consent)}
    # What existed before: only a portfolio that appears after the call started can be ours.
    before = {p.id for p in (yield from list_flow())}
    for _ in range(3):
        change = changelog.intent("portfolio_created", request_id=request_id, detail=asked,
                                  **grant_fields(body))
        request_id = None  # a create made again is a new request
        call = Call.of("createAgentPortfolioV2", json=body, request_id=change.request_id)
        try:
            answer = yield call
        except AMBIGUOUS as exc:
            existing = next((p for p in (yield from list_flow())
                             if p.name.lower() == req.name.lower() and p.id not in before), None)
            if existing is None:
                changelog.failed(change, exc, made_nothing=True)
                continue
            # It was created; the first token's secret was lost with the answer.
            lost = existing.token(req.token.name)
            _record_created(changelog, change, existing, asked, lost,
                            {**_consent(consent), **SECRET_LOST})
            if lost is not None:
                yield from revoke_flow(existing.id, lost.id, changelog, detail={
                    "reconciliation": "nobody received its secret",
                    "minted_by": change.request_id})
            token = yield from mint_flow(existing.id, req.token, environment, cache, changelog,
                                         detail={**_consent(consent),
                                                 "reconciliation": "replaces the first token"})
            portfolio = yield from find_flow(existing.id)
            log.warning("create of %r had no answer; it had been made: returned it, with "
                        "its first token re-minted", req.name)
            return CreatedPortfolio(portfolio=portfolio, token=token)
        except EtoroError as exc:
            changelog.failed(change, exc)
            raise
        if answer.status == 207:
            portfolio = read(answer, lambda body: AgentPortfolio.model_validate(
                {**body, "userTokens": []}))
            _record_created(changelog, change, portfolio, asked, None, None)
            raise PartialCreateError(
                portfolio=portfolio, status=207, error_code="UserTokenNotCreated",
                error_message="the agent portfolio was created but its first token was not; "
                              "call mint_token() on this error to mint it",
                request_id=answer.request_id, operation=call.operation, body=answer.body)
        portfolio, token = read(answer, _created)
        _record_created(changelog, change, portfolio, asked, token, _consent(consent))
        return CreatedPortfolio(portfolio=portfolio, token=token)
    raise APIConnectionError(f"creating agent portfolio {req.name!r} kept failing",
                             request_id=call.request_id or "-", operation=call.operation)


def _created(body: Any) -> tuple[AgentPortfolio, MintedToken]:
    """A create's answer: the portfolio (its first token listed without the secret) and
    that token with its secret."""
    token_body = body["userTokens"][0]
    token = minted_from(token_body, body["agentPortfolioId"])
    public = {k: v for k, v in token_body.items() if k not in ("userToken", "scopes")}
    portfolio = AgentPortfolio.model_validate({
        **body, "createdAt": None, "userTokens": [{**public, "scopeNames": list(token.scopes)}]})
    return portfolio, token


def _record_created(changelog: ChangeLog, change: Change, portfolio: AgentPortfolio,
                    asked: Mapping[str, Any], token: UserToken | None,
                    token_detail: Mapping[str, Any] | None) -> None:
    """The outcomes of a create: the portfolio, and its first token if one was made."""
    changelog.outcome(change, portfolio_id=portfolio.id, detail={
        **asked, "mirror_id": portfolio.mirror_id, "first_token_created": token is not None})
    if token is not None:
        changelog.outcome(change, "token_minted", token=token, portfolio_id=portfolio.id,
                          detail=token_detail or None)


def delete_flow(portfolio_id: str, changelog: ChangeLog) -> Flow[None]:
    call = Call.of("deleteAgentPortfolio", {"agentPortfolioId": portfolio_id})
    change = changelog.intent("portfolio_deleted", portfolio_id=portfolio_id)
    yield from change_flow(changelog, change, call, _gone_before)
    changelog.outcome(change)


def update_flow(portfolio_id: str, token_id: str, changes: dict[str, Any],
                environment: str, cache: list[str], changelog: ChangeLog,
                consent: str | None = None) -> Flow[None]:
    body: dict[str, Any] = {}
    if "scopes" in changes:
        body["scopeNames"] = rules.scopes(changes["scopes"], (yield from allowed_scopes_flow(cache)))
    if "ips_whitelist" in changes:
        body["ipsWhitelist"] = rules.ipv4_whitelist(changes["ips_whitelist"] or [])
    if "expires_at" in changes:
        now = yield from now_flow(environment)
        body["expiresAt"] = rules.expiry(changes["expires_at"], now)
    if not body:
        raise InvalidInputError("changes", "give at least one of scopes, ips_whitelist, "
                                               "expires_at")
    call = Call.of("updateAgentPortfolioUserTokenV2",
                   {"agentPortfolioId": portfolio_id, "userTokenId": token_id}, json=body)
    detail = {**_changed(token_id, changes), **_consent(consent)}
    change = changelog.intent("token_updated", portfolio_id=portfolio_id, token_id=token_id,
                              detail=detail)
    yield from change_flow(changelog, change, call, _unchanged_after_retry)
    changelog.outcome(change, detail=detail)


def _unchanged_after_retry(exc: EtoroError) -> bool:
    """NoChangesDetected after an attempt that got no answer: that attempt made them."""
    return (isinstance(exc, BadRequestError) and exc.ambiguous_before
            and exc.error_code == "NoChangesDetected")


RAW_CHANGES = {
    "createAgentPortfolio": "portfolio_created", "createAgentPortfolioV2": "portfolio_created",
    "createAgentPortfolioUserToken": "token_minted",
    "createAgentPortfolioUserTokenV2": "token_minted",
    "updateAgentPortfolioUserToken": "token_updated",
    "updateAgentPortfolioUserTokenV2": "token_updated",
    "deleteAgentPortfolioUserToken": "token_revoked", "deleteAgentPortfolio": "portfolio_deleted",
}
"""The operations that change delegation, by the lifecycle event each one records."""
Event = tuple[str, dict[str, Any]]
VIA_CALL = {"via": "client.call"}


def raw_call_flow(call: Call, path_params: Mapping[str, object],
                  changelog: ChangeLog) -> Flow[Answer]:
    """A raw ``client.call``; one that changes delegation is recorded as the typed methods
    record theirs (an intent before, its outcomes after), so the audit sees delegation
    changed from the playground too. Nothing reconciles here: a create or mint whose answer
    was lost stays an unfinished change."""
    kind = RAW_CHANGES.get(call.operation)
    if kind is None:
        return (yield call)
    sent = call.json if isinstance(call.json, dict) else {}
    grant = grant_fields(sent) if kind in ("portfolio_created", "token_minted") else {}
    tid = str(path_params.get("userTokenId") or "") or None
    change = changelog.intent(kind, request_id=call.request_id, token_id=tid,
                              portfolio_id=str(path_params.get("agentPortfolioId") or "") or None,
                              detail=VIA_CALL, **grant)
    answer = yield from change_flow(changelog, change, call)
    assert answer is not None
    for made, fields in (yield from raw_change_flow(call, path_params, answer)):
        changelog.outcome(change, made, **fields)
    return answer


def raw_change_flow(call: Call, path_params: Mapping[str, object],
                    answer: Answer) -> Flow[list[Event]]:
    """The lifecycle events a raw ``client.call`` made, as the typed methods record them
    (a token minted there is known by its fingerprint). An update is recorded as the token
    stood after it (one read), whatever the request's shape (v1 scope ids or v2 names)."""
    kind = RAW_CHANGES.get(call.operation)
    if kind is None or not 200 <= answer.status < 300:
        return []
    pid = read(answer, lambda body: str(path_params.get("agentPortfolioId")
                                        or (body.get("agentPortfolioId") if isinstance(body, dict)
                                            else None) or ""))
    tid = str(path_params.get("userTokenId") or "") or None
    if kind == "token_updated":
        now = (yield from find_flow(pid)).token_by_id(tid)
        state = {} if now is None else {
            "scopes": list(now.scopes), "ips_whitelist": list(now.ips_whitelist),
            "expires_at": now.expires_at.isoformat() if now.expires_at else None}
        return [(kind, {"portfolio_id": pid, "token_id": tid,
                        "detail": {"token_id": tid, **state, **VIA_CALL}})]
    if kind in ("portfolio_created", "token_minted"):
        return read(answer, lambda body: _raw_grants(kind, call, pid, body))
    return [(kind, {"portfolio_id": pid, "token_id": tid})]


def _raw_grants(kind: str, call: Call, pid: str, body: Any) -> list[Event]:
    """The events of a raw create or mint, read from its answer (inside ``read``: an
    answer of the wrong shape raises, and the change stays unfinished in the ledger)."""
    via: dict[str, Any] = dict(VIA_CALL)
    if kind == "token_minted":
        return [(kind, {"token": minted_from(body, pid), "portfolio_id": pid, "detail": via})]
    if not isinstance(body.get("agentPortfolioId"), str):  # a create names what it made
        raise KeyError("agentPortfolioId")
    tokens = [minted_from(t, pid) for t in body.get("userTokens", []) if t.get("userToken")]
    sent = call.json if isinstance(call.json, dict) else {}
    created = {"name": body.get("agentPortfolioName"), "mirror_id": body.get("mirrorId"),
               "investment_usd": sent.get("investmentAmountInUsd"),
               "first_token_created": bool(tokens), **via}
    return [("portfolio_created", {"portfolio_id": pid, "detail": created}),
            *(("token_minted", {"token": t, "portfolio_id": pid, "detail": via})
              for t in tokens)]


@dataclass(frozen=True)
class Rotation:
    """A replacement token, minted; ``confirm()`` revokes the old one once the agent uses
    the new one (from an ``AsyncEtoroClient``, ``confirm()`` returns an awaitable)."""

    old: UserToken
    new: MintedToken
    _confirm: Callable[[], Any] = field(repr=False)

    def confirm(self) -> Any:
        return self._confirm()


def rotate_flow(portfolio_id: str, token_id: str, new_name: str | None, environment: str,
                cache: list[str], changelog: ChangeLog) -> Flow[tuple[UserToken, MintedToken]]:
    portfolio = yield from find_flow(portfolio_id)
    old = portfolio.token_by_id(token_id)
    if old is None:
        raise _local_not_found(f"user token {token_id} not found in {portfolio_id}")
    now = yield from now_flow(environment)
    lifetime = (old.expires_at - old.created_at
                if old.expires_at is not None and old.created_at is not None else None)
    name = new_name or f"{old.name[:40]}-rot-{now:%Y%m%d%H%M%S}"
    grant = token_request(name, old.scopes, old.ips_whitelist or None, lifetime)
    new = yield from mint_flow(portfolio_id, grant, environment, cache, changelog,
                               detail={"rotates": old.id})
    return old, new


# -- the resources ------------------------------------------------------------------------
class AgentPortfolios(PolicyControls):
    """``client.agent_portfolios``: create, list and delete portfolios; mint, update,
    rotate and revoke their tokens; set the agents' risk policy, pause, resume and stop
    them (``PolicyControls``). Owner only: an agent's token gets 403."""

    _flows = PortfolioFlows(find_flow, revoke_flow)

    def __init__(self, client: Runner) -> None:
        self._client = client

    def list(self) -> builtins.list[AgentPortfolio]:
        return self._client.run_flow(list_flow())

    def get(self, portfolio_id: str) -> AgentPortfolio:
        return self._client.run_flow(find_flow(portfolio_id))

    def allowed_scopes(self) -> builtins.list[str]:
        return self._client.run_flow(allowed_scopes_flow(self._client.scope_cache))

    def create(self, name: str, investment_usd: float, *, scopes: Iterable[str],
               token_name: str = "agent", description: str | None = None,
               ips_whitelist: Iterable[str] | None = None,
               expires_at: datetime | timedelta | None = None,
               request_id: str | None = None, consent: str | None = None) -> CreatedPortfolio:
        """A new agent portfolio funded with ``investment_usd`` of the owner's real balance,
        and its first token (the secret is in ``.token.secret``, shown only here).
        ``consent`` is the confirmation the owner gave, recorded with the lifecycle event."""
        req = portfolio_request(name, investment_usd, description, token_name, scopes,
                                ips_whitelist, expires_at)
        c = self._client
        try:
            return c.run_flow(create_flow(req, c.environment, c.scope_cache, c.changelog,
                                      request_id, consent))
        except PartialCreateError as exc:
            portfolio_id = exc.portfolio.id
            raise exc.bind(lambda: self.mint_token(portfolio_id, req.token.name,
                                                   scopes=req.token.scopes,
                                                   ips_whitelist=req.token.ips_whitelist,
                                                   expires_at=req.token.expires_at,
                                                   consent=consent)) from None

    def delete(self, portfolio_id: str) -> None:
        """Delete: revokes every token, closes the copy mirror, credits its value back."""
        self._client.run_flow(delete_flow(portfolio_id, self._client.changelog))

    def mint_token(self, portfolio_id: str, name: str, *, scopes: Iterable[str],
                   ips_whitelist: Iterable[str] | None = None,
                   expires_at: datetime | timedelta | None = None,
                   request_id: str | None = None, consent: str | None = None) -> MintedToken:
        c = self._client
        grant = token_request(name, scopes, ips_whitelist, expires_at)
        return c.run_flow(mint_flow(portfolio_id, grant, c.environment, c.scope_cache,
                                c.changelog, request_id, _consent(consent) or None))

    def update_token(self, portfolio_id: str, token_id: str, *, consent: str | None = None,
                     **changes: Any) -> None:
        """Change ``scopes``, ``ips_whitelist`` (``[]`` clears it) or ``expires_at``
        (``None`` removes the expiry); only the names given are sent."""
        _check_changes(changes)
        c = self._client
        c.run_flow(update_flow(portfolio_id, token_id, changes, c.environment, c.scope_cache,
                           c.changelog, consent))

    def revoke_token(self, portfolio_id: str, token_id: str) -> None:
        self._client.run_flow(revoke_flow(portfolio_id, token_id, self._client.changelog))

    def rotate_token(self, portfolio_id: str, token_id: str, *,
                     new_name: str | None = None) -> Rotation:
        """Mint a replacement with the same scopes, whitelist and lifetime; the old token
        stays live until ``rotation.confirm()``, so the agent switches without downtime."""
        c = self._client
        old, new = c.run_flow(rotate_flow(portfolio_id, token_id, new_name, c.environment,
                                      c.scope_cache, c.changelog))
        return Rotation(old, new, lambda: self.revoke_token(portfolio_id, old.id))


class AsyncAgentPortfolios(AsyncPolicyControls):
    """The ``AsyncEtoroClient`` twin of ``AgentPortfolios``."""

    _flows = AgentPortfolios._flows

    def __init__(self, client: AsyncRunner) -> None:
        self._client = client

    async def list(self) -> builtins.list[AgentPortfolio]:
        return await self._client.run_flow(list_flow())

    async def get(self, portfolio_id: str) -> AgentPortfolio:
        return await self._client.run_flow(find_flow(portfolio_id))

    async def allowed_scopes(self) -> builtins.list[str]:
        return await self._client.run_flow(allowed_scopes_flow(self._client.scope_cache))

    async def create(self, name: str, investment_usd: float, *, scopes: Iterable[str],
                     token_name: str = "agent", description: str | None = None,
                     ips_whitelist: Iterable[str] | None = None,
                     expires_at: datetime | timedelta | None = None,
                     request_id: str | None = None,
                     consent: str | None = None) -> CreatedPortfolio:
        req = portfolio_request(name, investment_usd, description, token_name, scopes,
                                ips_whitelist, expires_at)
        c = self._client
        try:
            return await c.run_flow(create_flow(req, c.environment, c.scope_cache, c.changelog,
                                            request_id, consent))
        except PartialCreateError as exc:
            portfolio_id = exc.portfolio.id

            def mint() -> Awaitable[MintedToken]:
                return self.mint_token(portfolio_id, req.token.name,
                                       scopes=req.token.scopes,
                                       ips_whitelist=req.token.ips_whitelist,
                                       expires_at=req.token.expires_at, consent=consent)
            raise exc.bind(mint) from None

    async def delete(self, portfolio_id: str) -> None:
        await self._client.run_flow(delete_flow(portfolio_id, self._client.changelog))

    async def mint_token(self, portfolio_id: str, name: str, *, scopes: Iterable[str],
                         ips_whitelist: Iterable[str] | None = None,
                         expires_at: datetime | timedelta | None = None,
                         request_id: str | None = None,
                         consent: str | None = None) -> MintedToken:
        c = self._client
        grant = token_request(name, scopes, ips_whitelist, expires_at)
        return await c.run_flow(mint_flow(portfolio_id, grant, c.environment, c.scope_cache,
                                      c.changelog, request_id, _consent(consent) or None))

    async def update_token(self, portfolio_id: str, token_id: str, *,
                           consent: str | None = None, **changes: Any) -> None:
        _check_changes(changes)
        c = self._client
        await c.run_flow(update_flow(portfolio_id, token_id, changes, c.environment,
                                 c.scope_cache, c.changelog, consent))

    async def revoke_token(self, portfolio_id: str, token_id: str) -> None:
        await self._client.run_flow(revoke_flow(portfolio_id, token_id, self._client.changelog))

    async def rotate_token(self, portfolio_id: str, token_id: str, *,
                           new_name: str | None = None) -> Rotation:
        c = self._client
        old, new = await c.run_flow(rotate_flow(portfolio_id, token_id, new_name, c.environment,
                                            c.scope_cache, c.changelog))
        return Rotation(old, new, lambda: self.revoke_token(portfolio_id, old.id))


def portfolio_request(name: str, investment_usd: float, description: str | None,
                      token_name: str, scopes: Iterable[str],
                      ips_whitelist: Iterable[str] | None,
                      expires_at: datetime | timedelta | None) -> PortfolioRequest:
    """A create's arguments, checked."""
    return PortfolioRequest(rules.portfolio_name(name),
                            rules.positive(investment_usd, "investment_usd"), description,
                            token_request(token_name, scopes, ips_whitelist, expires_at))


_CHANGES = {"scopes", "ips_whitelist", "expires_at"}


def _consent(consent: str | None) -> dict[str, str]:
    return {} if consent is None else {"consent": consent}


def _changed(token_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    """What an update changed, as plain JSON."""
    out: dict[str, Any] = {"token_id": token_id}
    for key, value in changes.items():
        if isinstance(value, timedelta):
            value = f"+{value.total_seconds():g}s"
        elif isinstance(value, datetime):
            value = value.isoformat()
        elif value is not None and not isinstance(value, str):
            value = list(value)
        out[key] = value
    return out


def _check_changes(changes: dict[str, Any]) -> None:
    unknown = set(changes) - _CHANGES
    if unknown:
        raise InvalidInputError(", ".join(sorted(unknown)),
                                    "not a token setting (scopes, ips_whitelist, expires_at)")
    if "ips_whitelist" in changes and changes["ips_whitelist"] is not None:
        rules.ipv4_whitelist(changes["ips_whitelist"])
    if "scopes" in changes:
        rules.scopes(changes["scopes"])

