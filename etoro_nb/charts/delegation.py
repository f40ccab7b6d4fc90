"""The team's delegation map: ``frames.delegation_chains`` as a Sankey, owners ->
agent portfolios -> tokens -> applications -> what came of their requests.

Two steps, as every chart here: ``chain_nodes`` and ``chain_links`` shape the chains into
frames of declared schemas (pure polars), ``figure`` maps them to a plotly Sankey. Flows
are requests: a link is as wide as the requests that went that way (a delegation that
made none is a thin link, ``shaping.THIN_LINK``, so it still shows); links are coloured by owner
up to the applications, then by outcome.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

from etoro_nb.charts import style
from etoro_nb.charts.shaping import THIN_LINK, _short
from etoro_nb.frames.chains import CHAINS_SCHEMA

if TYPE_CHECKING:
    import plotly.graph_objects as go  # type: ignore[import-untyped]

LEVELS = ("owner", "portfolio", "token", "application", "outcome")
OUTCOMES = ("succeeded", "refused", "failed")
OUTCOME_COLOURS = {"succeeded": "#2ca02c", "refused": style.ERROR_COLOUR, "failed": style.GREY}
_NODES: dict[str, Any] = {"node": pl.Int64, "level": pl.Enum(LEVELS), "key": pl.String,
                          "label": pl.String, "owner": pl.String, "status": pl.String,
                          "detail": pl.String}
CHAIN_NODES_SCHEMA = pl.Schema(_NODES)
"""``chain_nodes``: owners (by name), their portfolios (by owner, name, id), tokens (by
portfolio, name, id), applications (by name, shared by every token that used one) and
the outcomes ``succeeded``, ``refused``, ``failed``. ``key`` identifies the node within
its level; ``owner`` is the owner a node belongs to (none for applications and
outcomes); ``status`` a token's; ``detail`` is hover text."""
_LINKS: dict[str, Any] = {"source": pl.Int64, "target": pl.Int64, "value": pl.Float64,
                          "owner": pl.String, "outcome": pl.String, "detail": pl.String}
CHAIN_LINKS_SCHEMA = pl.Schema(_LINKS)
"""``chain_links``: owner -> portfolio -> token -> application, each worth the requests
that went that way (``shaping.THIN_LINK`` for none), with the ``owner``; then application ->
outcome, worth the requests with that outcome (none when zero), with the ``outcome``."""


def _id(column: str) -> pl.Expr:
    """An id as the other charts show it (``shaping``'s rule), none as empty text."""
    return _short(pl.col(column).fill_null(""))


