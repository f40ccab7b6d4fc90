"""ActivityPanel: filters, and the activity, scope-usage and token-lifetime charts as
FigureWidgets updated in place on refresh."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import ipywidgets as w
import plotly.graph_objects as go  # type: ignore[import-untyped]
import polars as pl

from etoro_nb import charts, frames
from etoro_nb.client import EtoroClient
from etoro_nb.errors import EtoroError
from widgets._common import Feedback, environment_badge, panel_repr

ALL = ""
MAX_ROWS = 6  # portfolios charted at once: more rows would be slow and unreadable


class ActivityPanel(w.VBox):
    """What each agent did, with which permission: from the client's ledger."""

    def __init__(self, client: EtoroClient, *, days: int = 7, freq: str = "1h") -> None:
        if client.ledger is None:
            raise ValueError("ActivityPanel reads the client's ledger: connect() with one")
        self.client = client
        self.freq = freq
        self.badge = environment_badge(client)
        today = client.now().date()
        self.portfolio = w.Dropdown(description="Portfolio", options=[("all", ALL)], value=ALL)
        self.token = w.Dropdown(description="Token", options=[("all", ALL)], value=ALL)
        self.start = w.DatePicker(description="From", value=today - timedelta(days=days))
        self.end = w.DatePicker(description="To", value=today)
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.progress = w.IntProgress(value=0, min=0, max=4, description="Loading",
                                      layout=w.Layout(visibility="hidden"))
        self.activity = go.FigureWidget()
        self.scope_usage = go.FigureWidget()
        self.lifetimes = go.FigureWidget()
        self.feedback = Feedback()
        self.refresh_button.on_click(lambda _: self.refresh())
        self.portfolio.observe(lambda _: self._token_choices(), "value")
        super().__init__([self.badge,
                          w.HBox([self.portfolio, self.token]),
                          w.HBox([self.start, self.end, self.refresh_button, self.progress]),
                          self.activity, self.scope_usage, self.lifetimes, self.feedback])
        self._tokens = pl.DataFrame(schema=frames.TOKENS_SCHEMA)
        self.refresh()

    def __repr__(self) -> str:
        portfolio = dict((v, k) for k, v in self.portfolio.options).get(self.portfolio.value)
        return panel_repr(self, self.client, f"portfolio {portfolio}, {self.start.value} to "
                                             f"{self.end.value}, every {self.freq}")

    def _window(self) -> tuple[datetime | None, datetime | None]:
        def at(day: date | None) -> datetime | None:
            return None if day is None else datetime(day.year, day.month, day.day, tzinfo=UTC)
        end = at(self.end.value)
        return at(self.start.value), None if end is None else end + timedelta(days=1)

    def _token_choices(self) -> None:
        tokens = self._tokens
        if self.portfolio.value:
            tokens = tokens.filter(pl.col("portfolio_id") == self.portfolio.value)
        current = self.token.value
        options = [("all", ALL), *((f"{t['token_name']} ({t['status']})", t["token_id"])
                                   for t in tokens.sort("token_name").iter_rows(named=True))]
        self.token.options = options
        self.token.value = current if current in {v for _, v in options} else ALL

    def refresh(self) -> None:
        """Reload frames and redraw the charts in place, showing progress meanwhile."""
        self.progress.value, self.progress.layout.visibility = 0, "visible"
        self.feedback.clear()
        try:
            ledger = self.client.ledger
            assert ledger is not None
            now = self.client.now()
            self._tokens = frames.tokens(self.client, now=now)
            names = {p.id: p.name for p in self.client.agent_portfolios.list()}
            self.portfolio.options = [("all", ALL), *sorted(((n, i) for i, n in names.items()))]
            self._token_choices()
            self.progress.value = 1
            start, end = self._window()
            usage = frames.usage(ledger, since=start, until=end,
                                 portfolio=self.portfolio.value or None,
                                 token=self.token.value or None)
            assert isinstance(usage, pl.DataFrame)
            self.progress.value = 2
            grants = frames.grants(self._tokens)
            if self.portfolio.value:
                grants = grants.filter(pl.col("portfolio_id") == self.portfolio.value)
            if self.token.value:
                grants = grants.filter(pl.col("token_id") == self.token.value)
            least = frames.least_privilege(grants, usage)
            self.progress.value = 3
            tokens = self._tokens
            if self.portfolio.value:
                tokens = tokens.filter(pl.col("portfolio_id") == self.portfolio.value)
            _replace(self.activity, charts.activity(self._most_active(usage), freq=self.freq,
                                                    portfolio_names=names))
            _replace(self.scope_usage, charts.scope_usage(least))
            _replace(self.lifetimes, charts.token_lifetimes(tokens, now=now))
            self.progress.value = 4
        except EtoroError as exc:
            self.feedback.show_error(exc)
        finally:
            self.progress.layout.visibility = "hidden"


    def _most_active(self, usage: pl.DataFrame) -> pl.DataFrame:
        """All of it, or the MAX_ROWS most active portfolios (saying so) when there are more."""
        counts = (usage.filter(pl.col("portfolio_id").is_not_null()).group_by("portfolio_id")
                  .len().sort(["len", "portfolio_id"], descending=[True, False]))
        if counts.height <= MAX_ROWS:
            return usage
        keep = counts.head(MAX_ROWS)["portfolio_id"]
        self.feedback.show_ok(f"Activity shows the {MAX_ROWS} most active of {counts.height} "
                              "portfolios in this window; choose a portfolio to see another.")
        return usage.filter(pl.col("portfolio_id").is_in(keep.implode()))


def _replace(widget: go.FigureWidget, figure: go.Figure) -> None:
    """Swap a FigureWidget's content for a new figure's, keeping the widget itself."""
    with widget.batch_update():
        widget.data = ()
        widget.layout = go.Layout()
        widget.add_traces(list(figure.data))
        widget.layout = figure.layout
