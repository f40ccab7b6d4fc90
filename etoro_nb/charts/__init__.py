"""plotly charts of the frames in ``etoro_nb.frames`` (and of a ``Rebalancer``'s run):
activity per portfolio, scope usage, token lifetimes, portfolio value, the delegation
map, the rebalancer's weights, and an agent's exposure against its risk limits.

Every chart takes polars frames (with the columns of the matching ``frames`` loader)
and returns a ``plotly.graph_objects.Figure``. It is two steps: a pure function of
``charts.shaping`` turns the frames into one frame of a declared schema holding what the
figure shows (``activity_frame``, ``scope_usage_frame``, ...), and a builder of
``charts.figures`` maps its columns to marks and styles. Nothing here calls the API or
reads a file: the same frames give the same figure. plotly loads when a chart is first
drawn, not when this module is imported.

Examples
--------
>>> import etoro_nb as enb
>>> client = enb.connect()                                                # doctest: +SKIP
>>> enb.charts.activity(enb.frames.usage(client.ledger))                  # doctest: +SKIP
>>> enb.charts.token_lifetimes(enb.frames.tokens(client), now=client.now())  # doctest: +SKIP
>>> enb.charts.shaping.activity_frame(enb.frames.usage(client.ledger))    # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import polars as pl

from etoro_nb.charts import shaping
from etoro_nb.frames import VALUE_HISTORY_SCHEMA

if TYPE_CHECKING:
    import plotly.graph_objects as go  # type: ignore[import-untyped]


def activity(usage: pl.DataFrame, *, freq: str | None = None,
             portfolio_names: Mapping[str, str] | None = None,
             window: tuple[datetime, datetime] | None = None) -> go.Figure:
    """Requests per time bucket, one subplot row per portfolio, in the portfolio's colour.

    Counts the ``outcome`` rows of a ``frames.usage(...)`` (or ``frames.requests(...)``)
    frame, and the ``intent`` rows that have no outcome (requests never answered, shown
    with a null status). Each row's bars count its requests (hover: the operations and who
    sent them); a red ``refused / errors`` marker per bucket counts the requests answered
    with status >= 400 or never answered (null status), naming their status and error codes;
    a dark ``trades`` marker counts the requests that succeeded of the operations that open
    or close a position (``operations.trade_operations()``: ``createRealOrder``,
    ``createDemoOrder``, ``openMarketPosition*``, ``closePositionByMarketRate*``).
    Requests without a portfolio (owner calls such as listing portfolios) get a row of
    their own, last. A portfolio has the same colour here as in every other chart
    (``style.portfolio_colours``, by name). The legend sits under the plot. The data:
    ``shaping.activity_frame``.

    Parameters
    ----------
    usage
        A ``frames.usage(...)`` or ``frames.requests(...)`` frame.
    freq
        Bucket width, a polars duration string: ``"15m"``, ``"1h"``, ``"1d"``, ``"1mo"``.
        By default, and whenever it would cut the window into more than
        ``shaping.MAX_BUCKETS`` (60) buckets, the narrowest of ``shaping.BUCKET_STEPS`` that
        does not (``shaping.bucket_freq``): 2 hours over 3 days, 6 hours over a fortnight.
        The title says which was used.
    portfolio_names
        Portfolio id -> name, for the row titles and colours (``frames.portfolios(...)``
        has both).
    window
        The time range shown, ``(start, end)`` (naive: UTC); by default the first to the
        last request. Ticks are round times of it, at most ``shaping.MAX_TICKS``, labelled
        without repeats (``shaping.activity_ticks``).

    Returns
    -------
    plotly.graph_objects.Figure

    Examples
    --------
    >>> names = dict(enb.frames.portfolios(client).select("portfolio_id", "name").iter_rows())
    ...                                                             # doctest: +SKIP
    >>> activity(enb.frames.usage(client.ledger), portfolio_names=names,
    ...          window=(since, until))                             # doctest: +SKIP
    """
    from etoro_nb.charts import specs

    return specs.activity(usage, freq=freq, portfolio_names=portfolio_names,
                          window=window).figure()


def scope_usage(least_privilege: pl.DataFrame) -> go.Figure:
    """Tokens x scopes heatmap of a ``frames.least_privilege(...)`` frame.

    Each cell is one of ``used`` (answered 2xx at least once), ``granted, unused``,
    ``refused`` (asked for without the grant) or ``not granted`` (nothing recorded); the
    colour bar names them. Hover gives the used and refused counts and the verdict.
    Tokens are sorted by name then id, scopes by name. The data:
    ``shaping.scope_usage_frame``.

    Examples
    --------
    >>> lp = enb.frames.least_privilege(enb.frames.scope_grants(client),
    ...                                 enb.frames.usage(client.ledger))  # doctest: +SKIP
    >>> scope_usage(lp)                                                    # doctest: +SKIP
    """
    from etoro_nb.charts import specs

    return specs.scope_usage(least_privilege).figure()


def token_lifetimes(tokens: pl.DataFrame, *, now: datetime,
                    expiring_within: timedelta = timedelta(days=7)) -> go.Figure:
    """Each token of a ``frames.tokens(...)`` frame as a horizontal bar from its creation to
    its end, coloured by status.

    The end is ``expires_at``, or ``revoked_at`` for a revoked token (the earlier of the
    two when it had also expired), or ``now`` for a token that never expires, which also
    gets an open-ended marker. Status is taken at ``now`` (naive means UTC): ``revoked``,
    ``expired``, ``expiring`` (within ``expiring_within``, highlighted with the window
    shaded) or ``active``. A dotted vertical line marks ``now``. Tokens without
    ``created_at`` are left out (a note says how many). The data:
    ``shaping.token_lifetimes_frame``.

    Examples
    --------
    >>> token_lifetimes(enb.frames.tokens(client), now=client.now(),
    ...                 expiring_within=timedelta(days=3))             # doctest: +SKIP
    """
    from etoro_nb.charts import specs

    return specs.token_lifetimes(tokens, now=now, expiring_within=expiring_within).figure()


def portfolio_value(history: pl.DataFrame) -> go.Figure:
    """Value and P&L of agent portfolios over time (``VALUE_HISTORY_SCHEMA`` rows).

    Top row: the agent account's value (solid, left axis) and the owner's mirror of it
    (dashed, right axis: the two are on different scales, a virtual balance and the
    owner's investment). Bottom row: P&L as bars. One colour per portfolio. The data:
    ``shaping.portfolio_value_frame``.

    Examples
    --------
    >>> snapshots = []                                                  # doctest: +SKIP
    >>> for _ in range(12):                                             # doctest: +SKIP
    ...     snapshots.append(enb.frames.value_snapshot(client))
    ...     client.sandbox.sandbox.clock.advance(3600)
    >>> portfolio_value(pl.concat(snapshots))                           # doctest: +SKIP
    """
    from etoro_nb.charts import figures

    return figures.portfolio_value(shaping.portfolio_value_frame(history))


def delegation_map(portfolios: pl.DataFrame, tokens: pl.DataFrame | None = None, *,
                   owner: str = "owner") -> go.Figure:
    """Sankey of who delegated to whom: owner -> agent portfolios -> tokens -> applications.
    Given one frame, ``frames.delegation_chains(...)``, the team's map for many owners,
    with each link as wide as its requests (``charts.delegation``).

    Takes a ``frames.portfolios(...)`` and a ``frames.tokens(...)`` frame; ``owner`` labels
    the owner's node. Each token is worth 1 on its links; a portfolio without tokens still
    gets a thin link from the owner (value ``shaping.THIN_LINK``). Tokens are labelled with
    name and status and coloured by status; applications are the token's ``application``
    or ``unknown``. Tokens of portfolios missing from ``portfolios`` (revoked with a
    deleted portfolio) still appear, under a portfolio node named from the token row.
    Hover names scopes. The data: ``shaping.delegation_nodes`` and ``delegation_links``.

    Examples
    --------
    >>> delegation_map(enb.frames.portfolios(client), enb.frames.tokens(client),
    ...                owner="me")                                     # doctest: +SKIP
    """
    from etoro_nb.charts import delegation, figures

    if tokens is None:
        return delegation.delegation_map(portfolios)
    return figures.delegation_map(shaping.delegation_nodes(portfolios, tokens, owner=owner),
                                  shaping.delegation_links(portfolios, tokens))


def rebalance_weights(weights: pl.DataFrame, steps: pl.DataFrame | None = None) -> go.Figure:
    """A ``Rebalancer``'s run at a glance, from its ``weights_frame()`` (and ``steps_frame()``).

    Top: each instrument's weight before and after every step's orders (a rebalance is a
    vertical jump, drift the slope between steps), dashed at its target; cash in grey.
    Bottom: the largest gap between a weight and its target, before (hollow) and after
    (filled) each step's orders, on a log axis. With ``steps``, refused steps are marked
    in orange and the step the agent stopped at in red. The data:
    ``shaping.rebalance_weights_frame``, ``rebalance_gaps_frame`` and
    ``rebalance_events_frame``.

    Examples
    --------
    >>> rebalancer.run(8)                                                  # doctest: +SKIP
    >>> rebalance_weights(rebalancer.weights_frame(), rebalancer.steps_frame())
    ...                                                                    # doctest: +SKIP
    """
    from etoro_nb.charts import figures

    events = (shaping.REBALANCE_EVENTS_SCHEMA.to_frame() if steps is None
              else shaping.rebalance_events_frame(steps))
    return figures.rebalance_weights(shaping.rebalance_weights_frame(weights),
                                     shaping.rebalance_gaps_frame(weights), events)


def exposure(policy_events: pl.DataFrame, *, portfolio: str | None = None,
             title: str | None = None) -> go.Figure:
    """An agent portfolio's risk over time, from ``frames.policy_events(ledger)``.

    Top: the gross exposure its agent sessions booked (after each order and read) against
    the tightest exposure limit in effect (dashed). Bottom: the UTC day's realised loss
    against the daily loss limit. Refusals are points: orange when the session refused
    locally (hover: rule, limit, attempted), red when the server refused. The owner's
    pauses, resumes and policy versions, and the session's stop, are vertical lines.
    ``portfolio`` picks one when the frame holds several. The data:
    ``shaping.exposure_frame`` and ``shaping.exposure_marks_frame``.

    Examples
    --------
    >>> exposure(enb.frames.policy_events(client.ledger), portfolio=bot.portfolio.id)
    ...                                                                    # doctest: +SKIP
    """
    from etoro_nb.charts import figures

    lines = shaping.exposure_frame(policy_events, portfolio=portfolio)
    marks = shaping.exposure_marks_frame(policy_events, portfolio=portfolio)
    return figures.exposure(lines, marks, title=title or "Exposure and daily loss against "
                            "the agent's limits")


__all__ = ["VALUE_HISTORY_SCHEMA", "activity", "delegation_map", "exposure", "portfolio_value",
           "rebalance_weights", "scope_usage", "shaping", "token_lifetimes"]
