"""A deterministic synthetic ledger for demos and benchmarks.

Portfolios are created with one to four tokens of random lifetimes. Each agent needs some
scopes and calls only operations they cover (a realistic mix of reads and writes over a
window of days, each request an intent row and an outcome row); its owner often grants
more than it needs (granted, unused), sometimes less: those calls are refused (403). Some
tokens are revoked and then refused (401), a token past its expiry is refused once (401)
and then rotated (a new token with the same scopes: ``bot-1`` becomes ``bot-1-r1``), some
requests hit the quota (429) or a server error (503). The same seed gives the same ledger
content (timestamps included).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from etoro_nb.ledger.core import Ledger
from etoro_nb.operations import catalogue
from etoro_nb.scopes import NAMES as SCOPES

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
    expires_at: datetime
    needs: tuple[str, ...]  # the scopes its agent's calls need: granted or not
    revoked_at: datetime | None = None
    rotations: int = 0


@dataclass
class _World:
    rng: random.Random
    tokens: list[_Token] = field(default_factory=list)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def synthesize(path: str | Path, *, events: int, seed: int = 0, portfolios: int = 20,
               days: int = 90, batch: int = 50_000,
               progress: Callable[[int], None] | None = None) -> Ledger:
    """Write a ledger of ``events`` usage events (plus its lifecycle) at ``path``: a new
    file, or an empty PostgreSQL ledger's ``postgresql://`` URL."""
    if events < 2:
        raise ValueError("events must be at least 2 (an intent and its outcome)")
    rng = random.Random(seed)
    ledger = Ledger.open(path)
    if ledger.backend != "sqlite" and any(ledger.live_count(t) for t in ("usage_events",
                                                                       "lifecycle_events")):
        ledger.close()
        raise ValueError(f"the ledger at {ledger.where} already holds events: synthesize into "
                         "an empty one")
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
            needs = tuple(s for s in SCOPES if rng.random() < 0.5) or (rng.choice(SCOPES),)
            _mint(ledger, world, pid, f"bot-{k}", _grant(rng, needs), t, needs)
            t += timedelta(seconds=rng.randint(1, 60))
    span = timedelta(days=days).total_seconds()
    step = span / (events / 2)
    rows: list[dict[str, object]] = []
    written = 0
    for n in range(events // 2):
        now = START + timedelta(seconds=n * step)
        token = rng.choice(world.tokens)
        if now >= token.expires_at:  # its agent is refused once, and the owner rotates it
            world.tokens.remove(token)
            base = token.name.split("-r")[0]
            new = _mint(ledger, world, token.portfolio_id, f"{base}-r{token.rotations + 1}",
                        token.scopes, now + timedelta(seconds=1), token.needs)
            new.rotations = token.rotations + 1
        if token.revoked_at is None and rng.random() < 0.00002:
            token.revoked_at = now
            ledger.append_lifecycle(kind="token_revoked", portfolio_id=token.portfolio_id,
                                    token_id=token.token_id, ts_us=_us(now))
        names, weights = _repertoire(token.needs)
        op = ops[rng.choices(names, weights)[0]]
        status, code = _answer(rng, token, op.scope_required, now)
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


def _grant(rng: random.Random, needs: tuple[str, ...]) -> tuple[str, ...]:
    """What the owner grants an agent that needs ``needs``: often more (over-privileged),
    sometimes less (its calls beyond the grant are refused), else exactly that."""
    roll = rng.random()
    if roll < 0.45 and len(needs) < len(SCOPES):
        extra = rng.sample([s for s in SCOPES if s not in needs], rng.randint(1, 2)
                           if len(SCOPES) - len(needs) > 1 else 1)
        return tuple(s for s in SCOPES if s in needs or s in extra)
    if roll < 0.6 and len(needs) > 1:
        missing = rng.choice(needs)
        return tuple(s for s in needs if s != missing)
    return needs


@cache
def _repertoire(needs: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The operations an agent needing ``needs`` calls, with their weights."""
    ops = catalogue()
    chosen = [(name, weight) for name, weight in AGENT_OPERATIONS
              if ops[name].scope_required is None or ops[name].scope_required in needs]
    names, weights = zip(*chosen, strict=True)
    return names, weights


def _mint(ledger: Ledger, world: _World, portfolio_id: str, name: str,
          scopes: tuple[str, ...], at: datetime, needs: tuple[str, ...]) -> _Token:
    rng = world.rng
    token = _Token(_uuid(rng), portfolio_id, name, scopes, f"{rng.getrandbits(128):032x}",
                   expires_at=at + timedelta(days=rng.choice([7, 30, 60, 120])), needs=needs)
    world.tokens.append(token)
    ledger.append_lifecycle(kind="token_minted", portfolio_id=portfolio_id,
                            token_id=token.token_id, token_name=name, scopes=list(scopes),
                            ips_whitelist=[], ts_us=_us(at),
                            expires_at_us=_us(token.expires_at))
    return token


def _answer(rng: random.Random, token: _Token, scope: str | None,
            now: datetime) -> tuple[int, str | None]:
    if token.revoked_at is not None or now >= token.expires_at:
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
