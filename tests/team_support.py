"""A small team's ledgers for the dataset, Spark and chains tests: two synthetic owners
and one whose lifecycle has every kind of change ``frames.replay`` handles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from etoro_nb.dataset import Dataset, export
from etoro_nb.ledger import Ledger
from etoro_nb.ledger.synth import synthesize
from etoro_nb.scopes import NAMES

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
NOW = datetime(2026, 2, 20, tzinfo=UTC)
READ, WRITE = NAMES[0], NAMES[1]


def _us(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000)


def changes_ledger(path: Path) -> Path:
    """Tokens minted, narrowed, widened, given relative and absolute expiries, expired (a
    recorded expiry), revoked, re-minted, and a portfolio deleted; an update before its
    mint and an unfinished change (both passed over); requests answered, refused and one
    never answered."""
    with Ledger(path, seal_threshold=None) as ledger:
        def event(kind: str, hours: float, **values: object) -> None:
            ledger.append_lifecycle(kind=kind, ts_us=_us(T0 + timedelta(hours=hours)), **values)

        event("portfolio_created", 0, portfolio_id="p1", detail={"name": "carol01"})
        event("portfolio_created", 0, portfolio_id="p2", detail={"name": "carol02"})
        event("token_updated", 0.5, portfolio_id="p1", token_id="t1", detail={"scopes": [READ]})
        event("token_minted", 1, portfolio_id="p1", token_id="t1", token_name="reader",
              scopes=[READ, WRITE], ips_whitelist=[], expires_at_us=_us(T0 + timedelta(days=60)))
        event("token_updated", 2, portfolio_id="p1", token_id="t1",
              detail={"scopes": [READ], "expires_at": "+86400s"})
        event("token_minted", 1, portfolio_id="p1", token_id="t2", token_name="writer",
              scopes=[WRITE], ips_whitelist=["10.0.0.1"], expires_at_us=None)
        event("token_updated", 3, portfolio_id="p1", token_id="t2",
              detail={"ips_whitelist": None, "expires_at": "2026-01-20T00:00:00Z"})
        event("token_expired", 4, portfolio_id="p1", token_id="t2")
        event("token_minted", 1, portfolio_id="p2", token_id="t3", token_name="trader",
              scopes=[READ, WRITE], ips_whitelist=[], expires_at_us=_us(T0 + timedelta(days=90)))
        event("token_revoked", 30, portfolio_id="p2", token_id="t3")
        event("token_minted", 1, portfolio_id="p2", token_id="t4", token_name=None,
              scopes=None, ips_whitelist=None, expires_at_us=_us(T0 + timedelta(days=48)))
        event("token_updated", 5, portfolio_id="p2", token_id="t4", token_name="late-name",
              detail={"scopes": None})
        event("portfolio_deleted", 40, portfolio_id="p2")
        event("token_minted", 6, portfolio_id="p1", token_id="t5", token_name="unfinished",
              scopes=[READ], phase="intent", request_id="rq-unfinished")
        for n, (token, portfolio, scope, status) in enumerate(
                [("t1", "p1", READ, 200), ("t1", "p1", WRITE, 403), ("t2", "p1", WRITE, 200),
                 ("t3", "p2", WRITE, 200), ("t3", "p2", READ, 401), ("t4", "p2", READ, None)]):
            common = {"request_id": f"rq{n}", "attempt": 1, "principal": "agent",
                      "portfolio_id": portfolio, "token_id": token, "environment": "sandbox",
                      "method": "GET", "route": "/api/v1/trading/info/portfolio",
                      "operation_id": "getPortfolio", "scope_required": scope}
            at = _us(T0 + timedelta(hours=10 + n * 7))
            ledger.append_usage(phase="intent", ts_us=at, **common)
            if status is not None:
                ledger.append_usage(phase="outcome", ts_us=at + 1500, status=status,
                                    error_code=None if status == 200 else "Refused",
                                    latency_ms=1.5, **common)
        ledger.flush()
    return path


def team(folder: Path) -> dict[str, Path]:
    """Three owners' ledgers: alice and bob synthetic (three weeks), carol by hand."""
    made = {}
    for seed, name in enumerate(("alice", "bob"), 1):
        path = folder / f"{name}.sqlite"
        synthesize(path, events=2000, seed=seed, portfolios=3, days=21).close()
        made[name] = path
    made["carol"] = changes_ledger(folder / "carol.sqlite")
    return made


def team_dataset(folder: Path) -> Dataset:
    """The ``team`` ledgers, each exported under its owner's name into ``folder/dataset``."""
    for name, path in team(folder).items():
        export(path, folder / "dataset", owner=name)
    return Dataset(folder / "dataset")
