"""Charts as Output widgets that JupyterLab's plotly renderer draws from the figure's JSON.

A chart widget is made complete: its one output (the figure, template included) is set
before its comm opens, so the first state the browser gets holds every trace, and it is
never changed afterwards (a redraw makes a new one). Charts used to be ``FigureWidget``s,
which open their comm before their traces are set: a browser view drawing that first state
showed empty axes, about one render in four. Drawing from JSON also skips plotly's figure
objects, which took longer to make than the chart's data (``figures.Spec``)."""

from __future__ import annotations

from typing import Any

import ipywidgets as w
import plotly.graph_objects as go  # type: ignore[import-untyped]

from etoro_nb.charts.figures import Spec
from etoro_nb.report import PLOTLY_MIME


class Chart(w.Output):
    """One plotly chart of a ``figures.Spec``; ``figure()`` gives it as a ``go.Figure``, to
    edit or save."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        drawn = {"output_type": "display_data", "metadata": {},
                 "data": {PLOTLY_MIME: spec.drawn(), "text/plain": f"<chart: {spec.title}>"}}
        super().__init__(outputs=(drawn,), layout=w.Layout(width="100%"))
        self.add_class("enb-chart")

    @property
    def title(self) -> str:
        return self.spec.title

    @property
    def traces(self) -> list[dict[str, Any]]:
        """The chart's traces, as plotly's JSON (``name``, ``x``, ``y``, ...)."""
        return self.spec.data

    def figure(self) -> go.Figure:
        return self.spec.figure()
