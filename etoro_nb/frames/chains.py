"""``delegation_chains``: who delegated what to which agent, through which application,
and what came of it, one row per owner -> agent portfolio -> token -> application.

The owner is the ledger's (a ``Dataset`` labels each ledger it holds with its owner);
the application is the one a request declares (the requests' ``application`` column,
where the ledger records it), else the token's (``tokens(client)`` has it from the API;
the ledger's lifecycle does not record it), else ``unknown``. A token that made no
request still has its row (its delegation is part of the chain; ``requests`` is 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import polars as pl

from etoro_nb.frames.common import UTC_US, _utc
from etoro_nb.frames.ledger import EventSource, policy_events, requests, tokens_from_ledger

UNKNOWN = "unknown"
_COLUMNS: dict[str, Any] = {
    "owner": pl.String, "ledger_id": pl.String, "portfolio_id": pl.String,
    "portfolio_name": pl.String, "token_id": pl.String, "token_name": pl.String,
    "token_status": pl.String, "application": pl.String, "requests": pl.Int64,
    "succeeded": pl.Int64, "refused": pl.Int64, "failed": pl.Int64,
    "refused_locally": pl.Int64, "pnl_usd": pl.Float64, "first_request": UTC_US,
    "last_request": UTC_US,
}
CHAINS_SCHEMA = pl.Schema(_COLUMNS)
"""``delegation_chains``: one row per owner, portfolio, token and application, by owner,
portfolio name, token name and application. ``requests`` counts the token's request
attempts through that application: ``succeeded`` (2xx), ``refused`` by the server (401
or 403: not allowed), ``failed`` otherwise (another 4xx or 5xx, or never answered).
``refused_locally`` (orders an agent session refused before sending, by its owner's
policy) and ``pnl_usd`` (the realised P&L its sessions booked: each UTC day's last
figure, summed; null when none was booked) are the token's: they sit on its busiest
application's row (0 and null on its others), so sums over rows hold."""
_TOKEN_COLUMNS = ("token_id", "portfolio_id", "portfolio_name", "token_name", "status",
                  "application")


def delegation_chains(source: EventSource, *, tokens: pl.DataFrame | None = None,
                      now: datetime | date | None = None, owner: str | None = None,
                      owners: Mapping[str, str] | None = None) -> pl.DataFrame:
    """The delegation chains of a ledger or a ``Dataset`` of many (``CHAINS_SCHEMA``).

    ``tokens``: a ``tokens(client)`` frame, for the applications the API knows (default:
    ``tokens_from_ledger(source, now=now)``). ``owners`` maps ledger ids to owners
    (default: a dataset's labels); ``owner`` names rows with no ledger id (a single
    ledger: default ``owner``). Agents' requests only: the owner's own calls are not a
    delegation.

    Examples
    --------
    >>> team = Dataset("team-dataset")                                  # doctest: +SKIP
    >>> enb.frames.delegation_chains(team).filter(pl.col("refused") > 0)  # doctest: +SKIP
    """
    at = _utc(now) or datetime.now(UTC)
    known = tokens if tokens is not None else tokens_from_ledger(source, now=at)
    labels = dict(owners) if owners is not None else _labels(source)
    book = policy_events(source, server_refusals=False)
    return chains_frame(
        requests(source).filter(pl.col("principal") == "agent", pl.col("token_id").is_not_null()),
        known, ledgers=_ledger_of(source), owners=labels, default_owner=owner or "owner",
        local_refusals=book.filter(pl.col("kind") == "policy_refused"),
        booked=book.filter(pl.col("kind").is_in(["order_booked", "book_reconciled"])))


def _labels(source: EventSource) -> dict[str, str]:
    owners = getattr(source, "owners", None)
    return dict(owners()) if callable(owners) else {}


def _ledger_of(source: EventSource) -> pl.DataFrame:
    """Token id -> ledger id, from the rows that name both (none for a single ledger)."""
    scans = [source.scan(table) for table in ("lifecycle_events", "usage_events")]
    parts = [scan.select("token_id", "ledger_id") for scan in scans
             if "ledger_id" in scan.collect_schema()]
    if not parts:
        return pl.DataFrame(schema={"token_id": pl.String, "ledger_id": pl.String})
    return (pl.concat(parts).drop_nulls("token_id").unique("token_id", keep="first")
            .collect())


