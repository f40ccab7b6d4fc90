"""How the panel's charts are built (for speed, from dicts, without plotly's validation):
what they hold must be what plotly would have made of it, their layout what
``make_subplots`` gives, edits made afterwards are validated as usual, and the JSON a chart
widget draws is the figure's."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import pytest
from plotly.subplots import make_subplots

from etoro_nb.charts import figures
from etoro_nb.report import PLOTLY_MIME
from tests.test_charts import CHARTS, P1, P2, usage_frame
from widgets.figure import Chart

BUILT_FROM_DICTS = ["activity", "scope_usage", "token_lifetimes"]


def _chart(name: str, *, empty: bool = False) -> go.Figure:
    chart, inputs, options, _ = CHARTS[name]
    return chart(*(f.clear() if empty else f for f in inputs()), **options)


@pytest.mark.parametrize("empty", [False, True])
@pytest.mark.parametrize("name", BUILT_FROM_DICTS)
def test_plotly_validating_the_figure_changes_nothing(name: str, empty: bool) -> None:
    """Every property written is one plotly accepts as it is (no coercion, no rejection)."""
    fig = _chart(name, empty=empty)
    assert go.Figure(fig.to_dict()).to_dict() == fig.to_dict()


@pytest.mark.parametrize("n", range(1, 13))
def test_rows_are_laid_out_as_make_subplots_lays_them(n: int) -> None:
    titles = [f"row {i}" for i in range(n)]
    spacing = min(0.08, 0.3 / n) if n > 1 else 0.08
    expected = make_subplots(rows=n, cols=1, shared_xaxes=True, subplot_titles=titles,
                             vertical_spacing=spacing).to_dict()["layout"]
    expected.pop("template")
    assert figures._rows_layout(titles, spacing) == expected


@pytest.mark.parametrize("name", BUILT_FROM_DICTS)
def test_later_edits_are_validated(name: str) -> None:
    fig = _chart(name)
    edits: list[Any] = [lambda: fig.update_layout(height="tall"),
                        lambda: fig.layout.xaxis.update(type="no such type"),
                        lambda: fig.data[0].update(opacity=7),
                        lambda: fig.update_traces(marker_color="no such colour"),
                        lambda: fig.update_layout(no_such_property=1)]
    for edit in edits:
        with pytest.raises(ValueError):
            edit()


def test_activity_rows_can_be_edited_by_row() -> None:
    fig = figures_activity()
    fig.update_yaxes(range=[0, 9], row=2, col=1)
    fig.add_trace(go.Scatter(x=[1], y=[1], name="added"), row=2, col=1)
    assert list(fig.layout.yaxis2.range) == [0, 9] and fig.layout.yaxis.range is None
    assert (fig.data[-1].xaxis, fig.data[-1].yaxis) == ("x2", "y2")


def figures_activity() -> go.Figure:
    chart, _, _, _ = CHARTS["activity"]
    return chart(usage_frame(), freq="1h", portfolio_names={P1: "alpha01", P2: "beta0001"})


@pytest.mark.parametrize("name", BUILT_FROM_DICTS)
def test_a_chart_takes_the_template_as_it_stands(name: str) -> None:
    """An analyst's edit of the registered template shows in the next chart, as it did when
    every figure looked the template up by name."""
    import plotly.io as pio

    from etoro_nb.charts import style

    template = pio.templates[style.TEMPLATE]
    before = template.layout.paper_bgcolor
    template.layout.paper_bgcolor = "#fafafa"
    try:
        assert _chart(name).layout.template.layout.paper_bgcolor == "#fafafa"
    finally:
        template.layout.paper_bgcolor = before
    assert _chart(name).layout.template.layout.paper_bgcolor == before


@pytest.mark.parametrize("empty", [False, True])
@pytest.mark.parametrize("name", BUILT_FROM_DICTS)
def test_a_chart_widget_draws_the_figure(name: str, empty: bool) -> None:
    """The JSON a chart widget gives the browser is the figure's, in the template as it
    stands, with the template's trace defaults for the figure's own trace types only."""
    import json

    from plotly.io.json import to_json_plotly

    from etoro_nb.charts import specs

    _, inputs, options, _ = CHARTS[name]
    spec = getattr(specs, name)(*(f.clear() if empty else f for f in inputs()), **options)
    chart = Chart(spec)
    (output,) = chart.outputs
    drawn = json.loads(to_json_plotly(output["data"][PLOTLY_MIME]))  # dates as ISO text
    expected = json.loads(spec.figure().to_json())
    used = {trace.get("type", "scatter") for trace in expected["data"]}
    assert set(drawn["layout"]["template"]["data"]) == used & set(
        expected["layout"]["template"]["data"])
    expected["layout"]["template"]["data"] = drawn["layout"]["template"]["data"]
    assert drawn == expected
    assert chart.figure().to_dict() == spec.figure().to_dict()
    assert output["data"]["text/plain"] == f"<chart: {chart.title}>" and chart.title
