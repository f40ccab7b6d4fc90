"""The figure builders: each maps the columns of a ``shaping`` frame to plotly marks and
styles, and computes nothing else. Imported only when a chart is drawn (it loads plotly).

The builders of the cockpit's charts (``activity``, ``scope_usage``, ``token_lifetimes``)
return a ``Spec``, the figure's JSON, which a widget draws as it is; the others return a
``go.Figure``. A frame without rows gives a titled figure whose annotation says so, with no
data traces. Every figure uses the project's template (``style.TEMPLATE``), registered with
plotly here, once, when this module loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import plotly.graph_objects as go  # type: ignore[import-untyped]
import plotly.io as pio  # type: ignore[import-untyped]
import polars as pl
from plotly._subplots import SubplotRef  # type: ignore[import-untyped]
from plotly.subplots import make_subplots  # type: ignore[import-untyped]

from etoro_nb.charts import style
from etoro_nb.charts.shaping import SCOPE_STATES, activity_ticks, utc
from etoro_nb.charts.style import TEMPLATE


def register_template() -> go.layout.Template:
    """The project's template in ``plotly.io.templates`` (registered on the first call, the
    same object after): plotly's white template, the project's palette and font, titles on
    the left, hover text aligned left."""
    if TEMPLATE not in pio.templates:
        template = go.layout.Template(pio.templates["plotly_white"])
        template.layout.update(
            colorway=list(style.PALETTE), font={"family": style.FONT, "size": 13},
            title={"x": 0.01, "xanchor": "left", "font": {"size": 16}},
            hoverlabel={"align": "left"}, margin={"t": 64, "r": 24})
        pio.templates[TEMPLATE] = template
    registered: go.layout.Template = pio.templates[TEMPLATE]
    return registered


register_template()


@dataclass(frozen=True)
class Spec:
    """A figure as the builders of the cockpit's charts write it: plotly's JSON of its
    traces and layout, without the template. ``figure()`` makes the ``go.Figure`` (what
    ``charts.activity``, ``scope_usage`` and ``token_lifetimes`` return); ``drawn()`` is what
    a browser draws, template included, which the cockpit's chart widgets show as it is
    (``widgets.figure.Chart``): making a ``go.Figure`` took longer than the chart's data.
    ``rows``: the stacked subplot rows the layout holds (0: none), which a figure made of it
    can be edited by (``fig.update_yaxes(row=2, col=1)``)."""

    data: list[dict[str, Any]]
    layout: dict[str, Any]
    rows: int = 0

    @property
    def title(self) -> str:
        title = self.layout.get("title", {}).get("text")
        return title if isinstance(title, str) else ""

    def figure(self) -> go.Figure:
        """The figure in the project's template as it stands now (a user may edit it).

        plotly validates every property it is given, and the template's again on each
        figure: that took most of a chart's time (about 10x the rest). What the builders
        write is checked by their tests instead (plotly validating it changes nothing), so
        the figure is made without it, then validates every later edit as usual. Its JSON is
        what the validated figure's was."""
        template = register_template().to_plotly_json()
        fig = go.Figure({"data": self.data, "layout": {**self.layout, "template": template}},
                        _validate=False)
        fig._validate = fig.layout._validate = True
        for trace in fig.data:
            trace._validate = True
        if self.rows:  # what make_subplots leaves for later edits by row
            fig._grid_ref = [[(SubplotRef("xy", (f"xaxis{s}", f"yaxis{s}"),
                                          {"xaxis": f"x{s}", "yaxis": f"y{s}"}),)]
                             for s in ("" if r == 1 else str(r) for r in range(1, self.rows + 1))]
        return fig

    def drawn(self) -> dict[str, Any]:
        """The figure as a browser draws it: the spec in the project's template, with the
        trace defaults of its own trace types only (a drawn chart is not given new traces, and
        the defaults of every trace type plotly knows would be most of what is sent). Values
        are plotly's JSON's, but for dates, which stay ``datetime``s: a widget's comm writes
        them as ISO text when it sends them, as it does a ``FigureWidget``'s."""
        template = register_template().to_plotly_json()
        used = {trace.get("type", "scatter") for trace in self.data}
        template["data"] = {kind: v for kind, v in template.get("data", {}).items() if kind in used}
        return {"data": self.data, "layout": {**self.layout, "template": template}}