def chains_frame(requests: pl.DataFrame, tokens: pl.DataFrame, *,
                 ledgers: pl.DataFrame | None = None, owners: Mapping[str, str] | None = None,
                 default_owner: str = "owner", local_refusals: pl.DataFrame | None = None,
                 booked: pl.DataFrame | None = None) -> pl.DataFrame:
    """The chains from frames alone (pure): agents' ``requests()`` rows (with an
    ``application`` column or without), a tokens frame, token id -> ``ledger_id``,
    ledger id -> owner, ``policy_events`` rows of local refusals and of booked orders."""
    token_app = tokens.select(*_TOKEN_COLUMNS[:-1], pl.col("status").alias("token_status"),
                              pl.col("application").alias("token_application"))
    declared = (pl.col("application") if "application" in requests.columns
                else pl.lit(None, pl.String))
    status = pl.col("status")
    counted = (requests.join(token_app.select("token_id", "token_application"), on="token_id",
                             how="left")
               .with_columns(application=pl.coalesce(declared, pl.col("token_application"),
                                                     pl.lit(UNKNOWN)))
               .group_by("token_id", "application")
               .agg(request_portfolio=pl.col("portfolio_id").drop_nulls().first(),
                    requests=pl.len().cast(pl.Int64),
                    succeeded=status.is_between(200, 299).sum().cast(pl.Int64),
                    refused=status.is_in([401, 403]).sum().cast(pl.Int64),
                    failed=(status.is_null() | ((status >= 400) & ~status.is_in([401, 403])))
                    .sum().cast(pl.Int64),
                    first_request=pl.col("ts").min(), last_request=pl.col("ts").max()))
    idle = (token_app.join(counted.select("token_id"), on="token_id", how="anti")
            .select("token_id", application=pl.coalesce("token_application", pl.lit(UNKNOWN)))
            .with_columns(request_portfolio=pl.lit(None, pl.String),
                          **{c: pl.lit(0, pl.Int64) for c in ("requests", "succeeded", "refused",
                                                              "failed")},
                          first_request=pl.lit(None, UTC_US), last_request=pl.lit(None, UTC_US)))
    rows = (pl.concat([counted, idle.select(counted.columns)])
            .join(token_app.drop("token_application"), on="token_id", how="left")
            .with_columns(portfolio_id=pl.coalesce("portfolio_id", "request_portfolio"))
            .sort("token_id", "requests", "application", descending=[False, True, False])
            .with_columns(primary=pl.int_range(pl.len()).over("token_id") == 0))
    rows = _token_facts(rows, local_refusals, booked)
    return _owned(rows, ledgers, owners or {}, default_owner)


def _token_facts(rows: pl.DataFrame, local_refusals: pl.DataFrame | None,
                 booked: pl.DataFrame | None) -> pl.DataFrame:
    """Each token's local refusals and booked P&L, on its primary row."""
    refusals = (pl.DataFrame(schema={"token_id": pl.String}) if local_refusals is None
                else local_refusals.select("token_id"))
    local = refusals.group_by("token_id").agg(local=pl.len().cast(pl.Int64))
    book = (pl.DataFrame(schema={"token_id": pl.String, "ts": UTC_US,
                                 "realized_pnl_today_usd": pl.Float64})
            if booked is None else booked.select("token_id", "ts", "realized_pnl_today_usd"))
    pnl = (book.drop_nulls().sort("ts")
           .group_by("token_id", pl.col("ts").dt.date().alias("day"), maintain_order=True)
           .agg(pl.col("realized_pnl_today_usd").last())
           .group_by("token_id").agg(pnl=pl.col("realized_pnl_today_usd").sum()))
    primary = pl.col("primary")
    return (rows.join(local, on="token_id", how="left").join(pnl, on="token_id", how="left")
            .with_columns(refused_locally=pl.when(primary).then(pl.col("local").fill_null(0))
                          .otherwise(0),
                          pnl_usd=pl.when(primary).then(pl.col("pnl"))))


def _owned(rows: pl.DataFrame, ledgers: pl.DataFrame | None, owners: Mapping[str, str],
           default_owner: str) -> pl.DataFrame:
    ledger_of = (ledgers if ledgers is not None and ledgers.height else
                 pl.DataFrame(schema={"token_id": pl.String, "ledger_id": pl.String}))
    labels = pl.DataFrame({"ledger_id": list(owners), "owner": list(owners.values())},
                          schema={"ledger_id": pl.String, "owner": pl.String})
    return (rows.join(ledger_of.select("token_id", "ledger_id"), on="token_id", how="left")
            .join(labels, on="ledger_id", how="left")
            .with_columns(owner=pl.coalesce("owner", "ledger_id", pl.lit(default_owner)))
            .select(list(CHAINS_SCHEMA)).cast(CHAINS_SCHEMA)
            .sort("owner", "portfolio_name", "portfolio_id", "token_name", "token_id",
                  "application", nulls_last=True))
