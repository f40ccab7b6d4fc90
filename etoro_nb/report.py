"""Running an analysis template with parameters and rendering it to HTML (for scheduling).

The template runs with papermill in the current folder (so a relative path given as a
parameter means what it says where the command was typed), against whichever environment
its ``connect()`` finds: the sandbox by default, live when ``ETORO_API_KEY`` /
``ETORO_USER_KEY`` are set for the process. The executed notebook is kept beside the HTML
as evidence; widget state is not stored in it (outputs and figures are).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PLOTLY_MIME = "application/vnd.plotly.v1+json"


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
    try:
        papermill.execute_notebook(str(source), str(executed), parameters=dict(parameters or {}),
                                   kernel_name=kernel, cwd=str(Path.cwd()),
                                   progress_bar=False, store_widget_state=False)
    finally:
        if executed.exists():
            node = with_static_figures(nbformat.read(executed, as_version=4))
            body, _ = HTMLExporter().from_notebook_node(node)
            html_path.write_text(body, encoding="utf-8")
    return html_path, executed


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