def _empty_spec(title: str, message: str) -> Spec:
    return Spec([], {
        "title": {"text": title}, "height": 320,
        "xaxis": {"visible": False}, "yaxis": {"visible": False},
        "annotations": [{"text": message, "name": "empty", "xref": "paper", "yref": "paper",
                         "x": 0.5, "y": 0.5, "showarrow": False, "font": {"size": 16}}]})


def _empty(title: str, message: str) -> go.Figure:
    return _empty_spec(title, message).figure()


def _stacked_rows(n: int, spacing: float) -> list[tuple[float, float]]:
    """The y domains of ``n`` rows from the top, with ``spacing`` between them: exactly
    what ``make_subplots(rows=n, cols=1, vertical_spacing=spacing)`` gives (its arithmetic,
    float for float), without building its figure."""
    heights = [(1.0 - spacing * (n - 1)) / n] * n
    domains = []
    for r in range(n):
        base = sum(heights[:n - 1 - r]) + (n - 1 - r) * spacing
        start, end = base + 0.0, base + heights[-1 - r] - 0.0
        domains.append((0.0 if -0.01 < start < 0.0 else start, 1.0 if 1.0 < end < 1.01 else end))
    return domains


def _rows_layout(titles: list[str], spacing: float) -> dict[str, Any]:
    """Axes and row titles of ``make_subplots(rows=len(titles), cols=1, shared_xaxes=True,
    subplot_titles=titles, vertical_spacing=spacing)``: each row's axes anchored to each
    other, every x axis matching the bottom one (whose tick labels alone are shown)."""
    n = len(titles)
    layout: dict[str, Any] = {"annotations": []}
    for r, (start, end) in enumerate(_stacked_rows(n, spacing), start=1):
        suffix = "" if r == 1 else str(r)
        xaxis: dict[str, Any] = {"anchor": f"y{suffix}", "domain": [0.0, 1.0]}
        if r < n:
            xaxis |= {"matches": f"x{n}", "showticklabels": False}
        layout[f"xaxis{suffix}"] = xaxis
        layout[f"yaxis{suffix}"] = {"anchor": f"x{suffix}", "domain": [start, end]}
        if titles[r - 1]:
            layout["annotations"].append({
                "font": {"size": 16}, "showarrow": False, "text": titles[r - 1], "x": 0.5,
                "xanchor": "center", "xref": "paper", "y": end, "yanchor": "bottom",
                "yref": "paper"})
    return layout


# -- activity -----------------------------------------------------------------------------
def activity(frame: pl.DataFrame, *, freq: str, window: tuple[datetime, datetime]) -> Spec:
    """Request bars in each portfolio's colour, and refusal and trade markers, a row per panel,
    from ``shaping.activity_frame``; ticks from ``shaping.activity_ticks`` over ``window``."""
    title = f"Requests per portfolio ({freq} buckets)"
    if frame.is_empty():
        return _empty_spec(title, "No usage recorded in this window")
    # The frame's few rows as Python lists, grouped here: a polars call per part and
    # column cost more than the figure's whole making.
    columns = frame.to_dict(as_series=False)
    titles = [title for _, title in dict.fromkeys(zip(columns["panel"], columns["panel_title"],
                                                      strict=True))]
    n = len(titles)
    colours = style.portfolio_colours(frame["portfolio"].unique().sort().to_list())
    layout = _rows_layout(titles, min(0.08, 0.3 / n) if n > 1 else 0.08)
    parts: dict[tuple[Any, ...], list[int]] = {}
    for i, key in enumerate(zip(columns["panel"], columns["mark"], columns["series"], strict=True)):
        parts.setdefault(key, []).append(i)
    traces: list[dict[str, Any]] = []
    shown: set[str] = set()
    for (panel, mark, series), rows in parts.items():
        part = {name: [values[i] for i in rows] for name, values in columns.items()}
        legend = series not in shown
        if mark == "requests":
            trace = _requests(part, legend, colours[str(series)])
        else:
            trace = (_errors if mark == "refused / errors" else _trades)(part, legend)
        suffix = "" if panel == 1 else str(panel)
        traces.append({**trace, "xaxis": f"x{suffix}", "yaxis": f"y{suffix}"})
        shown.add(str(series))
    ticks = activity_ticks(*window)
    for row in range(1, n + 1):
        layout[f"yaxis{'' if row == 1 else row}"] |= {"title": {"text": "requests"},
                                                       "rangemode": "tozero"}
        layout[f"xaxis{'' if row == 1 else row}"] |= {
            "type": "date", "range": list(window), "tickvals": ticks["at"].to_list(),
            "ticktext": ticks["label"].to_list()}
    layout[f"xaxis{'' if n == 1 else n}"]["title"] = {"text": "time (UTC)"}
    height = 160 + 220 * n
    return Spec(traces, {**layout, "title": {"text": title}, "barmode": "stack",
                         "height": height, "legend": style.legend_below(height)}, rows=n)


