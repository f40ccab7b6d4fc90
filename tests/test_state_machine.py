"""A stateful property test of agent portfolios and their user tokens.

Hypothesis drives a real sandbox over its socket through random sequences of: creating
agent portfolios (sometimes with invalid input), minting, updating and revoking user
tokens (sometimes duplicates, sometimes past the per-portfolio cap), deleting portfolios,
using tokens as an agent, and advancing the simulated clock. Every answer's status (and
errorCode where it matters) is checked against a plain Python model of the rules kept
here, independently of the sandbox's code; after every step the portfolio/token listing
and the owner's real credit must match the model.

Rules the model follows (the contract, plus the choices docs/sandbox.md documents where
the contract is silent):

* Portfolio names are 6-10 characters of letters, digits, ``-`` and ``_``, unique among
  the owner's live portfolios ignoring case; a deleted portfolio frees its name.
* The investment is deducted from the owner's real credit (at least the minimum, at most
  the credit); deleting a portfolio with no trades credits it back in full.
* A portfolio holds at most ``max_tokens_per_portfolio`` unrevoked tokens (expired ones
  included: they still exist, are listed and can be revoked or extended); token names
  are unique among a portfolio's unrevoked tokens. A request that is both a duplicate
  name and over the cap answers 409 (the contract doesn't order the two).
* A token is rejected (401) once revoked, once its portfolio is deleted, or from its
  ``expiresAt`` on; an IP whitelist without the caller's address answers 403; a missing
  scope answers 403 ``InsufficientScope``; agent tokens cannot manage portfolios (403).
* A PATCH that provides nothing, or only values equal to the token's, answers 400
  ``NoChangesDetected``; scopes and IP whitelists are sets, so a reordering is no change;
  ``expiresAt: null`` removes the expiry and ``ipsWhitelist: []`` the whitelist. Input is
  validated before it is compared: re-sending a passed expiry is 400 ``ValidationFailed``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from etoro_nb.sandbox import SandboxConfig, SandboxServer, start
from tests.helpers import ALL_SCOPES, DEMO_READ, DEMO_WRITE, REAL_READ, REAL_WRITE

START = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
MAX_TOKENS = 3
OWNER_REAL_CENTS = 100_000_00  # SandboxConfig.owner_real_balance
MIN_INVESTMENT_CENTS = 200_00  # SandboxConfig.min_investment
VIRTUAL_BALANCE = 10_000.0  # SandboxConfig.virtual_balance
CLIENT_IP = "127.0.0.1"
OTHER_IP = "10.1.2.3"

# A few names, two of which differ only in case, so duplicates come up often.
PORTFOLIO_NAMES = ["agent01", "AGENT01", "alpha_1", "bravo-22", "charlie3", "d4d4d4d4d4"]
BAD_LENGTH_NAMES = ["", "abc", "abcde", "abcdefghijk", "a" * 20]
TOKEN_NAMES = ["bot", "bot-2", "reader", "writer"]
INVESTMENTS_CENTS = [200_00, 200_01, 500_00, 2_000_00, 2_345_67, 15_000_00, 40_000_00]
EXPIRY_OFFSETS = [60, 90.25, 300, 1800, 3600, 4 * 3600]  # seconds ahead of now
ISO_STYLES = ["Z", "Z", "+00:00", "+02:00", "naive"]
CLOCK_STEPS = [1, 59, 60, 300, 1800, 3600, 3 * 3600]
UNKNOWN_SCOPE = "etoro-public:trade.demo:admin"
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

scope_sets = st.sets(st.sampled_from(ALL_SCOPES), min_size=1).map(
    lambda s: sorted(s, key=ALL_SCOPES.index)
)
ip_lists = st.sampled_from([None, None, [], [CLIENT_IP], [OTHER_IP], [OTHER_IP, CLIENT_IP],
                            [CLIENT_IP, OTHER_IP]])


def iso(at: datetime, style: str = "Z") -> str:
    """``at`` as ISO 8601 in one of the forms a client may send (all the same instant):
    ``Z``, ``+00:00``, ``+02:00`` (another offset) or ``naive`` (no offset: UTC)."""
    if style == "+02:00":
        local = at.astimezone(timezone(timedelta(hours=2)))
        return local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}+02:00"
    text = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}"
    return text + {"Z": "Z", "+00:00": "+00:00", "naive": ""}[style]


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class MToken:
    token_id: str
    portfolio_id: str
    secret: str
    name: str
    scopes: frozenset[str]
    expires_at: datetime | None
    ips: tuple[str, ...]
    created_at: datetime
    revoked: bool = False


@dataclass
class MPortfolio:
    portfolio_id: str
    name: str
    investment_cents: int
    created_at: datetime
    deleted: bool = False


@dataclass
class Model:
    """What the sandbox should hold, in plain Python."""

    now: datetime = START
    balance_cents: int = OWNER_REAL_CENTS
    portfolios: dict[str, MPortfolio] = field(default_factory=dict)  # ever created
    tokens: dict[str, MToken] = field(default_factory=dict)  # ever minted

    def live_portfolios(self) -> list[MPortfolio]:
        return [p for p in self.portfolios.values() if not p.deleted]

    def live_tokens(self, portfolio_id: str) -> list[MToken]:
        return [t for t in self.tokens.values()
                if t.portfolio_id == portfolio_id and not t.revoked]

    def name_taken(self, name: str) -> bool:
        return any(p.name.lower() == name.lower() for p in self.live_portfolios())

    def expired(self, token: MToken) -> bool:
        return token.expires_at is not None and self.now >= token.expires_at

    def use_outcome(self, token: MToken | None, needs: frozenset[str] | None,
                    ok_status: int) -> tuple[int, str | None]:
        """The answer to an agent call with ``token``; ``needs`` is any-of the scopes, or
        None for an owner-only operation."""
        if token is None or token.revoked or self.expired(token):
            return 401, "Unauthorized"
        if token.ips and CLIENT_IP not in token.ips:
            return 403, "Forbidden"
        if needs is None:
            return 403, "Forbidden"
        if not needs & token.scopes:
            return 403, "InsufficientScope"
        return ok_status, None


# Agent calls: (method, path, any-of scopes or None for owner-only, status when allowed).
AGENT_CALLS: list[tuple[str, str, frozenset[str] | None, int]] = [
    ("GET", "/api/v1/trading/info/demo/portfolio", frozenset({DEMO_READ}), 200),
    ("GET", "/api/v1/trading/info/portfolio", frozenset({REAL_READ}), 200),
    ("GET", "/api/v1/trading/info/real/pnl", frozenset({REAL_READ}), 200),
    ("DELETE", "/api/v2/trading/execution/demo/orders/999999", frozenset({DEMO_WRITE}), 404),
    ("DELETE", "/api/v2/trading/execution/orders/999999", frozenset({REAL_WRITE}), 404),
    ("GET", "/api/v1/me", frozenset({DEMO_READ, REAL_READ}), 200),
    ("GET", "/api/v1/agent-portfolios", None, 403),
]


class AgentPortfolioMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.server: SandboxServer = start(SandboxConfig(
            clock=START, max_tokens_per_portfolio=MAX_TOKENS, read_limit=10**6,
            write_limit=10**6,
        ))
        creds = self.server.credentials
        self.api_key, self.owner_key = creds.api_key, creds.user_key
        self.http = httpx.Client(base_url=self.server.base_url, timeout=30)
        self.model = Model()

    def teardown(self) -> None:
        self.http.close()
        self.server.stop()

    # -- HTTP ------------------------------------------------------------------------------
    def call(self, method: str, path: str, *, json: Any = None,
             user_key: str | None = None) -> httpx.Response:
        request_id = str(uuid.uuid4())
        headers = {"x-api-key": self.api_key, "x-user-key": user_key or self.owner_key,
                   "x-request-id": request_id}
        r = self.http.request(method, path, json=json, headers=headers)
        assert r.headers.get("x-request-id") == request_id, "x-request-id not echoed"
        return r

    @staticmethod
    def expect(r: httpx.Response, status: int, code: str | None = None, why: str = "") -> None:
        where = f"{r.request.method} {r.request.url.path}"
        event(f"{r.request.method} {UUID_RE.sub('{id}', r.request.url.path)} -> {status} "
              f"{code or ''} {why}".rstrip())
        assert r.status_code == status, (
            f"{where}: expected {status} {code or ''}, got {r.status_code}: {r.text}")
        if code is not None:
            assert r.json().get("errorCode") == code, (
                f"{where}: expected errorCode {code}, got {r.text}")
        if status == 204:
            assert r.content == b"", f"{where}: a 204 with a body: {r.text}"
        if "/trading/execution/" in where and status >= 400:  # ProblemDetails there
            body = r.json()
            assert body.get("status") == status and body.get("title") == code, r.text

    # -- choosing things -------------------------------------------------------------------
    def pick_portfolio(self, data: st.DataObject,
                       live_share: int = 8) -> tuple[str, MPortfolio | None]:
        """Mostly (``live_share`` in 10) a live portfolio; otherwise a deleted one or an
        unknown id."""
        m = self.model
        pool = m.live_portfolios()
        if not pool or data.draw(st.integers(0, 9), label="portfolio kind") >= live_share:
            pool = [p for p in m.portfolios.values() if p.deleted]
            if not pool or data.draw(st.booleans(), label="unknown portfolio?"):
                return str(uuid.uuid4()), None
        p = data.draw(st.sampled_from(pool), label="portfolio")
        return p.portfolio_id, p

    def pick_token(self, data: st.DataObject, prefer: Callable[[MToken], bool] | None = None
                   ) -> tuple[str, str, MToken | None]:
        """(portfolio id, token id, token): mostly an unexpired unrevoked token, else an
        expired one, a revoked one (or of a deleted portfolio) or an unknown id. With
        ``prefer``, a live token it accepts when there is one."""
        m = self.model
        preferred = [t for t in m.tokens.values() if not t.revoked and prefer and prefer(t)]
        if preferred and data.draw(st.integers(0, 4), label="preferred token?") > 0:
            t = data.draw(st.sampled_from(preferred), label="token")
            return t.portfolio_id, t.token_id, t
        kind = data.draw(st.sampled_from(["valid"] * 5 + ["expired"] * 2 + ["revoked"] * 2
                                         + ["unknown"]), label="token kind")
        groups = {
            "valid": [t for t in m.tokens.values() if not t.revoked and not m.expired(t)],
            "expired": [t for t in m.tokens.values() if not t.revoked and m.expired(t)],
            "revoked": [t for t in m.tokens.values() if t.revoked],
        }
        pool = groups.get(kind) or groups["valid"]
        if kind == "unknown" or not pool:
            pid, _ = self.pick_portfolio(data)
            return pid, str(uuid.uuid4()), None
        t = data.draw(st.sampled_from(pool), label="token")
        return t.portfolio_id, t.token_id, t

    def expiry(self, data: st.DataObject) -> tuple[str, datetime | None]:
        """('absent'|'null'|'future', when) for a valid expiresAt."""
        kinds = ["absent", "null", "future", "future", "future"]
        kind = data.draw(st.sampled_from(kinds), label="expiry kind")
        if kind == "future":
            ahead = data.draw(st.sampled_from(EXPIRY_OFFSETS), label="expires in (s)")
            return kind, self.model.now + timedelta(seconds=ahead)
        return kind, None

    @staticmethod
    def when(data: st.DataObject, at: datetime | None) -> str | None:
        if at is None:
            return None
        return iso(at, data.draw(st.sampled_from(ISO_STYLES), label="time style"))

    # -- rules -----------------------------------------------------------------------------
    @initialize(data=st.data())
    def start_with_a_portfolio(self, data: st.DataObject) -> None:
        self.check_listing()
        self.check_owner_credit()
        self.create(data, fault="none")

    @rule(data=st.data())
    def create_portfolio(self, data: st.DataObject) -> None:
        fault = data.draw(st.sampled_from(["none"] * 6 + [
            "name_length", "name_taken", "below_minimum", "over_balance", "all_in",
            "non_positive", "past_expiry"]), label="fault")
        self.create(data, fault)

    def create(self, data: st.DataObject, fault: str) -> None:
        """POST /api/v2/agent-portfolios with at most the given fault on purpose (the
        expected answer is computed from the values actually sent)."""
        m = self.model
        live = m.live_portfolios()
        if fault == "name_length":
            name = data.draw(st.sampled_from(BAD_LENGTH_NAMES), label="name")
        elif fault == "name_taken" and live:
            taken = data.draw(st.sampled_from(live), label="taken").name
            name = data.draw(st.sampled_from([taken, taken.swapcase(), taken.upper()]),
                             label="name")
        else:
            free = [n for n in PORTFOLIO_NAMES if not m.name_taken(n)]
            from_pool = bool(free) and data.draw(st.booleans(), label="name from pool?")
            name = data.draw(st.sampled_from(free) if from_pool
                             else st.from_regex(r"[A-Za-z0-9_-]{6,10}", fullmatch=True),
                             label="name")
        if fault == "below_minimum":
            cents = data.draw(st.sampled_from([1, 100_00, 199_99]), label="cents")
        elif fault == "over_balance":
            cents = m.balance_cents + data.draw(st.sampled_from([1, 100, 50_000_00]),
                                                label="over by (cents)")
        elif fault == "all_in":
            cents = m.balance_cents
        elif fault == "non_positive":
            cents = data.draw(st.sampled_from([0, -100_00]), label="cents")
        else:
            cents = data.draw(st.sampled_from(INVESTMENTS_CENTS), label="cents")
        scopes = data.draw(scope_sets, label="scopes")
        token_name = data.draw(st.sampled_from(TOKEN_NAMES), label="token name")
        exp_kind, expires_at = self.expiry(data)
        if fault == "past_expiry":
            exp_kind, expires_at = "past", m.now - timedelta(
                seconds=data.draw(st.sampled_from([0, 1, 3600]), label="ago (s)"))
        ips = data.draw(ip_lists, label="ips")
        body: dict[str, Any] = {"agentPortfolioName": name,
                                "investmentAmountInUsd": cents / 100,
                                "userTokenName": token_name, "scopeNames": scopes}
        if exp_kind != "absent":
            body["expiresAt"] = self.when(data, expires_at)
        if ips is not None:
            body["ipsWhitelist"] = ips

        problems = [why for why, bad in [
            ("name length", not 6 <= len(name) <= 10),
            ("name taken", m.name_taken(name)),
            ("below minimum", cents < MIN_INVESTMENT_CENTS),
            ("over balance", cents > m.balance_cents),
            ("past expiry", exp_kind == "past"),
        ] if bad]
        r = self.call("POST", "/api/v2/agent-portfolios", json=body)
        if problems:
            return self.expect(r, 400, "ValidationFailed", "/".join(problems))
        self.expect(r, 201)
        out = r.json()
        assert out["agentPortfolioName"] == name
        assert out["agentPortfolioVirtualBalance"] == VIRTUAL_BALANCE
        [tok] = out["userTokens"]
        assert {s["name"] for s in tok["scopes"]} == set(scopes)
        assert tok["userTokenName"] == token_name
        assert (parse_iso(tok["expiresAt"]) if "expiresAt" in tok else None) == expires_at
        pid = out["agentPortfolioId"]
        assert pid not in m.portfolios
        assert tok["userTokenId"] not in m.tokens
        m.portfolios[pid] = MPortfolio(pid, name, cents, m.now)
        assert set(tok["ipsWhitelist"]) == set(ips or [])
        m.tokens[tok["userTokenId"]] = MToken(
            tok["userTokenId"], pid, tok["userToken"], token_name, frozenset(scopes),
            expires_at, tuple(dict.fromkeys(ips or [])), m.now)
        m.balance_cents -= cents

    @rule(data=st.data())
    def mint_token(self, data: st.DataObject) -> None:
        pid, portfolio = self.pick_portfolio(data)
        # At most one thing wrong with the body, so the expected error is unambiguous.
        fault = data.draw(st.sampled_from(["none"] * 8 + ["duplicate_name"] * 2 + [
            "blank_name", "long_name", "empty_scopes", "unknown_scope", "past_expiry"]),
            label="fault")
        self.mint(data, pid, portfolio, fault)

    @rule(data=st.data())
    def mint_on_fullest_portfolio(self, data: st.DataObject) -> None:
        """A valid mint on the live portfolio with the most tokens, to reach the cap."""
        live = self.model.live_portfolios()
        if not live:
            return self.mint_token(data)
        portfolio = max(live, key=lambda p: len(self.model.live_tokens(p.portfolio_id)))
        fault = data.draw(st.sampled_from(["none", "none", "duplicate_name"]), label="fault")
        self.mint(data, portfolio.portfolio_id, portfolio, fault)

    def mint(self, data: st.DataObject, pid: str, portfolio: MPortfolio | None,
             fault: str) -> None:
        m = self.model
        used = sorted({t.name for t in m.live_tokens(pid)})
        free = [n for n in TOKEN_NAMES if n not in used]
        if fault == "duplicate_name" and used:
            name = data.draw(st.sampled_from(used), label="token name")
        else:  # with MAX_TOKENS < len(TOKEN_NAMES) a free name is always there
            name = data.draw(st.sampled_from(free or TOKEN_NAMES), label="token name")
        if fault == "blank_name":
            name = "   "
        elif fault == "long_name":
            name = "x" * 65
        scopes = data.draw(scope_sets, label="scopes")
        if fault == "empty_scopes":
            scopes = []
        elif fault == "unknown_scope":
            scopes = [*scopes, UNKNOWN_SCOPE]
        exp_kind, expires_at = self.expiry(data)
        if fault == "past_expiry":  # expiresAt must be strictly in the future
            exp_kind, expires_at = "past", m.now - timedelta(
                seconds=data.draw(st.sampled_from([0, 1, 3600]), label="ago (s)"))
        ips = data.draw(ip_lists, label="ips")
        body: dict[str, Any] = {"userTokenName": name, "scopeNames": scopes}
        if exp_kind != "absent":
            body["expiresAt"] = self.when(data, expires_at)
        if ips is not None:
            body["ipsWhitelist"] = ips
        r = self.call("POST", f"/api/v2/agent-portfolios/{pid}/user-tokens", json=body)

        if portfolio is None or portfolio.deleted:
            return self.expect(r, 404, "NotFound", "deleted" if portfolio else "unknown")
        if fault in ("blank_name", "long_name", "past_expiry"):
            return self.expect(r, 400, "ValidationFailed", fault)
        if fault == "unknown_scope":  # v2 answers 403 for a scope name not allowed
            return self.expect(r, 403, "ScopeNameNotAllowed")
        if fault == "empty_scopes":
            return self.expect(r, 400, "ScopeIdsRequired")
        live = m.live_tokens(pid)
        some_expired = "with expired" if any(m.expired(t) for t in live) else ""
        if any(t.name == name for t in live):
            return self.expect(r, 409, "UserKeyNameAlreadyExists", some_expired)
        if len(live) >= MAX_TOKENS:
            return self.expect(r, 429, "MaxUserTokensExceeded", some_expired)
        self.expect(r, 201, why=some_expired)
        out = r.json()
        assert out["userTokenName"] == name
        assert set(out["scopeNames"]) == set(scopes)
        assert (parse_iso(out["expiresAt"]) if out["expiresAt"] else None) == expires_at
        assert parse_iso(out["createdAt"]) == m.now
        assert out["userToken"] not in {t.secret for t in m.tokens.values()}
        assert out["userTokenId"] not in m.tokens
        m.tokens[out["userTokenId"]] = MToken(
            out["userTokenId"], pid, out["userToken"], name, frozenset(scopes), expires_at,
            tuple(dict.fromkeys(ips or [])), m.now)

    @rule(data=st.data())
    def update_token(self, data: st.DataObject) -> None:
        m = self.model
        kind = data.draw(st.sampled_from(
            ["empty", "scopes", "scopes", "same_scopes", "expiry", "expiry_and_scopes",
             "clear_expiry", "same_expiry", "past_expiry", "empty_scopes", "unknown_scope",
             "ips", "ips", "same_ips_reordered", "same_ips_reordered"]),
            label="update kind")
        pid, tid, token = self.pick_token(
            data, prefer=(lambda t: len(t.ips) > 1) if kind == "same_ips_reordered" else None)
        scopes = data.draw(scope_sets, label="scopes")
        current_scopes = token.scopes if token else frozenset(scopes)
        current_expiry = token.expires_at if token else None
        body: dict[str, Any] = {}
        new_scopes: frozenset[str] | None = None
        new_expiry: tuple[datetime | None] | None = None  # a 1-tuple when given
        new_ips: frozenset[str] | None = None
        if kind == "ips":  # [] removes the whitelist
            ips = data.draw(st.sampled_from([[], [CLIENT_IP], [OTHER_IP], [CLIENT_IP, OTHER_IP]]),
                            label="ips")
            body["ipsWhitelist"] = ips
            new_ips = frozenset(ips)
        elif kind == "same_ips_reordered":  # a whitelist is a set: its order is no change
            current = list(token.ips) if token else []
            body["ipsWhitelist"] = [*reversed(current), *current[:1]]
            new_ips = frozenset(current)
        if kind in ("scopes", "expiry_and_scopes"):
            body["scopeNames"] = scopes
            new_scopes = frozenset(scopes)
        elif kind == "same_scopes":
            # the same set, in another order and with a repeat
            same = sorted(current_scopes, reverse=True)
            body["scopeNames"] = [*same, same[0]]
            new_scopes = current_scopes
        elif kind == "empty_scopes":
            body["scopeNames"] = []
        elif kind == "unknown_scope":
            body["scopeNames"] = [*scopes, UNKNOWN_SCOPE]
        if kind in ("expiry", "expiry_and_scopes"):
            ahead = data.draw(st.sampled_from(EXPIRY_OFFSETS), label="expires in (s)")
            at = m.now + timedelta(seconds=ahead)
            body["expiresAt"] = self.when(data, at)
            new_expiry = (at,)
        elif kind == "clear_expiry":
            body["expiresAt"] = None
            new_expiry = (None,)
        elif kind == "same_expiry":
            body["expiresAt"] = self.when(data, current_expiry)
            new_expiry = (current_expiry,)
        elif kind == "past_expiry":
            body["expiresAt"] = self.when(data, m.now - timedelta(seconds=1))
        r = self.call("PATCH", f"/api/v2/agent-portfolios/{pid}/user-tokens/{tid}", json=body)

        if token is None:
            return self.expect(r, 404, "NotFound", "unknown token")
        if token.revoked:  # revoked, or its portfolio deleted
            deleted = m.portfolios[token.portfolio_id].deleted
            return self.expect(r, 404, "NotFound", "deleted" if deleted else "revoked")
        if kind == "empty":
            return self.expect(r, 400, "NoChangesDetected", kind)
        if kind == "unknown_scope":  # v2 answers 403 for a scope name not allowed
            return self.expect(r, 403, "ScopeNameNotAllowed")
        if kind == "empty_scopes":
            return self.expect(r, 400, "ScopeIdsRequired")
        if kind == "past_expiry":
            return self.expect(r, 400, "ValidationFailed", kind)
        if kind == "same_expiry" and m.expired(token):
            # the token's own (passed) expiry is not a valid new one: the input is
            # validated before it is compared with the token
            return self.expect(r, 400, "ValidationFailed", "same passed expiry")
        changed = ((new_scopes is not None and new_scopes != token.scopes)
                   or (new_expiry is not None and new_expiry[0] != token.expires_at)
                   or (new_ips is not None and new_ips != frozenset(token.ips)))
        if not changed:
            if kind == "same_ips_reordered":
                kind += f" ({len(token.ips)} ips)"
            return self.expect(r, 400, "NoChangesDetected", kind)
        self.expect(r, 204, why="of an expired token" if m.expired(token) else "")
        if new_scopes is not None:
            token.scopes = new_scopes
        if new_expiry is not None:
            token.expires_at = new_expiry[0]
        if new_ips is not None:
            token.ips = tuple(sorted(new_ips))

    @rule(data=st.data())
    def revoke_token(self, data: st.DataObject) -> None:
        m = self.model
        pid, tid, token = self.pick_token(data)
        where = "own"
        if token is not None:
            where = data.draw(st.sampled_from(["own"] * 4 + ["other", "unknown"]),
                              label="portfolio in path")
            if where == "other":
                others = [p for p in m.portfolios if p != token.portfolio_id]
                pid = data.draw(st.sampled_from(others)) if others else str(uuid.uuid4())
            elif where == "unknown":
                pid = str(uuid.uuid4())
        r = self.call("DELETE", f"/api/v1/agent-portfolios/{pid}/user-tokens/{tid}")
        if token is None:
            return self.expect(r, 404, "NotFound", "unknown token")
        if token.revoked or pid != token.portfolio_id:
            return self.expect(r, 404, "NotFound", "revoked" if token.revoked else where)
        self.expect(r, 204, why="an expired token" if m.expired(token) else "")
        token.revoked = True

    @rule(data=st.data())
    def delete_portfolio(self, data: st.DataObject) -> None:
        m = self.model
        pid, portfolio = self.pick_portfolio(data, live_share=5)
        r = self.call("DELETE", f"/api/v1/agent-portfolios/{pid}")
        if portfolio is None or portfolio.deleted:
            return self.expect(r, 404, "NotFound", "deleted" if portfolio else "unknown")
        self.expect(r, 204)
        portfolio.deleted = True
        for t in m.tokens.values():
            if t.portfolio_id == pid:
                t.revoked = True
        m.balance_cents += portfolio.investment_cents

    @rule(data=st.data(), op=st.sampled_from(AGENT_CALLS))
    def use_token(self, data: st.DataObject,
                  op: tuple[str, str, frozenset[str] | None, int]) -> None:
        m = self.model
        method, path, needs, ok_status = op
        _, _, token = self.pick_token(data)
        secret = token.secret if token else "etnb_" + uuid.uuid4().hex  # never minted
        r = self.call(method, path, user_key=secret)
        status, code = m.use_outcome(token, needs, ok_status)
        if status == 404:
            code = "NotFound"  # the order does not exist: the scope was enough
        why = ("unknown" if token is None else "revoked" if token.revoked
               else "expired" if m.expired(token) else "")
        self.expect(r, status, code, why)
        if status == 200 and path == "/api/v1/me":
            assert token is not None
            assert r.json()["username"] == m.portfolios[token.portfolio_id].name
            assert set(r.json()["scopes"]) == token.scopes
        elif status == 200:  # the agent's own account holds the untouched virtual balance
            assert r.json()["clientPortfolio"]["credit"] == VIRTUAL_BALANCE

    @rule(data=st.data())
    def advance_clock(self, data: st.DataObject) -> None:
        """Move the clock by a step, or exactly to a token's expiresAt (or just short)."""
        m = self.model
        expiring = [t for t in m.tokens.values()
                    if not t.revoked and t.expires_at is not None and t.expires_at > m.now]
        if bool(expiring) and data.draw(st.booleans(), label="to an expiry?"):
            token = data.draw(st.sampled_from(expiring), label="token")
            assert token.expires_at is not None
            short = data.draw(st.sampled_from([0, 0, 0.001, 1]), label="short by (s)")
            target = token.expires_at - timedelta(seconds=short)
            self.advance(max(target - m.now, timedelta()))
        else:
            seconds = data.draw(st.sampled_from(CLOCK_STEPS), label="seconds")
            self.advance(timedelta(seconds=seconds))

    def advance(self, delta: timedelta) -> None:
        self.model.now += delta
        now = self.server.sandbox.clock.advance(delta.total_seconds())
        assert now == self.model.now, f"sandbox clock {now}, model {self.model.now}"

    # -- invariants ------------------------------------------------------------------------
    @invariant()
    def check_listing(self) -> None:
        r = self.call("GET", "/api/v1/agent-portfolios")
        self.expect(r, 200)
        listed = {p["agentPortfolioId"]: p for p in r.json()["agentPortfolios"]}
        live = {p.portfolio_id: p for p in self.model.live_portfolios()}
        assert set(listed) == set(live), f"listed {sorted(listed)}, model {sorted(live)}"
        for pid, item in listed.items():
            assert item["agentPortfolioName"] == live[pid].name
            assert parse_iso(item["createdAt"]) == live[pid].created_at
            assert len(item["userTokens"]) <= MAX_TOKENS
            tokens = {t["userTokenId"]: t for t in item["userTokens"]}
            expected = {t.token_id: t for t in self.model.live_tokens(pid)}
            assert set(tokens) == set(expected), (
                f"portfolio {live[pid].name}: listed tokens {sorted(tokens)}, "
                f"model {sorted(expected)}")
            for tid, t in tokens.items():
                want = expected[tid]
                assert t["userTokenName"] == want.name
                assert parse_iso(t["createdAt"]) == want.created_at
                assert len(t["scopeNames"]) == len(set(t["scopeNames"]))
                assert set(t["scopeNames"]) == want.scopes
                assert set(t["ipsWhitelist"]) == set(want.ips)
                got_expiry = parse_iso(t["expiresAt"]) if "expiresAt" in t else None
                assert got_expiry == want.expires_at, (
                    f"token {want.name}: expiresAt {got_expiry}, model {want.expires_at}")

    @invariant()
    def check_owner_credit(self) -> None:
        r = self.call("GET", "/api/v1/trading/info/real/pnl")
        self.expect(r, 200)
        credit = r.json()["clientPortfolio"]["credit"]
        assert round(credit * 100) == self.model.balance_cents, (
            f"owner credit {credit}, model {self.model.balance_cents / 100:.2f}")


TestAgentPortfolios = AgentPortfolioMachine.TestCase
TestAgentPortfolios.settings = settings(
    max_examples=50,
    stateful_step_count=30,
    deadline=None,
    # The explain phase replays a failure hundreds of times (a server each): minutes.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    # Each example starts a real server and makes HTTP calls: slow by design.
    suppress_health_check=[HealthCheck.too_slow],
)
