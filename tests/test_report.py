"""`etoro-nb report`: a template run with parameters against the sandbox, rendered to HTML."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import polars as pl

from etoro_nb import frames

ROOT = Path(__file__).resolve().parents[1]


def _report(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ETORO_API_KEY", "ETORO_USER_KEY", "ETORO_BASE_URL")}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "etoro_nb.cli", "report", *args],
                          capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)


def test_report_runs_the_quickstart_with_parameters(tmp_path: Path) -> None:
    out = tmp_path / "reports" / "quickstart.html"
    done = _report("notebooks/01-quickstart.ipynb", "-p", "PORTFOLIO_NAME", "beta0001",
                   "-p", "INVESTMENT_USD", "3000", "-o", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    html = out.read_text()
    assert "beta0001 mirror" in html and "sandbox" in html
    assert "3000.0" in html or "3,000.00" in html  # the investment parameter was used
    assert out.with_suffix(".ipynb").exists()


def test_report_errors_are_clear(tmp_path: Path) -> None:
    missing = _report("notebooks/none.ipynb", "-o", str(tmp_path / "x.html"))
    assert missing.returncode == 2 and "no notebook" in missing.stderr
    assert not (tmp_path / "x.html").exists()
    failing = _report("notebooks/01-quickstart.ipynb", "-p", "PORTFOLIO_NAME", "bad",
                      "-o", str(tmp_path / "bad.html"))
    assert failing.returncode == 1 and "failed" in failing.stderr
    assert (tmp_path / "bad.html").exists()  # the partial run is there to read


def test_report_runs_several_templates_into_a_folder(tmp_path: Path) -> None:
    """The headless run of the templates: one HTML per notebook; relative parameters are
    taken from where the command runs (the value log lands in tmp_path, not notebooks/)."""
    out = tmp_path / "reports"
    done = subprocess.run(
        [sys.executable, "-m", "etoro_nb.cli", "report", str(ROOT / "notebooks/01-quickstart.ipynb"),
         str(ROOT / "notebooks/04-portfolio-activity.ipynb"), "-p", "VALUE_LOG", "values.parquet",
         "-p", "PORTFOLIO", "hedger01", "-o", str(out)],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("ETORO_")})
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in out.glob("*.html")) == ["01-quickstart.html",
                                                          "04-portfolio-activity.html"]
    assert done.stdout.count(" s (executed notebook") == 2  # each run's time is reported
    page = (out / "04-portfolio-activity.html").read_text()
    assert "report on hedger01" in page
    # Every chart is drawn in the report, with plotly.js embedded once (it opens offline).
    executed = json.loads((out / "04-portfolio-activity.ipynb").read_text())
    figures = [o for c in executed["cells"] for o in c.get("outputs", [])
               if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(figures) == 2 and page.count("Plotly.newPlot(") == len(figures)
    assert len(re.findall(r"plotly\.js v\d", page)) == 1
    log = pl.read_parquet(tmp_path / "values.parquet")
    assert log.schema == frames.VALUE_HISTORY_SCHEMA
    assert sorted(set(log["name"])) == ["hedger01", "momentum"] and log.height == 56
    assert not (ROOT / "notebooks" / "values.parquet").exists()
    # No widget state is stored in an executed report.
    assert "widgets" not in json.loads((out / "04-portfolio-activity.ipynb").read_text())["metadata"]


def _figures(notebook: Path) -> list[dict[str, object]]:
    executed = json.loads(notebook.read_text())
    return [o["data"]["application/vnd.plotly.v1+json"] for c in executed["cells"]
            for o in c.get("outputs", []) if "application/vnd.plotly.v1+json" in o.get("data", {})]


def test_report_of_the_delegation_panels_keeps_their_charts(tmp_path: Path) -> None:
    """02-delegation shows its charts only inside the ActivityPanel (Output widgets): the
    report draws each of them, with its data, after the panel's output."""
    out = tmp_path / "delegation.html"
    done = _report("notebooks/02-delegation.ipynb", "-o", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    figures = _figures(out.with_suffix(".ipynb"))
    titles = [str(f["layout"]["title"]["text"]) for f in figures]  # type: ignore[index]
    assert [t.split(" (")[0] for t in titles] == ["Requests per portfolio", "Scope usage per token",
                                                  "Token lifetimes"]
    assert all(f["data"] for f in figures)  # drawn traces, not empty default axes
    page = out.read_text()
    assert page.count("Plotly.newPlot(") == 3
    for figure in figures:  # each figure's own data is in the page
        first = figure["data"][0]  # type: ignore[index]
        assert json.dumps(first["name"] if "name" in first else first["type"]) in page
    executed = json.loads(out.with_suffix(".ipynb").read_text())
    assert "widgets" not in executed["metadata"]
    assert not [c for c in executed["cells"] if "etoro-nb-report-widget-figures" in
                c["metadata"].get("tags", [])]
    assert not re.search(r"etnb_[A-Za-z0-9_-]{8,}", page)  # no minted secret


def test_report_draws_widget_charts_as_they_stand_at_the_end(tmp_path: Path) -> None:
    """Any notebook's FigureWidgets (here inside a Tab, drawn after being shown) appear in the
    report with their last data; a plain plotly output is left as it is."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                               "language": "python"}})
    nb.cells = [
        new_markdown_cell("# widgets"),
        new_code_cell("import ipywidgets, plotly.graph_objects as go, plotly.io as pio\n"
                      "pio.renderers.default = 'plotly_mimetype'\n"
                      "chart = go.FigureWidget()\n"
                      "ipywidgets.Tab([ipywidgets.VBox([ipywidgets.Label('x'), chart])])"),
        new_code_cell("chart.add_bar(x=['drawn-later'], y=[3], name='late bar');"),
        new_code_cell("go.Figure(go.Scatter(x=[1], y=[2], name='plain figure'))"),
    ]
    source = tmp_path / "widgets.ipynb"
    nbformat.write(nb, source)
    out = tmp_path / "widgets.html"
    done = _report(str(source), "-o", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    figures = _figures(out.with_suffix(".ipynb"))
    names = [[t.get("name") for t in f["data"]] for f in figures]  # type: ignore[attr-defined]
    assert names == [["late bar"], ["plain figure"]]
    cells = json.loads(out.with_suffix(".ipynb").read_text())["cells"]
    tab = cells[1]["outputs"]
    assert "application/vnd.jupyter.widget-view+json" in tab[0]["data"]
    assert "application/vnd.plotly.v1+json" in tab[1]["data"]  # right after the widget
    assert "drawn-later" in out.read_text()


def test_widget_figures_of_a_run_that_stopped_early() -> None:
    """Without the collector's output (the run failed before it), outputs stay as they were."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    from etoro_nb.report import COLLECTOR_TAG, with_widget_figures

    view = new_output("display_data", data={"application/vnd.jupyter.widget-view+json":
                                            {"model_id": "m1", "version_major": 2,
                                             "version_minor": 0}, "text/plain": "Panel"})
    cell = new_code_cell("panel", outputs=[view])
    collector = new_code_cell("collect", metadata={"tags": [COLLECTOR_TAG]})
    nb = with_widget_figures(new_notebook(cells=[cell, collector]))
    assert len(nb.cells) == 1 and nb.cells[0]["outputs"] == [view]
    nbformat.validate(nb)