def _requests(part: dict[str, list[Any]], legend: bool, colour: str) -> dict[str, Any]:
    name, where = part["series"][0], part["panel_title"][0]
    return {
        "type": "bar", "x": part["bucket_mid"], "y": part["count"],
        "width": part["width_ms"],
        "name": name, "legendgroup": name, "showlegend": legend, "marker": {"color": colour},
        "customdata": [list(row) for row in zip(part["span"], part["failed"], part["detail"],
                                                 part["operations"], strict=True)],
        "hovertemplate": ("%{customdata[0]}<br>requests: %{y}"
                          "<br>refused / errors: %{customdata[1]}<br>%{customdata[3]}"
                          f"<br>by: %{{customdata[2]}}<extra>{where}</extra>")}


def _errors(part: dict[str, list[Any]], legend: bool) -> dict[str, Any]:
    name, where = "refused / errors", part["panel_title"][0]
    return {
        "type": "scatter", "x": part["bucket_mid"], "y": part["count"],
        "mode": "markers+text", "text": [str(v) for v in part["count"]],
        "textposition": "top center", "textfont": {"color": style.ERROR_COLOUR},
        "name": name, "legendgroup": name, "showlegend": legend,
        "marker": {"color": style.ERROR_COLOUR, "symbol": "x", "size": 11},
        "customdata": [list(row) for row in zip(part["span"], part["detail"], strict=True)],
        "hovertemplate": ("<b>refused / errors: %{y}</b><br>%{customdata[0]}"
                          f"<br>%{{customdata[1]}}<extra>{where}</extra>")}


def _trades(part: dict[str, list[Any]], legend: bool) -> dict[str, Any]:
    where = part["panel_title"][0]
    return {
        "type": "scatter", "x": part["bucket_mid"], "y": part["count"],
        "mode": "markers", "name": "trades", "legendgroup": "trades", "showlegend": legend,
        "marker": {"color": style.TRADE_COLOUR, "symbol": "diamond", "size": 10,
                   "line": {"color": "white", "width": 1}},
        "customdata": [list(row) for row in zip(part["span"], part["detail"], strict=True)],
        "hovertemplate": ("<b>trades: %{y}</b><br>%{customdata[0]}"
                          f"<br>%{{customdata[1]}}<extra>{where}</extra>")}


# -- scope usage --------------------------------------------------------------------------
def scope_usage(frame: pl.DataFrame) -> Spec:
    """A tokens x scopes heatmap with a discrete colour per state, from
    ``shaping.scope_usage_frame``."""
    title = "Scope usage per token"
    if frame.is_empty():
        return _empty_spec(title, "No scope grants or usage in this window")
    # One pass over the cells, grouped by token in order of appearance (a partition per
    # token cost a polars call each).
    tokens: dict[str, list[tuple[Any, ...]]] = {}
    for cell in frame.select("token_id", "token", "scope", "scope_label", "text",
                             pl.col("state").to_physical().alias("z"), "state", "used",
                             "refused", "verdict", "granted").iter_rows():
        tokens.setdefault(cell[0], []).append(cell)
    rows = list(tokens.values())
    scopes = [cell[2] for cell in rows[0]]
    k = len(SCOPE_STATES)
    colourscale: list[list[object]] = []
    for i, state in enumerate(SCOPE_STATES):
        colour = style.SCOPE_COLOURS[state]
        colourscale += [[i / k, colour], [(i + 1) / k, colour]]
    heatmap = {
        "type": "heatmap", "z": [[cell[5] for cell in row] for row in rows],
        "x": scopes, "y": [row[0][1] for row in rows],
        "customdata": [[[*cell[6:10], "yes" if cell[10] else "no"] for cell in row]
                       for row in rows],
        "text": [[cell[4] for cell in row] for row in rows], "texttemplate": "%{text}",
        "colorscale": colourscale, "zmin": -0.5, "zmax": k - 0.5, "xgap": 2, "ygap": 2,
        "colorbar": {"title": {"text": "scope"}, "tickvals": list(range(k)),
                     "ticktext": list(SCOPE_STATES)},
        "hovertemplate": ("<b>%{y}</b><br>%{x}<br>%{customdata[0]}<br>granted: %{customdata[4]}"
                          "<br>used: %{customdata[1]}<br>refused: %{customdata[2]}"
                          "<br>verdict: %{customdata[3]}<extra></extra>")}
    return Spec([heatmap], {
        "title": {"text": title}, "height": 220 + 36 * len(rows),
        "xaxis": {"title": {"text": "scope"}, "tickvals": scopes,
                  "ticktext": [cell[3] for cell in rows[0]]},
        "yaxis": {"title": {"text": "token"}, "autorange": "reversed"}})


