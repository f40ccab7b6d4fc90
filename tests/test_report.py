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
