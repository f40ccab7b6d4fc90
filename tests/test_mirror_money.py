"""Money through the owner's copy mirror: rounding of copies, and that nothing is lost.

Money in the sandbox is booked in whole cents and units on a 0.000001 grid
(docs/sandbox.md, "Precision, rounding and the balance"), so the balance checks here
compare integer cents exactly: after any trading, closing everything and deleting the
agent portfolio gives the owner back its investment plus the realised P&L of the
portfolio's copies (the sum of their ``netProfit``), not a cent more or less."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from etoro_nb.sandbox import SandboxConfig, SandboxServer, start
from tests.helpers import ALL_SCOPES, Api, order_body

REAL_ORDERS = "/api/v2/trading/execution/orders"
DEMO_ORDERS = "/api/v2/trading/execution/demo/orders"
BTC = 100000
XRP = 100017
HISTORY_FROM = "2026-01-01"
UNIT = 1e-6  # the unit grid


def cents(usd: float) -> int:
    """A money figure from an answer as integer cents (the sandbox books whole cents)."""
    return round(usd * 100)


def _close_path(position_id: int, mode: str = "real") -> str:
    seg = "demo/" if mode == "demo" else ""
    return f"/api/v1/trading/execution/{seg}market-close-orders/positions/{position_id}"


def _close_body(instrument_id: int, units: float | None, mode: str = "real") -> dict[str, Any]:
    body: dict[str, Any] = {"InstrumentID" if mode == "demo" else "InstrumentId": instrument_id}
    if units is not None:
        body["UnitsToDeduct"] = units
    return body


def _book(api: Api, mode: str = "real") -> dict[str, Any]:
    r = api.get(f"/api/v1/trading/info/{mode}/pnl")
    assert r.status_code == 200, r.text
    return r.json()["clientPortfolio"]  # type: ignore[no-any-return]


def _history(api: Api, mode: str = "real") -> list[dict[str, Any]]:
    seg = "demo/" if mode == "demo" else ""
    r = api.get(f"/api/v1/trading/info/trade/{seg}history",
                params={"minDate": HISTORY_FROM, "pageSize": 1000})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _copy_profit_cents(owner: Api, mirror_id: int) -> int:
    return sum(cents(t["netProfit"]) for t in _history(owner) if t["socialTradeId"] == mirror_id)


@pytest.fixture
def invest(owner: Api, agent_for: Callable[[str], Api]
           ) -> Callable[[float], tuple[dict[str, Any], Api, int]]:
    """Create an agent portfolio: (its create answer, its agent, the owner's credit in
    cents before)."""
    def make(investment: float) -> tuple[dict[str, Any], Api, int]:
        before = cents(_book(owner)["credit"])
        created = owner.create_portfolio(investment=investment, scopes=ALL_SCOPES)
        return created, agent_for(created["userTokens"][0]["userToken"]), before
    return make


def _delete_and_check_balance(owner: Api, created: dict[str, Any], before_cents: int) -> None:
    r = owner.delete(f"/api/v1/agent-portfolios/{created['agentPortfolioId']}")
    assert r.status_code == 204, r.text
    assert _book(owner)["mirrors"] == []
    profit = _copy_profit_cents(owner, created["mirrorId"])
    assert cents(_book(owner)["credit"]) == before_cents + profit


def test_closing_the_rest_after_a_99_percent_close(
    owner: Api, invest: Callable[[float], tuple[dict[str, Any], Api, int]],
) -> None:
    """The reported case: amount 10 of BTC, 99% of its units closed, then the rest.

    At BTC's price the owner's copy (a fifth of the size) holds 0.000025 units, so 1% of
    it rounds to 0 units: the copy used to stay open with 0 units and a positive amount,
    and closing its parent divided by zero (500 for ever, and the portfolio undeletable).
    """
    created, agent, before = invest(2000.0)
    r = agent.post(REAL_ORDERS, order_body(instrumentId=BTC, amount=10))
    assert r.status_code == 200, r.text
    pos = _book(agent)["positions"][0]
    copy = _book(owner)["mirrors"][0]["positions"][0]
    assert round(copy["units"] * 0.01, 6) == 0, "premise: 1% of the copy is below the unit grid"

    deduct = round(pos["units"] * 0.99, 6)
    r = agent.post(_close_path(pos["positionID"]), _close_body(BTC, deduct))
    assert r.status_code == 200, r.text

    r = agent.post(_close_path(pos["positionID"]), _close_body(BTC, None))
    assert r.status_code == 200, r.text
    assert _book(agent)["positions"] == []
    assert _book(owner)["mirrors"][0]["positions"] == []
    _delete_and_check_balance(owner, created, before)


def test_a_copy_too_small_for_the_unit_grid_is_not_opened(
    make_server: Callable[..., SandboxServer],
) -> None:
    """Investment 200 of a 100,000 virtual balance copies 0.2% of an order: 0.02 USD of
    a 10 USD BTC order, 0.00000025 units, which rounds to 0. Such a copy used to be
    opened with 0 units; now it is not opened and its cash stays in the mirror."""
    server = make_server(virtual_balance=100_000.0)
    owner = Api(server)
    before = cents(_book(owner)["credit"])
    created = owner.create_portfolio(investment=200.0, scopes=ALL_SCOPES)
    agent = Api(server, user_key=created["userTokens"][0]["userToken"])
    try:
        r = agent.post(REAL_ORDERS, order_body(instrumentId=BTC, amount=10))
        assert r.status_code == 200, r.text
        pos = _book(agent)["positions"][0]
        assert round(pos["units"] * 0.002, 6) == 0, "premise: the copy is below the unit grid"
        mirror = _book(owner)["mirrors"][0]
        assert mirror["positions"] == []
        assert mirror["availableAmount"] == 200.0

        # A bigger order is copied (0.10 USD, 0.000001 units): the rule is the grid, not size.
        r = agent.post(REAL_ORDERS, order_body(instrumentId=BTC, amount=50))
        assert r.status_code == 200, r.text
        (copy,) = _book(owner)["mirrors"][0]["positions"]
        assert copy["units"] >= UNIT and copy["amount"] == 0.10

        for p in _book(agent)["positions"]:
            r = agent.post(_close_path(p["positionID"]), _close_body(BTC, None))
            assert r.status_code == 200, r.text
        _delete_and_check_balance(owner, created, before)
    finally:
        agent.close()
        owner.close()


def test_a_close_leaving_less_than_a_cent_closes_the_whole_position(
    invest: Callable[[float], tuple[dict[str, Any], Api, int]],
) -> None:
    """10 USD of XRP is about 5 units; deducting all but 0.001 units would leave a
    fraction of a cent open, so the whole position closes and the answer says so."""
    _, agent, _ = invest(2000.0)
    r = agent.post(REAL_ORDERS, order_body(instrumentId=XRP, amount=10))
    assert r.status_code == 200, r.text
    pos = _book(agent)["positions"][0]
    assert (0.001 / pos["units"]) * 10 < 0.005, "premise: 0.001 units is under half a cent"
    r = agent.post(_close_path(pos["positionID"]),
                   _close_body(XRP, round(pos["units"] - 0.001, 6)))
    assert r.status_code == 200, r.text
    assert r.json()["orderForClose"]["unitsToDeduct"] == pos["units"]
    book = _book(agent)
    assert book["positions"] == []
    (trade,) = _history(agent)
    assert cents(book["credit"]) == cents(10_000.0) + cents(trade["netProfit"])


def test_units_to_deduct_below_the_unit_grid_is_refused(
    invest: Callable[[float], tuple[dict[str, Any], Api, int]],
) -> None:
    _, agent, _ = invest(2000.0)
    r = agent.post(REAL_ORDERS, order_body(instrumentId=BTC, amount=10))
    assert r.status_code == 200, r.text
    pos = _book(agent)["positions"][0]
    r = agent.post(_close_path(pos["positionID"]), _close_body(BTC, 4e-7))
    assert r.status_code == 400, r.text
    assert r.json()["errorCode"] == "ValidationFailed"
    assert "UnitsToDeduct" in r.json()["errorMessage"]
    assert "0.000001" in r.json()["errorMessage"]
    assert _book(agent)["positions"][0]["units"] == pos["units"]
    assert _history(agent) == []


def test_a_copy_left_with_0_units_by_an_older_version_can_still_be_deleted(
    server: SandboxServer, owner: Api,
    invest: Callable[[float], tuple[dict[str, Any], Api, int]],
) -> None:
    """A state file written before the fix may hold such a copy; deleting the portfolio
    (and closing its parent) must still work and return every cent."""
    created, agent, before = invest(2000.0)
    r = agent.post(REAL_ORDERS, order_body(instrumentId=BTC, amount=10))
    assert r.status_code == 200, r.text
    store = server.sandbox.store
    with store.transaction() as conn:  # the state the old rounding left behind
        conn.execute("UPDATE positions SET units = 0 WHERE mirror_id = ?", (created["mirrorId"],))
    pos = _book(agent)["positions"][0]
    r = agent.post(_close_path(pos["positionID"]), _close_body(BTC, round(pos["units"] / 2, 6)))
    assert r.status_code == 200, r.text
    _delete_and_check_balance(owner, created, before)


# -- the stateful property -----------------------------------------------------------------
START = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
VIRTUAL_BALANCE = 100_000.0  # large, so copies are small and rounding comes up often
INVESTMENTS = [200.0, 250.37, 1_000.0, 7_777.77]  # copy ratios 0.2% to 7.8%
AMOUNTS = [10.0, 10.0, 10.01, 12.34, 50.0, 333.33, 2_500.0, 30_000.0]
# (instrument, transaction, leverage): BTC (most often) and ETH dear (tiny units), XRP
# cheap, EURUSD at 30x (a loss can reach the whole amount), AAPL a stock.
ORDER_KINDS = [(BTC, "buy", 1), (BTC, "buy", 1), (BTC, "sell", 2), (100001, "buy", 1), (1001, "buy", 1),
               (1001, "sell", 5), (1, "buy", 30), (1, "sell", 30), (XRP, "buy", 1)]
FRACTIONS = [0.000001, 0.01, 0.25, 0.5, 0.99, 0.99, 0.999, 0.9999, 0.999999]
CLOCK_STEPS = [60, 3600, 86400, 5 * 86400]
MIN_CYCLE_STEPS = 5  # trading steps before a cycle may end, so cycles hold some trading


@dataclass
class Live:
    """The agent portfolio of the current cycle, and which of its positions are open."""

    portfolio_id: str
    mirror_id: int
    investment_cents: int
    owner_before_cents: int
    agent: Api
    open_ids: dict[str, set[int]] = field(default_factory=lambda: {"real": set(), "demo": set()})
    steps: int = 0

    def has_open(self) -> bool:
        return any(self.open_ids.values())


def _trading(machine: MirrorMoneyMachine) -> bool:
    return machine.live is not None


def _holding(machine: MirrorMoneyMachine) -> bool:
    return machine.live is not None and machine.live.has_open()


def _may_end(machine: MirrorMoneyMachine) -> bool:
    return machine.live is not None and machine.live.steps >= MIN_CYCLE_STEPS


class MirrorMoneyMachine(RuleBasedStateMachine):
    """Random trading by an agent, ended by closing everything and deleting its portfolio:
    never a 5xx, every copy holds units and cents, and every cent comes back. The machine
    keeps which positions are open (a partial close that leaves dust closes one) and
    checks that against the sandbox after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.server = start(SandboxConfig(clock=START, virtual_balance=VIRTUAL_BALANCE,
                                          read_limit=10**6, write_limit=10**6))
        self.owner = Api(self.server)
        self.live: Live | None = None

    def teardown(self) -> None:
        try:
            # Every example ends in close-all and delete, unless it already failed (then
            # the original error is the one to report).
            if self.live is not None and sys.exc_info()[0] is None:
                self._finish(close_first=True)
        finally:
            if self.live is not None:
                self.live.agent.close()
            self.owner.close()
            self.server.stop()

    # -- HTTP ------------------------------------------------------------------------------
    @staticmethod
    def expect(r: httpx.Response, status: int, code: str | None = None) -> None:
        where = f"{r.request.method} {r.request.url.path}"
        assert r.status_code < 500, f"{where}: {r.status_code} {r.text}"
        assert r.status_code == status, f"{where}: expected {status}, got {r.status_code}: {r.text}"
        if code is not None:
            assert r.json()["errorCode"] == code, r.text

    @property
    def cycle(self) -> Live:
        assert self.live is not None
        return self.live

    def copies(self) -> list[dict[str, Any]]:
        mirror_id = self.cycle.mirror_id
        (mirror,) = [m for m in _book(self.owner)["mirrors"] if m["mirrorID"] == mirror_id]
        return mirror["positions"]  # type: ignore[no-any-return]

    def positions(self, mode: str) -> dict[int, dict[str, Any]]:
        return {p["positionID"]: p for p in _book(self.cycle.agent, mode)["positions"]}

    def pick(self, data: st.DataObject) -> tuple[str, dict[str, Any]]:
        """An open position of the agent's: (mode, position)."""
        modes = [m for m, ids in self.cycle.open_ids.items() if ids]
        mode = data.draw(st.sampled_from(modes), label="mode")
        pid = data.draw(st.sampled_from(sorted(self.cycle.open_ids[mode])), label="position")
        self.cycle.steps += 1
        return mode, self.positions(mode)[pid]

    # -- rules -----------------------------------------------------------------------------
    @initialize(investment=st.sampled_from(INVESTMENTS))
    def first(self, investment: float) -> None:
        self.create(investment)

    @precondition(lambda self: self.live is None)
    @rule(investment=st.sampled_from(INVESTMENTS))
    def create(self, investment: float) -> None:
        before = cents(_book(self.owner)["credit"])
        name = f"agt{uuid.uuid4().hex[:6]}"
        created = self.owner.create_portfolio(name=name, investment=investment, scopes=ALL_SCOPES)
        self.live = Live(created["agentPortfolioId"], created["mirrorId"], cents(investment),
                         before, Api(self.server, user_key=created["userTokens"][0]["userToken"]))
        assert cents(_book(self.owner)["credit"]) == before - cents(investment)

    @precondition(_trading)
    @rule(mode=st.sampled_from(["real", "real", "demo"]), kind=st.sampled_from(ORDER_KINDS),
          amount=st.sampled_from(AMOUNTS))
    def open_position(self, mode: str, kind: tuple[int, str, int], amount: float) -> None:
        live = self.cycle
        live.steps += 1
        instrument, transaction, leverage = kind
        credit = _book(live.agent, mode)["credit"]
        copies = len(self.copies())
        r = live.agent.post(DEMO_ORDERS if mode == "demo" else REAL_ORDERS, order_body(
            instrumentId=instrument, transaction=transaction, leverage=leverage, amount=amount))
        if amount > credit:
            event("open: insufficient funds")
            self.expect(r, 400, "InsufficientFunds")
            return
        self.expect(r, 200)
        (new,) = set(self.positions(mode)) - live.open_ids[mode]
        live.open_ids[mode].add(new)
        if mode == "real" and len(self.copies()) == copies:
            event("open: too small to copy")

    @precondition(_holding)
    @rule(fraction=st.sampled_from(FRACTIONS), data=st.data())
    def partial_close(self, fraction: float, data: st.DataObject) -> None:
        mode, pos = self.pick(data)
        copies = {c["positionID"] for c in self.copies() if c["parentPositionID"] == pos["positionID"]}
        deduct = round(pos["units"] * fraction, 6)
        r = self.cycle.agent.post(_close_path(pos["positionID"], mode),
                                  _close_body(pos["instrumentID"], deduct, mode))
        if deduct < UNIT:
            event("partial close: below the unit grid")
            self.expect(r, 400, "ValidationFailed")
            return
        self.expect(r, 200)
        # The documented rule, restated: what is left is on the unit grid and in cents;
        # less than a unit step or a cent left closes the whole position.
        left_units = round(pos["units"] - deduct, 6)
        left_cents = cents(pos["amount"]) - cents(round(pos["amount"] * deduct / pos["units"], 2))
        if left_units <= 0 or left_cents <= 0:
            event("partial close: closed the whole position")
            self.cycle.open_ids[mode].discard(pos["positionID"])
            assert r.json()["orderForClose"]["unitsToDeduct"] == pos["units"]
        else:
            event("partial close: kept open")
            rest = self.positions(mode)[pos["positionID"]]
            assert rest["units"] == pytest.approx(left_units, abs=1e-12)
            assert cents(rest["amount"]) == left_cents
            if copies - {c["positionID"] for c in self.copies()}:
                event("partial close: a copy's remainder was dust, so the copy closed")

    @precondition(_holding)
    @rule(data=st.data())
    def close(self, data: st.DataObject) -> None:
        mode, pos = self.pick(data)
        r = self.cycle.agent.post(_close_path(pos["positionID"], mode),
                                  _close_body(pos["instrumentID"], None, mode))
        self.expect(r, 200)
        self.cycle.open_ids[mode].discard(pos["positionID"])

    @rule(seconds=st.sampled_from(CLOCK_STEPS))
    def move_prices(self, seconds: int) -> None:
        if self.live is not None:
            self.live.steps += 1
        r = self.owner.post("/_sandbox/clock", {"seconds": seconds})
        self.expect(r, 200)

    @precondition(_may_end)
    @rule(close_first=st.booleans())
    def finish(self, close_first: bool) -> None:
        self._finish(close_first=close_first)

    def _finish(self, *, close_first: bool) -> None:
        """Close everything (or leave the copies to the delete) and delete the portfolio:
        the owner gets back exactly the investment plus the copies' realised P&L."""
        live = self.cycle
        if close_first:
            for mode in ("real", "demo"):
                for pos in self.positions(mode).values():
                    r = live.agent.post(_close_path(pos["positionID"], mode),
                                        _close_body(pos["instrumentID"], None, mode))
                    self.expect(r, 200)
            assert self.copies() == []
        event(f"finish: {len(self.copies())} copies left to the delete")
        r = self.owner.delete(f"/api/v1/agent-portfolios/{live.portfolio_id}")
        self.expect(r, 204)
        owner_book = _book(self.owner)
        assert all(m["mirrorID"] != live.mirror_id for m in owner_book["mirrors"])
        profit = _copy_profit_cents(self.owner, live.mirror_id)
        event(f"finish: copies' realised P&L {'<' if profit < 0 else '>='} 0")
        back = cents(owner_book["credit"]) - live.owner_before_cents + live.investment_cents
        assert back == live.investment_cents + profit, (
            f"the owner got back {back} cents, not {live.investment_cents} + {profit}")
        live.agent.close()
        self.live = None

    # -- invariants ------------------------------------------------------------------------
    @invariant()
    def mirror_adds_up(self) -> None:
        """Cash plus open copies == investment plus realised copy P&L, to the cent; every
        open copy holds units and cents and follows an open position of the agent."""
        if self.live is None:
            return
        (mirror,) = [m for m in _book(self.owner)["mirrors"] if m["mirrorID"] == self.live.mirror_id]
        held = sum(cents(c["amount"]) for c in mirror["positions"])
        realised = cents(mirror["closedPositionsNetProfit"])
        assert cents(mirror["availableAmount"]) + held == self.live.investment_cents + realised
        assert realised == _copy_profit_cents(self.owner, self.live.mirror_id)
        for c in mirror["positions"]:
            assert c["units"] >= UNIT and c["amount"] >= 0.01, c
            assert c["parentPositionID"] in self.live.open_ids["real"], c

    @invariant()
    def agent_accounts_add_up(self) -> None:
        """Each agent account holds the positions the machine expects, and its credit plus
        open amounts == virtual balance plus realised P&L, to the cent."""
        if self.live is None:
            return
        for mode in ("real", "demo"):
            book = _book(self.live.agent, mode)
            assert {p["positionID"] for p in book["positions"]} == self.live.open_ids[mode], mode
            held = sum(cents(p["amount"]) for p in book["positions"])
            realised = sum(cents(t["netProfit"]) for t in _history(self.live.agent, mode))
            assert cents(book["credit"]) + held == cents(VIRTUAL_BALANCE) + realised, mode
            for p in book["positions"]:
                assert p["units"] >= UNIT and p["amount"] >= 0.01, p


TestMirrorMoney = pytest.mark.slow(MirrorMoneyMachine.TestCase)
TestMirrorMoney.settings = settings(
    max_examples=25,
    stateful_step_count=15,
    deadline=None,
    # The explain phase replays a failure many times (a server each): slow.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow],
)