# -- token lifetimes ----------------------------------------------------------------------
_LIFETIME_HOVER = ("<b>%{y}</b> · %{customdata[0]}<br>portfolio: %{customdata[1]}"
                   "<br>application: %{customdata[2]}<br>scopes: %{customdata[3]}"
                   "<br>created: %{customdata[4]}<br>%{customdata[5]}: %{customdata[6]}"
                   "<extra></extra>")


def token_lifetimes(frame: pl.DataFrame, *, now: datetime, expiring_within: timedelta) -> Spec:
    """A horizontal bar per token, coloured by status, with ``now`` and the expiring window
    marked, from ``shaping.token_lifetimes_frame``."""
    now = utc(now)
    title = f"Token lifetimes (now: {style.when(now)})"
    if frame.is_empty():
        return _empty_spec(title, "No tokens to show")
    dated = frame.filter(pl.col("start").is_not_null())
    groups = dated.partition_by("status", as_dict=True)
    traces = [_lifetime_bars(groups[(status,)], status, colour)
              for status, colour in style.STATUS_COLOURS.items() if (status,) in groups]
    open_ended = dated.filter(pl.col("ends") == "never expires")
    if not open_ended.is_empty():
        traces.append({
            "type": "scatter", "x": [now] * open_ended.height, "y": open_ended["token"].to_list(),
            "mode": "markers", "name": "never expires",
            "marker": {"symbol": "triangle-right", "size": 12,
                       "color": style.STATUS_COLOURS["active"]},
            "customdata": [style.when(start) for start in open_ended["start"].to_list()],
            "hovertemplate": "<b>%{y}</b><br>never expires<br>created: %{customdata}<extra></extra>"})
    annotations: list[dict[str, Any]] = [{"name": "now", "x": now, "xref": "x", "y": 1, "yref": "paper",
                                          "text": "now", "showarrow": False, "yanchor": "bottom"}]
    if undated := frame.height - dated.height:
        annotations.append({"name": "undated", "xref": "paper", "yref": "paper", "x": 0, "y": -0.18,
                            "showarrow": False, "xanchor": "left",
                            "text": f"{undated} token(s) without a creation time not shown"})
    height = 220 + 32 * dated.height
    return Spec(traces, {
        "shapes": [{"type": "rect", "name": "expiring window", "xref": "x", "yref": "paper",
                    "x0": now, "x1": now + expiring_within, "y0": 0, "y1": 1, "layer": "below",
                    "fillcolor": style.STATUS_COLOURS["expiring"], "opacity": 0.08,
                    "line": {"width": 0}},
                   {"type": "line", "name": "now", "xref": "x", "yref": "paper", "x0": now,
                    "x1": now, "y0": 0, "y1": 1, "line": {"color": "#333333", "width": 2,
                                                          "dash": "dot"}}],
        "annotations": annotations,
        "xaxis": {"type": "date", "title": {"text": "time (UTC)"}},
        "yaxis": {"title": {"text": "token"}, "autorange": "reversed", "type": "category"},
        "title": {"text": title}, "barmode": "overlay", "height": height,
        "legend": {**style.legend_below(height), "title": {"text": "status"}}})


def _lifetime_bars(group: pl.DataFrame, status: str, colour: str) -> dict[str, Any]:
    expiring = status == "expiring"
    return {
        "type": "bar", "orientation": "h", "name": status, "legendgroup": status,
        "y": group["token"].to_list(), "base": group["start"].to_list(),
        "x": group["duration_ms"].to_list(),
        "marker": {"color": colour, "line": {"color": "#000000" if expiring else colour,
                                             "width": 2 if expiring else 0}},
        "customdata": [[status, portfolio, application, scopes, style.when(start), ends,
                        style.when(end)]
                       for portfolio, application, scopes, start, ends, end in group.select(
                           "portfolio", "application", "scopes", "start", "ends", "end").iter_rows()],
        "hovertemplate": _LIFETIME_HOVER}


