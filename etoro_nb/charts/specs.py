"""The cockpit's charts as ``figures.Spec``s, plotly's JSON before plotly makes figures of
them: ``charts.activity``, ``charts.scope_usage`` and ``charts.token_lifetimes`` return these
made figures (their docstrings say what each shows). A widget draws a spec as it is
(``widgets.figure.Chart``): making a ``go.Figure`` took longer than the chart's data.
Imported when a chart is drawn (it loads plotly)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import polars as pl

from etoro_nb.charts import figures, shaping
from etoro_nb.charts.figures import Spec


def activity(usage: pl.DataFrame, *, freq: str | None = None,
             portfolio_names: Mapping[str, str] | None = None,
             window: tuple[datetime, datetime] | None = None) -> Spec:
    """``charts.activity``'s figure."""
    span = shaping.activity_window(usage, window)
    chosen = shaping.bucket_freq(*span, freq)
    frame = shaping.activity_frame(usage, freq=chosen, portfolio_names=portfolio_names,
                                   window=span)
    return figures.activity(frame, freq=chosen, window=span)


def scope_usage(least_privilege: pl.DataFrame) -> Spec:
    """``charts.scope_usage``'s figure."""
    return figures.scope_usage(shaping.scope_usage_frame(least_privilege))


def token_lifetimes(tokens: pl.DataFrame, *, now: datetime,
                    expiring_within: timedelta = timedelta(days=7)) -> Spec:
    """``charts.token_lifetimes``'s figure."""
    frame = shaping.token_lifetimes_frame(tokens, now=now, expiring_within=expiring_within)
    return figures.token_lifetimes(frame, now=now, expiring_within=expiring_within)
