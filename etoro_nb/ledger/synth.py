"""A deterministic synthetic ledger for demos and benchmarks.

Portfolios are created with one to four tokens of random scope subsets; agents make a
realistic mix of reads and writes over a window of days, each request an intent row and
an outcome row; some calls are refused for a missing scope (403), some tokens are revoked
and then refused (401), some requests hit the quota (429) or a server error (503). The same
seed gives the same ledger content (timestamps included).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from etoro_nb.ledger.core import Ledger
from etoro_nb.operations import catalogue

SCOPES = ("etoro-public:trade.demo:read", "etoro-public:trade.demo:write",
          "etoro-public:trade.real:read", "etoro-public:trade.real:write")
AGENT_OPERATIONS = (  # (operation id, weight)
    ("getPortfolio", 14), ("getRealAccountPnl", 10), ("getPortfolioDemo", 10),
    ("getDemoAccountPnl", 6), ("listTradingHistory2", 4), ("listTradingHistory", 3),
    ("createRealOrder", 8), ("createDemoOrder", 10), ("closePositionByMarketRate", 4),
    ("closePositionByMarketRateDemo", 5), ("lookupRealOrder", 3), ("lookupDemoOrder", 3),
    ("cancelDemoOrder", 1), ("getAuthenticatedUserProfile", 4),
    ("retrieveCurrentMarketRatesPricingInformation", 12), ("getCandles", 3),
)
START = datetime(2026, 1, 5, tzinfo=UTC)


@dataclass
class _Token:
    token_id: str
    portfolio_id: str
    name: str
    scopes: tuple[str, ...]
    fingerprint: str
    revoked_at: datetime | None = None


@dataclass
class _World:
    rng: random.Random
    tokens: list[_Token] = field(default_factory=list)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def synthesize(path: str | Path, *, events: int, seed: int = 0, portfolios: int = 20,
               days: int = 90, batch: int = 50_000,
               progress: Callable[[int], None] | None = None) -> Ledger:
    """Write a ledger of ``events`` usage events (plus its lifecycle) at ``path``."""
    if events < 2:
        raise ValueError("events must be at least 2 (an intent and its outcome)")
    rng = random.Random(seed)
    ledger = Ledger(path)
    world = _World(rng)
    ops = catalogue()
    t = START
    for i in range(portfolios):
        pid = _uuid(rng)
        name = f"agent{i:03d}"[:10]
        ledger.append_lifecycle(kind="portfolio_created", portfolio_id=pid,
                                ts_us=_us(t), detail={"name": name, "investment_usd":
                                                      rng.choice([500, 1000, 2000, 5000])})
        for k in range(rng.randint(1, 4)):
            scopes = tuple(s for s in SCOPES if rng.random() < 0.6) or (SCOPES[0],)
            token = _Token(_uuid(rng), pid, f"bot-{k}", scopes,
                           f"{rng.getrandbits(128):032x}")
            world.tokens.append(token)
            expires = t + timedelta(days=rng.choice([7, 30, 60, 120]))
            ledger.append_lifecycle(kind="token_minted", portfolio_id=pid,
                                    token_id=token.token_id, token_name=token.name,
                                    scopes=list(scopes), ips_whitelist=[], ts_us=_us(t),
                                    expires_at_us=_us(expires))
            t += timedelta(seconds=rng.randint(1, 60))
    span = timedelta(days=days).total_seconds()
    step = span / (events / 2)
    names, weights = zip(*AGENT_OPERATIONS, strict=True)
    rows: list[dict[str, object]] = []
    written = 0
    for n in range(events // 2):
        now = START + timedelta(seconds=n * step)
        token = rng.choice(world.tokens)
        if token.revoked_at is None and rng.random() < 0.00002:
            token.revoked_at = now
            ledger.append_lifecycle(kind="token_revoked", portfolio_id=token.portfolio_id,
                                    token_id=token.token_id, ts_us=_us(now))
        op = ops[rng.choices(names, weights)[0]]
        status, code = _answer(rng, token, op.scope_required)
        common = dict(request_id=_uuid(rng), attempt=1, principal="agent",
                      portfolio_id=token.portfolio_id, token_id=token.token_id,
                      token_fingerprint=token.fingerprint, environment="sandbox",
                      method=op.method, route=op.route, operation_id=op.operation_id,
                      scope_required=op.scope_required)
        rows.append({**common, "phase": "intent", "ts_us": _us(now)})
        rows.append({**common, "phase": "outcome", "ts_us": _us(now) + 1500,
                     "status": status, "error_code": code,
                     "latency_ms": round(rng.lognormvariate(0.4, 0.5), 3)})
        if len(rows) >= batch:
            ledger.extend_usage(rows)
            written += len(rows)
            rows = []
            if progress is not None:
                progress(written)
    if rows:
        ledger.extend_usage(rows)
        written += len(rows)
        if progress is not None:
            progress(written)
    return ledger


def _answer(rng: random.Random, token: _Token, scope: str | None) -> tuple[int, str | None]:
    if token.revoked_at is not None:
        return 401, "Unauthorized"
    if scope is not None and scope not in token.scopes:
        return 403, "InsufficientScope"
    roll = rng.random()
    if roll < 0.01:
        return 429, "TooManyRequests"
    if roll < 0.013:
        return 503, "ServiceUnavailable"
    if roll < 0.03:
        return 400, "ValidationFailed"
    return 200, None


def _us(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000)