# -- portfolio value ----------------------------------------------------------------------
def portfolio_value(frame: pl.DataFrame) -> go.Figure:
    """Value lines (agent account, owner mirror on a second axis) and P&L bars, a colour
    per portfolio, from ``shaping.portfolio_value_frame``."""
    title = "Agent portfolio value and P&L"
    if frame.is_empty():
        return _empty(title, "No value history recorded")
    names = frame["name"].unique(maintain_order=True).to_list()
    colours = style.portfolio_colours(names)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        row_heights=[0.62, 0.38],
                        specs=[[{"secondary_y": True}], [{}]],
                        subplot_titles=["value: agent account (solid) and owner mirror (dashed)",
                                        "P&L"])
    for name in names:
        part = frame.filter(pl.col("name") == name)
        ts = part["ts"].to_list()
        colour = colours[name]
        fig.add_trace(go.Scatter(
            x=ts, y=part["agent_value_usd"].to_list(), mode="lines+markers",
            name=f"{name} · agent account", legendgroup=name, line={"color": colour},
            hovertemplate=(f"<b>{name}</b> agent account<br>%{{x|%Y-%m-%d %H:%M}} UTC"
                           "<br>value: $%{y:,.2f}<extra></extra>")),
            row=1, col=1, secondary_y=False)
        fig.add_trace(go.Scatter(
            x=ts, y=part["mirror_value_usd"].to_list(), mode="lines+markers",
            name=f"{name} · owner mirror", legendgroup=name,
            line={"color": colour, "dash": "dash"}, marker={"symbol": "circle-open"},
            hovertemplate=(f"<b>{name}</b> owner mirror<br>%{{x|%Y-%m-%d %H:%M}} UTC"
                           "<br>value: $%{y:,.2f}<extra></extra>")),
            row=1, col=1, secondary_y=True)
        fig.add_trace(go.Bar(
            x=ts, y=part["pnl_usd"].to_list(), name=f"{name} · P&L", legendgroup=name,
            marker={"color": colour},
            hovertemplate=(f"<b>{name}</b> P&L<br>%{{x|%Y-%m-%d %H:%M}} UTC"
                           "<br>$%{y:+,.2f}<extra></extra>")),
            row=2, col=1)
    fig.update_yaxes(title_text="agent account (USD)", row=1, col=1, secondary_y=False)
    fig.update_yaxes(title_text="owner mirror (USD)", row=1, col=1, secondary_y=True,
                     showgrid=False)
    fig.update_yaxes(title_text="P&L (USD)", zeroline=True, zerolinecolor="#888888",
                     row=2, col=1)
    fig.update_xaxes(title_text="time (UTC)", row=2, col=1)
    fig.update_layout(title={"text": title}, template=TEMPLATE, barmode="group", height=620,
                      hovermode="closest", legend=style.legend_below(620))
    return fig


# -- delegation map -----------------------------------------------------------------------
def sankey(nodes: pl.DataFrame, links: pl.DataFrame, *, node_colours: list[str],
           link_colours: list[str], title: str, height: int, pad: int, thickness: int,
           columns: tuple[tuple[str, float], ...]) -> go.Figure:
    """A Sankey of ``nodes`` (``label``, ``detail``) and ``links`` (``source``, ``target``,
    ``value``, ``detail``) in the given colours, with a title over each column of nodes
    (``(text, x)``): what the two delegation maps share (``charts.delegation`` draws the
    team's with it)."""
    fig = go.Figure(go.Sankey(
        arrangement="snap", valueformat=".0f",
        node={"label": nodes["label"].to_list(), "color": node_colours,
              "customdata": nodes["detail"].to_list(),
              "pad": pad, "thickness": thickness, "line": {"color": "white", "width": 0.5},
              "hovertemplate": "<b>%{label}</b><br>%{customdata}<extra></extra>"},
        link={"source": links["source"].to_list(), "target": links["target"].to_list(),
              "value": links["value"].to_list(), "color": link_colours,
              "customdata": links["detail"].to_list(),
              "hovertemplate": ("%{source.label} → %{target.label}<br>%{customdata}"
                                "<extra></extra>")}))
    fig.update_layout(title={"text": title}, template=TEMPLATE, height=height,
                      annotations=[{"text": text, "x": x, "y": 1.04, "xref": "paper",
                                    "yref": "paper", "showarrow": False, "name": "column"}
                                   for text, x in columns])
    return fig