def _levels(chains: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """The nodes of each level, numbered in drawing order."""
    missing = [c for c in CHAINS_SCHEMA if c not in chains.columns]
    if missing:
        raise ValueError(f"chains lacks {', '.join(missing)}: pass a "
                         "frames.delegation_chains(...) frame")
    rows = chains.with_columns(
        portfolio_label=pl.coalesce("portfolio_name", _id("portfolio_id")),
        token_label=pl.coalesce("token_name", _id("token_id")))
    agg = {"requests": pl.col("requests").sum(), "succeeded": pl.col("succeeded").sum(),
           "refused": pl.col("refused").sum(), "failed": pl.col("failed").sum()}
    owners = rows.group_by("owner").agg(**agg, tokens=pl.col("token_id").n_unique()).sort("owner")
    ports = (rows.group_by("owner", "portfolio_id").agg(pl.col("portfolio_label").first(), **agg)
             .sort("owner", "portfolio_label", "portfolio_id"))
    toks = (rows.group_by("owner", "portfolio_id", "token_id")
            .agg(pl.col("token_label", "token_status").first(), pl.col("refused_locally").sum(),
                 pl.when(pl.col("pnl_usd").is_not_null().any()).then(pl.col("pnl_usd").sum())
                 .alias("pnl_usd"), **agg)
            .sort("owner", "portfolio_id", "token_label", "token_id"))
    apps = rows.group_by("application").agg(**agg).sort("application")
    outcomes = pl.DataFrame({"outcome": list(OUTCOMES)})
    out, start = {}, 0
    for name, frame in (("owner", owners), ("portfolio", ports), ("token", toks),
                        ("application", apps), ("outcome", outcomes)):
        out[name] = frame.with_row_index("node", offset=start).with_columns(
            pl.col("node").cast(pl.Int64))
        start += frame.height
    out["rows"] = rows
    return out


def chain_nodes(chains: pl.DataFrame) -> pl.DataFrame:
    """The Sankey's nodes (``CHAIN_NODES_SCHEMA``); none for chains without rows."""
    if chains.is_empty():
        return CHAIN_NODES_SCHEMA.to_frame()
    lv = _levels(chains)
    counts = pl.format("requests: {} (refused {}, failed {})", "requests", "refused", "failed")
    parts = [
        lv["owner"].select("node", level=pl.lit("owner"), key="owner", label="owner",
                           owner="owner", detail=pl.format("owner<br>tokens: {}<br>{}", "tokens",
                                                           counts)),
        lv["portfolio"].select("node", level=pl.lit("portfolio"), key="portfolio_id",
                               label="portfolio_label", owner="owner",
                               detail=pl.format("portfolio {}<br>{}", _id("portfolio_id"),
                                                counts)),
        lv["token"].select("node", level=pl.lit("token"), key="token_id",
                           label=pl.format("{} ({})", "token_label", "token_status"),
                           owner="owner", status="token_status",
                           detail=pl.format("token {}<br>{}<br>refused locally: {}<br>booked "
                                            "P&L: {} USD", _id("token_id"), counts,
                                            "refused_locally", pl.col("pnl_usd").round(2))),
        lv["application"].select("node", level=pl.lit("application"), key="application",
                                 label="application",
                                 detail=pl.format("application<br>{}", counts)),
        lv["outcome"].select("node", level=pl.lit("outcome"), key="outcome", label="outcome",
                             detail=pl.format("{} requests", "outcome")),
    ]
    return pl.concat(parts, how="diagonal_relaxed").select(list(CHAIN_NODES_SCHEMA)).cast(
        CHAIN_NODES_SCHEMA)


def _width(column: str) -> pl.Expr:
    return pl.when(pl.col(column) > 0).then(pl.col(column).cast(pl.Float64)).otherwise(THIN_LINK)


def chain_links(chains: pl.DataFrame) -> pl.DataFrame:
    """The Sankey's links (``CHAIN_LINKS_SCHEMA``) between ``chain_nodes`` of the same
    chains."""
    if chains.is_empty():
        return CHAIN_LINKS_SCHEMA.to_frame()
    lv = _levels(chains)
    node = {name: lv[name].select(pl.col("node").alias(f"{name}_node"), *keys)
            for name, keys in (("owner", ["owner"]), ("portfolio", ["owner", "portfolio_id"]),
                               ("token", ["token_id"]), ("application", ["application"]))}
    ports = lv["portfolio"].join(node["owner"], on="owner")
    toks = lv["token"].join(node["portfolio"], on=["owner", "portfolio_id"])
    rows = (lv["rows"].join(node["token"], on="token_id")
            .join(node["application"], on="application"))
    outcome_node = {r["outcome"]: r["node"] for r in lv["outcome"].iter_rows(named=True)}
    apps = lv["application"].unpivot(list(OUTCOMES), index=["node", "application"],
                                     variable_name="outcome", value_name="n").filter(
        pl.col("n") > 0)
    parts = [
        ports.select(source="owner_node", target="node", value=_width("requests"), owner="owner",
                     detail=pl.format("requests: {}", "requests")),
        toks.select(source="portfolio_node", target="node", value=_width("requests"),
                    owner="owner", detail=pl.format("requests: {}", "requests")),
        rows.select(source="token_node", target="application_node", value=_width("requests"),
                    owner="owner", detail=pl.format("requests: {}", "requests")),
        apps.select(source="node", target=pl.col("outcome").replace_strict(outcome_node),
                    value=pl.col("n").cast(pl.Float64), outcome="outcome",
                    detail=pl.format("{} {}", "n", "outcome")),
    ]
    return pl.concat(parts, how="diagonal_relaxed").select(list(CHAIN_LINKS_SCHEMA)).cast(
        CHAIN_LINKS_SCHEMA)


def figure(nodes: pl.DataFrame, links: pl.DataFrame) -> go.Figure:
    """A Sankey of ``chain_nodes`` and ``chain_links``."""
    from etoro_nb.charts import figures

    title = "Delegation across the team: owners → portfolios → tokens → applications → outcomes"
    if nodes.is_empty():
        return figures._empty(title, "No delegation chains to show")
    # A team map colours by owner (a mapping of its own, not the session's portfolio colours).
    owners = style.PortfolioColours()(nodes.filter(pl.col("level") == "owner")["key"].to_list())

    def colour(level: str, key: str, owner: str | None, status: str | None) -> str:
        if level in ("owner", "portfolio"):
            return owners[key if level == "owner" else owner or key]
        if level == "token":
            return style.STATUS_COLOURS.get(status or "", style.GREY)
        return OUTCOME_COLOURS[key] if level == "outcome" else style.APPLICATION_COLOUR

    node_colours = [colour(*row) for row in nodes.select("level", "key", "owner",
                                                         "status").iter_rows()]
    link_colours = [style.rgba(owners[owner] if owner is not None else OUTCOME_COLOURS[outcome],
                               style.LINK_ALPHA)
                    for owner, outcome in links.select("owner", "outcome").iter_rows()]
    tokens = nodes.filter(pl.col("level") == "token").height
    return figures.sankey(nodes, links, node_colours=node_colours, link_colours=link_colours,
                          title=title, height=max(420, 140 + 22 * tokens), pad=14, thickness=14,
                          columns=(("owners", 0.0), ("portfolios", 0.25), ("tokens", 0.5),
                                   ("applications", 0.75), ("outcomes", 1.0)))


def delegation_map(chains: pl.DataFrame) -> go.Figure:
    """The team's delegation map from ``frames.delegation_chains(...)``: see the module."""
    return figure(chain_nodes(chains), chain_links(chains))
