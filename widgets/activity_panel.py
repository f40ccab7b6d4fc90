"""ActivityPanel: filters, the latest requests in a grid, and the activity, scope-usage and
token-lifetime charts of the client's ledger.

Each redraw puts new chart widgets in place (``widgets.figure.Chart``), whose first state
in the browser is the finished figure."""

from __future__ import annotations

import html
from datetime import UTC, date, datetime, timedelta

import ipywidgets as w
import polars as pl

from etoro_nb import frames
from etoro_nb.charts import specs
from etoro_nb.charts.figures import Spec
from etoro_nb.client import EtoroClient
from etoro_nb.errors import EtoroError
from widgets import tables
from widgets._common import Feedback, environment_badge, panel_repr
from widgets.figure import Chart
from widgets.grid import DataGrid
from widgets.state import CockpitState
from widgets.view import View

ALL = ""
MAX_ROWS = 6  # portfolios charted at once: more rows would be slow and unreadable


class ActivityPanel(View):
    """What each agent did, with which permission: from the client's ledger. Follows the
    portfolio selected in the other views; "all" shows every portfolio."""

    def __init__(self, client: EtoroClient, *, days: int = 7, freq: str = "1h",
                 state: CockpitState | None = None, hidden: bool = False) -> None:
        if client.ledger is None:
            raise ValueError("ActivityPanel reads the client's ledger: connect() with one")
        self.freq = freq
        self.badge = environment_badge(client)
        today = client.now().date()
        self.portfolio = w.Dropdown(description="Portfolio", options=[("all", ALL)], value=ALL)
        self.token = w.Dropdown(description="Token", options=[("all", ALL)], value=ALL)
        self.start_day = w.DatePicker(description="From", value=today - timedelta(days=days))
        self.end = w.DatePicker(description="To", value=today)
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.progress = w.IntProgress(value=0, min=0, max=4, description="Loading",
                                      layout=w.Layout(visibility="hidden"))
        self.requests = DataGrid("request_id", css_class="etoro-nb-requests",
                                 empty="No requests in this window.")
        self._figures: tuple[Chart, Chart, Chart] | None = None  # made by the first draw
        self.charts = w.VBox([])
        self.feedback = Feedback()
        self.refresh_button.on_click(lambda _: self.refresh())
        for control in (self.portfolio, self.token, self.start_day, self.end):
            control.observe(lambda _: self._filtered(), "value")
        self._filters_for: tuple[int, str | None] | None = None
        self.hidden = hidden  # in a tab not shown yet: drawn when shown (show_again)
        self._stale_drawing = False
        super().__init__(client, state, [
            self.badge, w.HBox([self.portfolio, self.token]),
            w.HBox([self.start_day, self.end, self.refresh_button, self.progress]),
            self.requests, self.charts, self.feedback], )
        self.start()

    def __repr__(self) -> str:
        portfolio = dict((v, k) for k, v in self.portfolio.options).get(self.portfolio.value)
        return panel_repr(self, self.client, f"portfolio {portfolio}, {self.start_day.value} to "
                                             f"{self.end.value}, every {self.freq}")

    def _window(self) -> tuple[datetime | None, datetime | None]:
        def at(day: date | None) -> datetime | None:
            return None if day is None else datetime(day.year, day.month, day.day, tzinfo=UTC)
        end = at(self.end.value)
        return at(self.start_day.value), None if end is None else end + timedelta(days=1)

    def _set_filters(self) -> None:
        """Portfolio and token choices from the shared state, keeping the current ones (not
        made again for the revision and portfolio they were made for: hundreds of tokens)."""
        if self._filters_for == (self.state.revision, self.portfolio.value):
            return
        with self.quiet():
            names = self.state.data.names()
            current = self.portfolio.value
            self.portfolio.options = [("all", ALL), *sorted((n, i) for i, n in names.items())]
            self.portfolio.value = current if current in names else ALL
            # A token is chosen within a portfolio: across all of them the list would hold
            # hundreds of tokens, their names repeated from one portfolio to the next.
            options = [("all", ALL)]
            if self.portfolio.value:
                tokens = self.state.data.tokens.filter(
                    pl.col("portfolio_id") == self.portfolio.value).sort("token_name")
                options += [(f"{name} ({status})", token_id) for token_id, name, status
                            in tokens.select("token_id", "token_name", "status").iter_rows()]
            chosen = self.token.value
            self.token.options = options
            self.token.value = chosen if chosen in {v for _, v in options} else ALL
            self.token.disabled = not self.portfolio.value
            self.token.tooltip = "" if self.portfolio.value else "Choose a portfolio first"
            self._filters_for = (self.state.revision, self.portfolio.value)

    def show_again(self) -> None:
        """The view is visible again: draw what changed while it was hidden."""
        self.hidden = False
        if self._stale_drawing:
            self._synced(self.render)

    def follow_selection(self) -> None:
        chosen = self.state.selected
        if chosen in {v for _, v in self.portfolio.options} and chosen != self.portfolio.value:
            self.portfolio.value = chosen
            self.render()

    def _filtered(self) -> None:
        if not self.syncing:
            self.render()

    def render(self) -> None:
        """Redraw the requests and the charts for the filters, showing progress meanwhile
        (when ``hidden``, only once it is shown again: a tab nobody looks at costs nothing)."""
        self._set_filters()
        if self.hidden:
            self._stale_drawing = True
            return
        self._stale_drawing = False
        self.progress.value, self.progress.layout.visibility = 0, "visible"
        try:
            self._draw()
        except EtoroError as exc:
            self.feedback.show_error(exc)
        finally:
            self.progress.layout.visibility = "hidden"

    def _draw(self) -> None:
        ledger = self.client.ledger
        assert ledger is not None
        data = self.state.data
        portfolio, token = self.portfolio.value or None, self.token.value or None
        start, end = self._window()
        usage = frames.usage(ledger, since=start, until=end, portfolio=portfolio, token=token)
        assert isinstance(usage, pl.DataFrame)
        self.progress.value = 1
        self.requests.show(tables.request_rows(usage.filter(pl.col("phase") == "outcome"), data))
        tokens = data.tokens
        if portfolio:
            tokens = tokens.filter(pl.col("portfolio_id") == portfolio)
        usage, tokens = self._most_active(usage, tokens)
        grants = frames.grants(tokens)
        if token:
            grants = grants.filter(pl.col("token_id") == token)
        least = frames.least_privilege(grants, usage)
        self.progress.value = 2
        drawn = (specs.activity(usage, freq=self.freq, portfolio_names=data.names()),
                 specs.scope_usage(least),
                 specs.token_lifetimes(tokens, now=data.at or self.client.now()))
        self.progress.value = 3
        made = tuple(Chart(spec) for spec in drawn)
        self._figures = made[0], made[1], made[2]
        shown = [chart if chart.traces else _nothing(chart.spec) for chart in made]
        old, self.charts.children = self.charts.children, tuple(shown)
        for widget in old:
            widget.close()
        self.progress.value = 4

    @property
    def activity(self) -> Chart:
        """The activity chart last drawn."""
        return self._figure(0)

    @property
    def scope_usage(self) -> Chart:
        """The scope-usage chart last drawn."""
        return self._figure(1)

    @property
    def lifetimes(self) -> Chart:
        """The token-lifetime chart last drawn."""
        return self._figure(2)

    def _figure(self, index: int) -> Chart:
        if self._figures is None:  # not drawn yet: one empty stand-in for the three, made
            blank = Chart(Spec([], {}))  # when asked for
            self._figures = blank, blank, blank
        return self._figures[index]

    def _most_active(self, usage: pl.DataFrame,
                     tokens: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """All of it, or the usage and tokens of the MAX_ROWS most active portfolios (saying
        so) when there are more: a chart of hundreds of rows is slow and unreadable."""
        counts = usage["portfolio_id"].drop_nulls().value_counts(name="n")
        shown = max(counts.height, tokens["portfolio_id"].n_unique())
        if shown <= MAX_ROWS:
            return usage, tokens
        keep = counts.top_k(MAX_ROWS, by=["n", "portfolio_id"], reverse=[False, True])[
            "portfolio_id"].implode()
        self.feedback.show_note(f"The charts show the {MAX_ROWS} most active of {shown} "
                                "portfolios in this window; choose a portfolio to see another.")
        return (usage.filter(pl.col("portfolio_id").is_in(keep)),
                tokens.filter(pl.col("portfolio_id").is_in(keep)))


def _nothing(spec: Spec) -> w.HTML:
    """What stands for a chart with nothing to draw: its title and a word, not empty axes."""
    title = spec.title or "Chart"
    return w.HTML(f'<div class="enb-no-chart" style="color:#555;padding:4px 0"><b>'
                  f'{html.escape(title)}</b>: nothing in this window.</div>')