def delegation_map(nodes: pl.DataFrame, links: pl.DataFrame) -> go.Figure:
    """A Sankey of ``shaping.delegation_nodes`` and ``shaping.delegation_links``: portfolios
    in their own colours, tokens and their links in their status's."""
    title = "Delegation: owner → agent portfolios → tokens → applications"
    if nodes.is_empty():
        return _empty(title, "No agent portfolios or tokens to show")
    ports = nodes.filter(pl.col("kind") == "portfolio")
    # A portfolio's colour follows its name, as in every other chart.
    by_name = style.portfolio_colours(ports["label"].to_list())
    colours = {key: by_name[label] for key, label in ports.select("key", "label").iter_rows()}
    fixed = {"owner": style.OWNER_COLOUR, "application": style.APPLICATION_COLOUR}
    node_colours = [colours[key] if kind == "portfolio"
                    else style.STATUS_COLOURS.get(status, style.GREY) if kind == "token"
                    else fixed[kind]
                    for kind, key, status in nodes.select("kind", "key", "status").iter_rows()]
    link_colours = [style.rgba(colours[pid] if pid is not None
                               else style.STATUS_COLOURS.get(status, style.GREY), style.LINK_ALPHA)
                    for pid, status in links.select("portfolio_id", "status").iter_rows()]
    tokens = nodes.filter(pl.col("kind") == "token").height
    return sankey(nodes, links, node_colours=node_colours, link_colours=link_colours,
                  title=title, height=max(360, 120 + 28 * tokens + 20 * ports.height),
                  pad=18, thickness=16, columns=(("owner", 0.0), ("portfolios", 0.33),
                                                 ("tokens", 0.66), ("applications", 1.0)))


