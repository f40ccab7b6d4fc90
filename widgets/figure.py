"""Charts as FigureWidgets that a browser always draws whole.

plotly's ``FigureWidget`` opens its comm (sending its first state to the browser) at the
start of its constructor, before its traces and layout are set; they follow in a second
message. A browser view that renders from the first state draws empty default axes, and
it did, about one render in four, when the page was busy (the ActivityPanel's charts, and
the browser test caught it again after its charts were drawn on a tab switch).
``WholeFigure`` opens its comm only once its constructor is done, so the first state the
browser gets holds every trace; it is never changed afterwards (a redraw makes a new one).
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go  # type: ignore[import-untyped]


class WholeFigure(go.FigureWidget):
    """A FigureWidget whose first state in the browser is the finished figure."""

    _complete = False

    def __init__(self, spec: dict[str, Any], *, validated: bool = False) -> None:
        """``validated``: ``spec`` is a figure's own (``Figure.to_dict()``), checked when that
        figure was made, so it is not checked again (that took most of the time); later
        edits are checked as usual."""
        super().__init__(spec, _validate=not validated)
        self._validate = self.layout._validate = True
        for trace in self.data:
            trace._validate = True
        self._complete = True
        self.open()

    def open(self) -> None:
        if self._complete:  # Widget.__init__ asks earlier: the state is not complete yet
            super().open()


def whole(figure: go.Figure) -> WholeFigure:
    """The figure as a ``WholeFigure``.

    Its template keeps the trace defaults of the trace types the figure has only: the
    default template holds defaults for every trace type plotly knows, and validating
    those again made up most of the time a chart took (about 15x the rest). The figure's
    properties were checked when it was made: the widget does not check them again."""
    # The figure's own properties, not a copy (``to_dict`` makes one): the widget copies them.
    layout = dict(figure._layout)
    template = layout.get("template")
    if isinstance(template, dict) and isinstance(template.get("data"), dict):
        used = {trace.get("type", "scatter") for trace in figure._data}
        layout["template"] = {**template, "data": {kind: v for kind, v in template["data"].items()
                                                   if kind in used}}
    return WholeFigure({"data": figure._data, "layout": layout}, validated=True)
