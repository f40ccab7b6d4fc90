"""Who is calling, and the agent portfolios and user tokens that delegate authority.

The owner holds the sandbox's user key. An agent holds a user token minted for one agent
portfolio; sent as ``x-user-key`` it acts as that portfolio's own account, limited by
its scopes, its IP whitelist and its expiry. Only a SHA-256 hash of a token is kept.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from etoro_nb.sandbox.config import SandboxConfig
from etoro_nb.sandbox.errors import ApiError, forbidden, not_found, unauthorized, validation
from etoro_nb.sandbox.store import Store
from etoro_nb.sandbox.validation import from_iso, iso

REAL_READ = "etoro-public:trade.real:read"
REAL_WRITE = "etoro-public:trade.real:write"
DEMO_READ = "etoro-public:trade.demo:read"
DEMO_WRITE = "etoro-public:trade.demo:write"
ALLOWED_SCOPES = (DEMO_READ, DEMO_WRITE, REAL_READ, REAL_WRITE)
SCOPE_IDS = {200: REAL_READ, 201: DEMO_READ, 202: REAL_WRITE, 203: DEMO_WRITE}
SCOPE_ID_OF = {name: sid for sid, name in SCOPE_IDS.items()}

APPLICATION_NAME = "etoro-nb sandbox"
NAME_RULE = re.compile(r"^[A-Za-z0-9_-]{6,10}$")
TOKEN_NAME_MAX = 64
DESCRIPTION_MAX = 500


def scope_for(mode: Literal["real", "demo"], access: Literal["read", "write"]) -> str:
    return f"etoro-public:trade.{mode}:{access}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    kind: Literal["owner", "agent"]
    gcid: int
    username: str
    real_cid: int
    demo_cid: int
    scopes: tuple[str, ...]
    token_id: str | None = None
    portfolio_id: str | None = None

    def cid(self, mode: Literal["real", "demo"]) -> int:
        return self.real_cid if mode == "real" else self.demo_cid

    def require_scope(self, scope: str) -> None:
        if scope not in self.scopes:
            raise ApiError(
                403,
                "InsufficientScope",
                f"This user token lacks the scope {scope} that the operation requires",
            )

    def require_owner(self) -> None:
        if self.kind != "owner":
            raise forbidden(
                "Agent-portfolio user tokens cannot manage agent portfolios or tokens; "
                "use the owner's user key"
            )


@dataclass(frozen=True)
class TokenSpec:
    """A validated token grant: what a mint or create asks for."""

    name: str
    scopes: tuple[str, ...]
    ips: tuple[str, ...]
    expires_at: datetime | None


class Delegation:
    """Users, accounts, agent portfolios and tokens over the sandbox store."""

    def __init__(self, store: Store, config: SandboxConfig) -> None:
        self.store = store
        self.config = config
        self.client_id = str(uuid.UUID(bytes=hashlib.sha256(config.api_key.encode()).digest()[:16]))

    # -- users and accounts -----------------------------------------------------------
    def seed_owner(self, now: datetime) -> None:
        """Create the owner and its funded accounts once per database."""
        if self.store.get_meta("owner_gcid") is not None:
            return
        gcid = self._new_user(self.config.username, None)
        row = self._user(gcid)
        self._set_credit(row["real_cid"], self.config.owner_real_balance)
        self._set_credit(row["demo_cid"], self.config.owner_demo_balance)
        self.store.set_meta("owner_gcid", str(gcid))
        self.store.set_meta("created_at", iso(now))

    def _new_user(self, username: str, portfolio_id: str | None) -> int:
        conn = self.store.conn
        gcid = self.store.next_id("gcid")
        real_cid, demo_cid = self.store.next_id("cid"), self.store.next_id("cid")
        conn.execute(
            "INSERT INTO users (gcid, username, real_cid, demo_cid, portfolio_id) "
            "VALUES (?, ?, ?, ?, ?)",
            (gcid, username, real_cid, demo_cid, portfolio_id),
        )
        conn.executemany(
            "INSERT INTO accounts (cid, gcid, mode, credit) VALUES (?, ?, ?, 0)",
            [(real_cid, gcid, "real"), (demo_cid, gcid, "demo")],
        )
        return gcid

    def _user(self, gcid: int) -> sqlite3.Row:
        row = self.store.conn.execute("SELECT * FROM users WHERE gcid = ?", (gcid,)).fetchone()
        assert row is not None
        return row  # type: ignore[no-any-return]

    def _set_credit(self, cid: int, credit: float) -> None:
        self.store.conn.execute("UPDATE accounts SET credit = ? WHERE cid = ?", (credit, cid))

    def owner(self) -> Principal:
        gcid = int(self.store.get_meta("owner_gcid") or 0)
        row = self._user(gcid)
        return Principal("owner", gcid, row["username"], row["real_cid"], row["demo_cid"],
                         ALLOWED_SCOPES)

    # -- authentication ---------------------------------------------------------------
    def authenticate(
        self, api_key: str | None, user_key: str | None, client_ip: str | None, now: datetime
    ) -> Principal:
        """The caller behind the two keys, or 401/403 saying what is wrong."""
        if not api_key:
            raise unauthorized("Unauthorized: the x-api-key header is required")
        if not user_key:
            raise unauthorized("Unauthorized: the x-user-key header is required")
        if not hmac.compare_digest(api_key.encode(), self.config.api_key.encode()):
            raise unauthorized("Unauthorized: unknown x-api-key")
        if hmac.compare_digest(user_key.encode(), self.config.user_key.encode()):
            return self.owner()
        token = self.store.conn.execute(
            "SELECT t.*, p.gcid, p.deleted_at FROM tokens t JOIN portfolios p "
            "ON p.id = t.portfolio_id WHERE t.secret_hash = ?",
            (hash_secret(user_key),),
        ).fetchone()
        if token is None:
            raise unauthorized("Unauthorized: unknown x-user-key")
        if token["revoked_at"] is not None or token["deleted_at"] is not None:
            raise unauthorized("Unauthorized: this user token has been revoked")
        if token["expires_at"] is not None and from_iso(token["expires_at"]) <= now:
            raise unauthorized("Unauthorized: this user token has expired")
        ips = json.loads(token["ips"])
        if ips and client_ip not in ips:
            raise forbidden(
                f"Forbidden: requests from {client_ip} are not in this user token's IP whitelist"
            )
        user = self._user(token["gcid"])
        return Principal(
            "agent", user["gcid"], user["username"], user["real_cid"], user["demo_cid"],
            tuple(json.loads(token["scopes"])), token["id"], token["portfolio_id"],
        )

    # -- input rules ------------------------------------------------------------------
    def check_scope_names(self, names: list[str], status: int = 400) -> tuple[str, ...]:
        unknown = [n for n in names if n not in ALLOWED_SCOPES]
        if unknown:
            raise ApiError(status, "ScopeNameNotAllowed",
                           f"Scope name not allowed: {', '.join(unknown)} "
                           f"(allowed: {', '.join(ALLOWED_SCOPES)})")
        if not names:
            raise ApiError(400, "ScopeIdsRequired", "ScopeNames is required")
        return tuple(n for n in ALLOWED_SCOPES if n in names)

    def check_scope_ids(self, ids: list[int]) -> tuple[str, ...]:
        unknown = [str(i) for i in ids if i not in SCOPE_IDS]
        if unknown:
            raise ApiError(400, "ScopeIdNotAllowed",
                           f"ScopeIds contains values not in the allowed set: {', '.join(unknown)} "
                           f"(allowed: 200, 201, 202, 203)")
        if not ids:
            raise ApiError(400, "ScopeIdsRequired", "ScopeIds is required")
        return tuple(n for n in ALLOWED_SCOPES if SCOPE_ID_OF[n] in ids)

    def check_expiry(self, expires_at: datetime | None, now: datetime) -> datetime | None:
        if expires_at is not None and expires_at <= now:
            raise validation(
                f"expiresAt must be in the future (now is {iso(now)}); use null for no expiry"
            )
        return expires_at

    @staticmethod
    def check_token_name(name: str) -> str:
        if not name.strip() or len(name) > TOKEN_NAME_MAX:
            raise validation(f"userTokenName must be 1 to {TOKEN_NAME_MAX} characters")
        return name

    # -- portfolios -------------------------------------------------------------------
    def create_portfolio(
        self, owner: Principal, name: str, description: str | None, investment: float,
        now: datetime,
    ) -> dict[str, Any]:
        conn = self.store.conn
        if not 6 <= len(name) <= 10:
            raise validation("Agent-portfolio name must be between 6 and 10 characters")
        if not NAME_RULE.match(name):
            raise validation(
                "agentPortfolioName may hold only letters, digits, '-' and '_'"
            )
        taken = conn.execute(
            "SELECT 1 FROM portfolios WHERE lower(name) = lower(?) AND deleted_at IS NULL",
            (name,),
        ).fetchone()
        if taken is not None or name.lower() == owner.username.lower():
            raise validation(f"agentPortfolioName {name!r} is already taken")
        if description is not None and len(description) > DESCRIPTION_MAX:
            raise validation(f"agentPortfolioDescription must be at most {DESCRIPTION_MAX} characters")
        investment = round(investment, 2)
        if investment < self.config.min_investment:
            raise validation(
                "Investment amount is below the minimum threshold "
                f"(investmentAmountInUsd must be at least {self.config.min_investment:g} USD)"
            )
        credit = self.credit(owner.real_cid)
        if investment > credit + 1e-9:
            raise validation(
                f"investmentAmountInUsd {investment:.2f} exceeds the available real balance "
                f"of {credit:.2f} USD"
            )
        portfolio_id = self.store.new_uuid()
        gcid = self._new_user(name, portfolio_id)
        agent = self._user(gcid)
        vb = self.config.virtual_balance
        self._set_credit(agent["real_cid"], vb)
        self._set_credit(agent["demo_cid"], vb)
        self._set_credit(owner.real_cid, credit - investment)
        mirror_id = self.store.next_id("mirror")
        conn.execute(
            "INSERT INTO portfolios (id, name, description, gcid, owner_gcid, virtual_balance, "
            "investment, mirror_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (portfolio_id, name, description, gcid, owner.gcid, vb, investment, mirror_id,
             iso(now)),
        )
        conn.execute(
            "INSERT INTO mirrors (mirror_id, cid, parent_cid, parent_username, portfolio_id, "
            "initial_investment, available_amount, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (mirror_id, owner.real_cid, agent["real_cid"], name, portfolio_id, investment,
             investment, iso(now)),
        )
        return self.portfolio(portfolio_id)

    def credit(self, cid: int) -> float:
        row = self.store.conn.execute("SELECT credit FROM accounts WHERE cid = ?", (cid,)).fetchone()
        return float(row[0])

    def portfolio(self, portfolio_id: str) -> dict[str, Any]:
        row = self.store.conn.execute(
            "SELECT * FROM portfolios WHERE id = ? AND deleted_at IS NULL", (portfolio_id,)
        ).fetchone()
        if row is None:
            raise not_found("Agent-portfolio not found")
        return dict(row)

    def portfolios(self, owner: Principal) -> list[dict[str, Any]]:
        rows = self.store.conn.execute(
            "SELECT * FROM portfolios WHERE owner_gcid = ? AND deleted_at IS NULL "
            "ORDER BY created_at, rowid",
            (owner.gcid,),
        ).fetchall()
        return [dict(r) for r in rows]

    def mark_deleted(self, portfolio_id: str, now: datetime) -> None:
        conn = self.store.conn
        conn.execute(
            "UPDATE tokens SET revoked_at = ? WHERE portfolio_id = ? AND revoked_at IS NULL",
            (iso(now), portfolio_id),
        )
        conn.execute("UPDATE portfolios SET deleted_at = ? WHERE id = ?", (iso(now), portfolio_id))

    # -- tokens -----------------------------------------------------------------------
    def tokens(self, portfolio_id: str) -> list[dict[str, Any]]:
        rows = self.store.conn.execute(
            "SELECT * FROM tokens WHERE portfolio_id = ? AND revoked_at IS NULL "
            "ORDER BY created_at, rowid",
            (portfolio_id,),
        ).fetchall()
        return [self._token_view(r) for r in rows]

    def token(self, portfolio_id: str, token_id: str) -> dict[str, Any]:
        self.portfolio(portfolio_id)
        row = self.store.conn.execute(
            "SELECT * FROM tokens WHERE id = ? AND portfolio_id = ? AND revoked_at IS NULL",
            (token_id, portfolio_id),
        ).fetchone()
        if row is None:
            raise not_found("User token not found")
        return self._token_view(row)

    @staticmethod
    def _token_view(row: sqlite3.Row) -> dict[str, Any]:
        out = dict(row)
        out["scopes"] = tuple(json.loads(row["scopes"]))
        out["ips"] = tuple(json.loads(row["ips"]))
        out["expires_at"] = from_iso(row["expires_at"]) if row["expires_at"] else None
        return out

    def mint(self, portfolio_id: str, spec: TokenSpec, now: datetime) -> tuple[dict[str, Any], str]:
        """A new token and its secret, which is returned here and never again."""
        conn = self.store.conn
        self.portfolio(portfolio_id)
        live = conn.execute(
            "SELECT name FROM tokens WHERE portfolio_id = ? AND revoked_at IS NULL",
            (portfolio_id,),
        ).fetchall()
        if any(r["name"] == spec.name for r in live):
            raise ApiError(409, "UserKeyNameAlreadyExists",
                           f"UserKeyName already exists: {spec.name!r}")
        if len(live) >= self.config.max_tokens_per_portfolio:
            raise ApiError(429, "MaxUserTokensExceeded",
                           "Maximum number of user tokens exceeded "
                           f"({self.config.max_tokens_per_portfolio} per agent portfolio)")
        secret = "etnb_" + secrets.token_urlsafe(48)
        token_id = self.store.new_uuid()
        conn.execute(
            "INSERT INTO tokens (id, portfolio_id, name, secret_hash, client_id, application, "
            "scopes, ips, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (token_id, portfolio_id, spec.name, hash_secret(secret), self.client_id,
             APPLICATION_NAME, json.dumps(list(spec.scopes)), json.dumps(list(spec.ips)),
             iso(spec.expires_at) if spec.expires_at else None, iso(now)),
        )
        return self.token(portfolio_id, token_id), secret

    def update_token(
        self, portfolio_id: str, token_id: str, changes: dict[str, Any]
    ) -> None:
        """Apply the fields present in ``changes`` (scopes, ips, expires_at)."""
        current = self.token(portfolio_id, token_id)
        if not changes:
            raise ApiError(400, "NoChangesDetected", "At least one field must be provided")
        # A whitelist is a set (as scopes are): listing it in another order changes nothing.
        effective = {k: v for k, v in changes.items()
                     if (set(current[k]) != set(v) if k == "ips" else current[k] != v)}
        if not effective:
            raise ApiError(400, "NoChangesDetected",
                           "The request changes nothing: every field equals the token's value")
        for key, value in effective.items():
            stored = (iso(value) if value else None) if key == "expires_at" else json.dumps(list(value))
            self.store.conn.execute(f"UPDATE tokens SET {key} = ? WHERE id = ?", (stored, token_id))

    def revoke(self, portfolio_id: str, token_id: str, now: datetime) -> None:
        self.token(portfolio_id, token_id)
        self.store.conn.execute("UPDATE tokens SET revoked_at = ? WHERE id = ?", (iso(now), token_id))
