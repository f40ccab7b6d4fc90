"""What the agent-session tests share: a desk (a sandbox, an owner client recording into a
real ledger file, agent portfolios with their tokens) and reads of the sandbox's own state,
so a test can tell what reached the server without asking the code under test."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from etoro_nb._base import RetryPolicy
from etoro_nb.agent.policy import RiskPolicy
from etoro_nb.agent.session import AgentSession
from etoro_nb.client import EtoroClient
from etoro_nb.ledger import Ledger
from etoro_nb.models import CreatedPortfolio
from etoro_nb.ratelimit import Quota
from etoro_nb.sandbox import SandboxServer
from etoro_nb.sandbox.validation import iso
from tests.helpers import ALL_SCOPES

NAMES = (f"desk{n:05d}" for n in itertools.count())


@dataclass
class Desk:
    """A sandbox with room for many orders, its owner's client and ledger file."""

    server: SandboxServer
    ledger_path: Path
    owner: EtoroClient
    agents: list[EtoroClient] = field(default_factory=list)

    @property
    def ledger(self) -> Ledger:
        assert self.owner.ledger is not None
        return self.owner.ledger

    def portfolio(self, scopes: list[str] | None = None) -> CreatedPortfolio:
        return self.owner.agent_portfolios.create(next(NAMES), 200,
                                                  scopes=ALL_SCOPES if scopes is None else scopes)

    def agent(self, bot: CreatedPortfolio) -> EtoroClient:
        agent = self.owner.as_agent(bot.token)
        self.agents.append(agent)
        return agent

    def session(self, bot: CreatedPortfolio, policy: RiskPolicy | None = None,
                **kw: Any) -> AgentSession:
        kw.setdefault("account", "real")
        return AgentSession(self.agent(bot), policy, **kw)

    # -- the sandbox's own state ---------------------------------------------------------
    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with self.server.sandbox.store.transaction() as conn:
            return [tuple(r) for r in conn.execute(sql, args).fetchall()]

    def cid(self, bot: CreatedPortfolio, account: str = "real") -> int:
        column = "real_cid" if account == "real" else "demo_cid"
        (cid,), = self.query(f"SELECT u.{column} FROM portfolios p JOIN users u ON u.gcid = p.gcid "
                             "WHERE p.id = ?", bot.portfolio.id)
        return int(cid)

    def orders_received(self, cid: int, since: datetime | None = None) -> int:
        """Orders and closes the sandbox holds for the account (since a time)."""
        after = iso(since) if since else ""
        opened = self.query("SELECT count(*) FROM orders WHERE cid = ? AND created_at >= ?",
                            cid, after)[0][0]
        closed = self.query("SELECT count(*) FROM close_orders WHERE cid = ? AND created_at >= ?",
                            cid, after)[0][0]
        return int(opened) + int(closed)

    def exposure(self, cid: int) -> tuple[int, float]:
        """(open positions and pending orders, their gross exposure at cost) in the sandbox."""
        held = self.query("SELECT amount, leverage FROM positions WHERE cid = ? AND mirror_id = 0 "
                          "AND closed_at IS NULL", cid)
        held += self.query("SELECT amount, leverage FROM orders WHERE cid = ? "
                           "AND status = 'pending'", cid)
        return len(held), round(sum(a * lev for a, lev in held), 2)

    def realized(self, cid: int, day_start: datetime) -> float:
        (total,), = self.query("SELECT coalesce(sum(net_profit), 0) FROM trades WHERE cid = ? "
                               "AND mirror_id = 0 AND closed_at >= ?", cid, iso(day_start))
        return round(float(total), 2)

    def positions(self, cid: int) -> list[tuple[int, float, float, int]]:
        return [(int(p), float(a), float(u), int(lev)) for p, a, u, lev in self.query(
            "SELECT position_id, amount, units, leverage FROM positions WHERE cid = ? "
            "AND mirror_id = 0 AND closed_at IS NULL ORDER BY position_id", cid)]


class IgnoresSearchFilters(httpx.HTTPTransport):
    """Sends to the real sandbox, but drops the field filters from instrument searches (eToro's
    document names none): a server that lists instruments regardless of them."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/market-data/search"):
            kept = [(k, v) for k, v in request.url.params.multi_items()
                    if k in ("fields", "pageNumber", "pageSize", "searchText", "sort")]
            request.url = request.url.copy_with(params=kept)
        return super().handle_request(request)


def open_desk(make_server: Any, make_client: Any, tmp_path: Path, *,
              transport: httpx.BaseTransport | None = None, **config: Any) -> Desk:
    """A sandbox (and a client-side quota) no test reaches, an owner client on its simulated
    clock that records into ``tmp_path/ledger.sqlite``, and no retries (a refused request
    fails at once)."""
    config.setdefault("read_limit", 100_000)
    config.setdefault("write_limit", 100_000)
    server = make_server(**config)
    path = tmp_path / "ledger.sqlite"
    owner = make_client(server, ledger=Ledger(path), clock=server.sandbox.clock.now,
                        retry=RetryPolicy(max_retries=0), owns_ledger=True,
                        quota=Quota(config["read_limit"], config["write_limit"]),
                        transport=transport)
    return Desk(server, path, owner)