# -- the rebalancer's run -----------------------------------------------------------------
def rebalance_weights(weights: pl.DataFrame, gaps: pl.DataFrame, events: pl.DataFrame) -> go.Figure:
    """Weight lines with dashed targets above, the largest gap (log axis) below, refused and
    stopped steps as vertical lines; from the three ``shaping.rebalance_*`` frames."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35],
                        vertical_spacing=0.08,
                        subplot_titles=("Weight of each instrument (dashed: its target)",
                                        "Largest gap to a target (log scale)"))
    fig.update_layout(title={"text": "The rebalancer's run, step by step"},
                      template=TEMPLATE, height=560,
                      legend={**style.legend_below(560), "title": {"text": "instrument"}})
    fig.update_yaxes(title_text="weight", tickformat=".0%", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="gap", type="log", tickformat=".2%", row=2, col=1)
    fig.update_xaxes(title_text="time (UTC)", row=2, col=1)
    for part in weights.partition_by("instrument", maintain_order=True):
        for trace in _instrument(part):
            fig.add_trace(trace, row=1, col=1)
    if not gaps.is_empty():
        grey = style.GAP_COLOUR
        fig.add_trace(go.Scatter(
            x=gaps["at"].to_list(), y=[max(g, style.GAP_FLOOR) for g in gaps["gap"].to_list()],
            mode="lines+markers", name="largest gap", line={"color": grey, "width": 1},
            marker={"size": 8, "color": ["white" if p == "before" else grey
                                         for p in gaps["phase"].to_list()],
                    "line": {"color": grey, "width": 1.5}},
            customdata=gaps.select("step", "phase", "gap").rows(),
            hovertemplate=("step %{customdata[0]} (%{customdata[1]} its orders)<br>"
                           "largest gap %{customdata[2]:.3%}<extra></extra>")), row=2, col=1)
    for at, step, outcome, event in events.select("at", "step", "outcome", "event").iter_rows():
        colour = style.EVENT_COLOURS[event]
        fig.add_vline(x=at, line={"color": colour, "dash": "dot", "width": 2}, row="all", col=1)
        fig.add_annotation(x=at, y=1, yref="y domain", text=f"step {step}: {outcome}",
                           showarrow=False, textangle=-90, xanchor="right", yanchor="top",
                           font={"color": colour, "size": 11}, row=1, col=1)
    if weights.is_empty():
        fig.add_annotation(text="No step read the account", xref="paper", yref="paper",
                           x=0.5, y=0.5, showarrow=False, font={"size": 16})
    return fig


def _instrument(part: pl.DataFrame) -> list[go.Scatter]:
    """An instrument's weight line and, if it has a target, the target's dashed line."""
    name, slot, target = part["instrument"][0], part["slot"][0], part["target"][0]
    palette = style.INSTRUMENT_PALETTE
    colour = style.CASH_COLOUR if slot is None else palette[slot % len(palette)]
    traces = [go.Scatter(
        x=part["at"].to_list(), y=part["weight"].to_list(), mode="lines+markers", name=name,
        legendgroup=name, line={"color": colour, "width": 2}, marker={"size": 5},
        customdata=part.select("step", "phase", "value_usd").rows(),
        hovertemplate=(f"<b>{name}</b> step %{{customdata[0]}} (%{{customdata[1]}})<br>"
                       "weight %{y:.2%}, %{customdata[2]:,.2f} USD<extra></extra>"))]
    if target is not None:
        traces.append(go.Scatter(
            x=[part["at"].min(), part["at"].max()], y=[target, target], mode="lines",
            name=f"{name} target", legendgroup=name, showlegend=False,
            line={"color": colour, "dash": "dash", "width": 1},
            hovertemplate=f"{name} target {target:.1%}<extra></extra>"))
    return traces


# -- risk boundaries ----------------------------------------------------------------------
def exposure(lines: pl.DataFrame, marks: pl.DataFrame, *, title: str) -> go.Figure:
    """Gross exposure against its limit above, the day's loss against its limit below (as
    steps), refusals as points, the owner's and the session's events as vertical lines;
    from ``shaping.exposure_frame`` and ``shaping.exposure_marks_frame``."""
    if lines.is_empty() and marks.is_empty():
        return _empty(title, "No agent session recorded a book for this portfolio")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.6, 0.4],
                        vertical_spacing=0.08,
                        subplot_titles=("Gross exposure (USD) and its limit",
                                        "Realised loss of the UTC day (USD) and its limit"))
    fig.update_layout(title={"text": title}, template=TEMPLATE, height=560,
                      legend=style.legend_below(560))
    fig.update_yaxes(title_text="USD", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="USD", rangemode="tozero", row=2, col=1)
    fig.update_xaxes(title_text="time (UTC)", row=2, col=1)
    for (panel, series), part in lines.partition_by("panel", "series", maintain_order=True,
                                                     as_dict=True).items():
        limit = "limit" in str(series)
        fig.add_trace(go.Scatter(
            x=part["ts"].to_list(), y=part["value_usd"].to_list(), mode="lines", name=series,
            line={"color": style.EXPOSURE_COLOURS[str(series)], "shape": "hv",
                  "dash": "dash" if limit else "solid", "width": 1.5 if limit else 2},
            customdata=part["event"].to_list(),
            hovertemplate=f"{series} %{{y:,.2f}} USD<br>%{{customdata}}<extra></extra>"),
            row=panel, col=1)
    for (mark,), part in marks.filter(pl.col("panel") > 0).partition_by(
            "mark", maintain_order=True, as_dict=True).items():
        for (panel,), rows in part.partition_by("panel", maintain_order=True,
                                                as_dict=True).items():
            fig.add_trace(go.Scatter(
                x=rows["ts"].to_list(), y=rows["value_usd"].to_list(), mode="markers",
                name=mark, legendgroup=mark, showlegend=panel == part["panel"][0],
                marker={"symbol": "x", "size": 10, "color": style.MARK_COLOURS[str(mark)]},
                customdata=rows["text"].to_list(),
                hovertemplate="%{customdata}<extra></extra>"), row=panel, col=1)
    for at, mark, text in marks.filter(pl.col("panel") == 0).select("ts", "mark",
                                                                    "text").iter_rows():
        colour = style.MARK_COLOURS[mark]
        fig.add_vline(x=at, line={"color": colour, "dash": "solid" if mark == "stopped"
                                  else "dot", "width": 1.5}, row="all", col=1)
        fig.add_annotation(x=at, y=1, yref="y domain", text=mark, hovertext=text,
                           showarrow=False, textangle=-90, xanchor="right", yanchor="top",
                           font={"color": colour, "size": 11}, row=1, col=1)
    return fig
