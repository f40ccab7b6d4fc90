"""Delegation chains across a team (``frames.delegation_chains``) and their map
(``charts.delegation_map``): from a dataset of three owners, from one ledger, and from
frames with and without the requests' ``application`` column."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from etoro_nb import charts, frames
from etoro_nb.charts import delegation
from etoro_nb.dataset import Dataset
from etoro_nb.frames.chains import CHAINS_SCHEMA, chains_frame
from etoro_nb.ledger import Ledger
from tests.team_support import NOW, READ, T0, changes_ledger, team_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return team_dataset(tmp_path_factory.mktemp("team"))


def _row(chains: pl.DataFrame, token: str, application: str = "unknown") -> dict[str, object]:
    rows = chains.filter(pl.col("token_id") == token, pl.col("application") == application)
    assert rows.height == 1, rows
    return rows.row(0, named=True)


def test_chains_of_a_team(dataset: Dataset) -> None:
    chains = frames.delegation_chains(dataset, now=NOW)
    assert chains.schema == CHAINS_SCHEMA
    assert set(chains["owner"]) == {"alice", "bob", "carol"}
    tokens = frames.tokens_from_ledger(dataset, now=NOW)
    assert set(chains["token_id"]) == set(tokens["token_id"])  # idle tokens too
    agents = frames.requests(dataset).filter(pl.col("principal") == "agent")
    assert chains["requests"].sum() == agents.height
    assert chains["refused"].sum() == agents.filter(pl.col("status").is_in([401, 403])).height
    for owner, ledger_id in dataset.owners().items():
        assert set(chains.filter(pl.col("ledger_id") == owner)["owner"]) == {ledger_id}
    assert _row(chains, "t1")["succeeded"] == 1
    assert (_row(chains, "t1")["refused"], _row(chains, "t3")["refused"]) == (1, 1)  # 403, 401
    assert _row(chains, "t4")["failed"] == 1  # never answered
    assert _row(chains, "t2")["portfolio_name"] == "carol01"
    assert _row(chains, "t3")["token_status"] == "revoked"
    assert _row(chains, "t1")["first_request"] == T0 + timedelta(hours=10, microseconds=1500)


def test_the_declared_application_is_preferred_per_request(dataset: Dataset) -> None:
    requests = frames.requests(dataset).filter(pl.col("principal") == "agent")
    tokens = frames.tokens_from_ledger(dataset, now=NOW).with_columns(
        application=pl.when(pl.col("token_id") == "t1").then(pl.lit("research notebook")))
    without = chains_frame(requests, tokens)
    assert _row(without, "t1", "research notebook")["requests"] == 2
    assert _row(without, "t3")["requests"] == 2  # no application known: unknown
    declared = requests.with_columns(application=pl.when(pl.col("request_id") == "rq0")
                                     .then(pl.lit("mcp: claude-desktop")))
    withcol = chains_frame(declared, tokens)
    assert _row(withcol, "t1", "mcp: claude-desktop")["succeeded"] == 1
    assert _row(withcol, "t1", "research notebook")["refused"] == 1
    assert withcol["requests"].sum() == without["requests"].sum()


def test_local_refusals_and_booked_pnl_sit_on_the_busiest_row(dataset: Dataset) -> None:
    requests = frames.requests(dataset).filter(pl.col("token_id") == "t1")
    requests = requests.with_columns(application=pl.Series(["agent session", "notebook"]))
    requests = pl.concat([requests, requests.head(1)])  # the agent session made two
    tokens = frames.tokens_from_ledger(dataset, now=NOW).filter(pl.col("token_id") == "t1")
    day = datetime(2026, 1, 6, tzinfo=UTC)
    booked = pl.DataFrame({"token_id": ["t1"] * 3,
                           "ts": [day, day + timedelta(hours=2), day + timedelta(days=1)],
                           "realized_pnl_today_usd": [5.0, 12.5, -2.0]})
    refusals = pl.DataFrame({"token_id": ["t1", "t1", "t9"]})
    chains = chains_frame(requests, tokens, local_refusals=refusals, booked=booked)
    busiest, other = _row(chains, "t1", "agent session"), _row(chains, "t1", "notebook")
    assert (busiest["requests"], busiest["refused_locally"], busiest["pnl_usd"]) == (2, 2, 10.5)
    assert (other["refused_locally"], other["pnl_usd"]) == (0, None)


def test_chains_of_one_ledger(tmp_path: Path) -> None:
    path = changes_ledger(tmp_path / "carol.sqlite")
    with Ledger(path) as ledger:
        chains = frames.delegation_chains(ledger, now=NOW, owner="carol")
    assert set(chains["owner"]) == {"carol"} and chains["ledger_id"].null_count() == chains.height
    assert set(chains["token_id"]) == {"t1", "t2", "t3", "t4"}


def test_delegation_map_draws_every_owner(dataset: Dataset) -> None:
    chains = frames.delegation_chains(dataset, now=NOW)
    nodes, links = delegation.chain_nodes(chains), delegation.chain_links(chains)
    assert nodes.schema == delegation.CHAIN_NODES_SCHEMA
    assert links.schema == delegation.CHAIN_LINKS_SCHEMA
    levels = nodes.group_by("level").len()
    assert dict(levels.iter_rows())["owner"] == 3
    assert dict(levels.iter_rows())["token"] == chains["token_id"].n_unique()
    assert nodes["node"].to_list() == list(range(nodes.height))
    outcome_in = links.filter(pl.col("outcome").is_not_null())["value"].sum()
    assert outcome_in == chains.select(pl.col("succeeded", "refused", "failed").sum()).sum_horizontal()[0]
    owner_out = links.join(nodes.filter(pl.col("level") == "owner"), left_on="source",
                           right_on="node")
    assert owner_out["value"].sum() >= chains["requests"].sum()
    fig = charts.delegation_map(chains)
    sankey = fig.data[0]
    assert list(sankey.node.label[:3]) == ["alice", "bob", "carol"]
    assert len(sankey.link.source) == links.height
    empty = charts.delegation_map(chains.clear())
    assert not empty.data


def test_delegation_map_keeps_its_single_owner_form() -> None:
    portfolios = pl.DataFrame({"portfolio_id": ["p1"], "name": ["alpha001"]})
    tokens = pl.DataFrame({"portfolio_id": ["p1"], "portfolio_name": ["alpha001"],
                           "token_id": ["t1"], "token_name": ["bot"], "application": [None],
                           "scopes": [["etoro-public:trade.demo:read"]], "status": ["active"]},
                          schema_overrides={"application": pl.String})
    fig = charts.delegation_map(portfolios, tokens, owner="me")
    assert fig.data[0].node.label[0] == "me"


def test_the_team_map_shortens_ids_as_every_chart_does() -> None:
    """An unnamed portfolio or token is labelled by its id, cut only when longer than ten
    characters (``shaping``'s rule): a 9-character id cut to 8 and an ellipsis saves nothing."""
    def chain(portfolio_id: str, token_id: str) -> dict[str, object]:
        return {"owner": "alice", "portfolio_id": portfolio_id, "token_id": token_id,
                "token_status": "active", "application": "unknown", "requests": 0,
                "succeeded": 0, "refused": 0, "failed": 0, "refused_locally": 0}

    chains = pl.DataFrame([chain("p-9chars1", "t-10chars1"),
                           chain("p-11-chars-1", "t-11-chars-1")], schema=CHAINS_SCHEMA)
    labels = delegation.chain_nodes(chains).filter(pl.col("level").is_in(["portfolio", "token"]))
    assert sorted(labels["label"]) == ["p-11-cha…", "p-9chars1", "t-10chars1 (active)",
                                       "t-11-cha… (active)"]


def test_chains_refuse_a_frame_that_is_not_chains() -> None:
    with pytest.raises(ValueError, match="chains lacks"):
        delegation.chain_nodes(pl.DataFrame({"owner": ["a"]}))


def test_tokens_follow_every_change(dataset: Dataset) -> None:
    """The hand-made changes come out as replay reads them (so Spark's comparison with them
    covers each rule, not only the synthetic ledgers' mints and revocations)."""
    tokens = frames.tokens_from_ledger(dataset, now=NOW).filter(
        pl.col("token_id").is_in(["t1", "t2", "t3", "t4", "t5"]))
    rows = {r["token_id"]: r for r in tokens.iter_rows(named=True)}
    assert set(rows) == {"t1", "t2", "t3", "t4"}  # t5's mint never finished
    assert rows["t1"]["scopes"] == [READ]  # minted read+write, narrowed to read
    assert rows["t1"]["expires_at"] == T0 + timedelta(hours=2, days=1)
    assert rows["t2"]["expires_at"] == T0 + timedelta(hours=4)  # recorded expiry, earlier
    assert rows["t2"]["ips_whitelist"] == []
    assert rows["t3"]["status"] == "revoked" and rows["t4"]["status"] == "revoked"
    assert rows["t4"]["token_name"] == "late-name" and rows["t4"]["scopes"] == []
    assert rows["t1"]["portfolio_name"] == "carol01"


def test_the_team_map_draws_in_a_fresh_interpreter() -> None:
    """``charts.delegation.figure`` alone (no other chart drawn first) finds the project's
    plotly template, which exists only once registered."""
    import subprocess
    import sys

    code = ("import polars as pl; from etoro_nb.charts import delegation; "
            "print(delegation.figure(pl.DataFrame(), pl.DataFrame()).layout.title.text)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "Delegation across the team" in run.stdout
