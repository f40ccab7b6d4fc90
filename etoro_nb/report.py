"""Running an analysis template with parameters and rendering it to HTML (for scheduling).

The template runs with papermill in the current folder (so a relative path given as a
parameter means what it says where the command was typed), against whichever environment
its ``connect()`` finds: the sandbox by default, live when ``ETORO_API_KEY`` /
``ETORO_USER_KEY`` are set for the process. The executed notebook is kept beside the HTML
as evidence; widget state is not stored in it (it could hold a secret a panel showed), but
outputs and figures are.

Charts drawn inside widgets (the panels' charts, plotly outputs of Output widgets, and plotly
``FigureWidget``s, alone or in a panel's boxes and tabs) would be lost with the widget
state, so the run ends with one more cell, removed from the result, that reads each
displayed widget's charts as they stand at the end of the run; every widget output is then
followed by its charts as static plotly figures.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
FIGURES_MIME = "application/vnd.etoro-nb.widget-figures+json"
COLLECTOR_TAG = "etoro-nb-report-widget-figures"

# Runs in the template's kernel, last. It imports nothing the notebook did not (no widgets,
# nothing to collect; plotly only to read a FigureWidget, which loaded it) and displays, for
# each widget holding charts, the ids of the charts inside it (through box children and
# Output widgets) and each chart's figure.
COLLECTOR = """\
def _etoro_nb_widget_figures():
    import json, sys
    from IPython.display import display
    widgets = sys.modules.get("ipywidgets.widgets.widget")  # its _instances: every live widget
    plotly_widget = sys.modules.get("plotly.basewidget")  # FigureWidgets, if any were made
    if widgets is None:
        return
    live, figures, inside = dict(widgets._instances), {}, {}
    def walk(w, seen):
        if w.model_id in seen:
            return []
        seen.add(w.model_id)
        if plotly_widget is not None and isinstance(w, plotly_widget.BaseFigureWidget):
            import plotly.io as pio
            figures.setdefault(w.model_id, json.loads(pio.to_json(w, validate=False)))
            return [w.model_id]
        found = []
        for child in getattr(w, "children", None) or ():
            found += walk(child, seen)
        for i, out in enumerate(getattr(w, "outputs", None) or ()):
            data = out.get("data", {})
            if "@PLOTLY_MIME@" in data:  # a chart drawn from its JSON (widgets.figure.Chart)
                figures.setdefault(f"{w.model_id}/{i}", data["@PLOTLY_MIME@"])
                found.append(f"{w.model_id}/{i}")
            view = data.get("@WIDGET_MIME@")
            if view and view.get("model_id") in live:
                found += walk(live[view["model_id"]], seen)
        return found
    for model_id, w in live.items():
        found = walk(w, set())
        if found:
            inside[model_id] = found
    display({"@FIGURES_MIME@": {"figures": figures, "inside": inside}}, raw=True)
_etoro_nb_widget_figures()
del _etoro_nb_widget_figures
""".replace("@FIGURES_MIME@", FIGURES_MIME).replace("@WIDGET_MIME@", WIDGET_MIME).replace(
    "@PLOTLY_MIME@", PLOTLY_MIME)


def parse_value(text: str) -> Any:
    """A parameter value from the command line: JSON when it parses (numbers, booleans,
    lists), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def run_report(notebook: str | Path, out_html: str | Path, *,
               parameters: Mapping[str, Any] | None = None,
               kernel: str = "python3") -> tuple[Path, Path]:
    """Execute ``notebook`` with ``parameters`` and write ``out_html`` (and the executed
    ``.ipynb`` beside it). Returns both paths; a failing cell raises papermill's error
    after the partial notebook and HTML are written, so the failure can be read."""
    import nbformat
    import papermill
    from nbconvert import HTMLExporter

    source, html_path = Path(notebook).resolve(), Path(out_html).resolve()
    if not source.is_file():
        raise FileNotFoundError(f"no notebook at {source}")
    html_path.parent.mkdir(parents=True, exist_ok=True)
    executed = html_path.with_suffix(".ipynb")
    node = nbformat.read(source, as_version=4)
    node.cells.append(nbformat.v4.new_code_cell(COLLECTOR, metadata={"tags": [COLLECTOR_TAG]}))
    try:
        papermill.execute_notebook(node, str(executed), parameters=dict(parameters or {}),
                                   kernel_name=kernel, cwd=str(Path.cwd()),
                                   progress_bar=False, store_widget_state=False)
    finally:
        if executed.exists():
            result = with_widget_figures(nbformat.read(executed, as_version=4))
            nbformat.write(result, executed)
            body, _ = HTMLExporter().from_notebook_node(with_static_figures(result))
            html_path.write_text(body, encoding="utf-8")
    return html_path, executed


def with_widget_figures(nb: Any) -> Any:
    """Take out the collector cell and follow each widget output that holds charts with them,
    as static plotly outputs (``PLOTLY_MIME``), in the order the widget shows them. A run
    that stopped before the collector leaves the outputs as they are."""
    import nbformat

    collected: dict[str, Any] = {"figures": {}, "inside": {}}
    kept = []
    for cell in nb.cells:
        if COLLECTOR_TAG in cell.get("metadata", {}).get("tags", []):
            for output in cell.get("outputs", []):
                collected = output.get("data", {}).get(FIGURES_MIME, collected)
            continue
        kept.append(cell)
    nb.cells = kept
    for cell in nb.cells:
        outputs = []
        for output in cell.get("outputs", []):
            outputs.append(output)
            view = output.get("data", {}).get(WIDGET_MIME) or {}
            for figure_id in collected["inside"].get(view.get("model_id"), []):
                outputs.append(nbformat.v4.new_output(
                    "display_data", data={PLOTLY_MIME: collected["figures"][figure_id],
                                          "text/plain": "<a chart of the widget above>"},
                    metadata={"etoro_nb": {"static_of": view["model_id"]}}))
        if "outputs" in cell:
            cell["outputs"] = outputs
    return nb


def with_static_figures(nb: Any) -> Any:
    """Give every plotly output an HTML form, so the report shows the charts (nbconvert
    cannot render plotly's JSON). plotly.js is embedded once, with the first figure: the
    report opens offline, as evidence must."""
    import plotly.io as pio  # type: ignore[import-untyped]

    embedded = False
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            figure = output.get("data", {}).get(PLOTLY_MIME)
            if figure is None or "text/html" in output["data"]:
                continue
            output["data"]["text/html"] = pio.to_html(
                figure, include_plotlyjs=not embedded, full_html=False, validate=False)
            embedded = True
    return nb
