"""The templates leave nothing in the temporary folder: each keeps its scratch files (ledger,
its key and spool, evidence, logs, synthetic datasets) in one ``TemporaryDirectory`` that
goes when the kernel ends, whether the run succeeds or a cell fails. A kernel that is killed
never ends cleanly (nbval kills its kernels), so each template but the interactive cockpit
also removes the folder in its last cell.

The templates run as ``make reports`` runs them (``run_report``: papermill, a fresh kernel)
with ``TMPDIR`` pointing at an empty folder of the test, which the kernel inherits; the folder
must be empty afterwards (papermill and the kernel put nothing of their own there). Running
all ten costs about a minute, so the runs cover one template of each way of making scratch
files, with fewer synthetic events where a parameter says how many (06's synthetic ledger
in a run that fails); every template is checked for the idiom by reading its source.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from papermill.exceptions import PapermillExecutionError

from etoro_nb.report import run_report

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
IDIOM = "scratch = tempfile.TemporaryDirectory(ignore_cleanup_errors=True)  # removed when the kernel ends"
# tempfile calls that leave their file or folder behind unless removed by hand.
LEAVES_BEHIND = re.compile(r"\bmkdtemp\(|\bmkstemp\(|NamedTemporaryFile\([^)]*delete=False")

# One template per way of making scratch files, with parameters that only make it smaller.
RUNS: dict[str, dict[str, Any]] = {
    "01-quickstart": {},  # a ledger (with its .key and .spool) beside a seeded sandbox (so 00-05,
                          # 07; 03 adds its evidence files, which the source check covers)
    "08-mcp-agent-audit": {},  # an MCP server's log, written by a subprocess
    "09-team-audit": {"EVENTS": 500},  # ledgers written by `etoro-nb ledger synth`, a dataset
}


def _code(notebook: Path) -> list[str]:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def _left_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def own_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder that is the temporary folder of this process and of every kernel or
    subprocess it starts."""
    folder = tmp_path / "tmpdir"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    return folder


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_template_keeps_its_scratch_in_one_temporary_directory(notebook: Path) -> None:
    code = _code(notebook)
    assert not [c for c in code if LEAVES_BEHIND.search(c)], \
        f"{notebook.stem} makes temporary files it has to remove by hand"
    uses_tempfile = [c for c in code if "tempfile." in c]
    if uses_tempfile:  # made once, in the setup cell (the first after the parameters)
        assert uses_tempfile == [code[1]] and code[1].count("tempfile.") == 1 and IDIOM in code[1], \
            f"{notebook.stem}: its scratch folder is not the setup cell's TemporaryDirectory"
        if notebook.stem != "00-cockpit":  # the cockpit is explored, not run to an end
            assert "scratch.cleanup()" in code[-1], f"{notebook.stem} keeps its scratch folder to the end"


@pytest.mark.parametrize("template", RUNS)
def test_a_report_run_leaves_nothing_in_the_temporary_folder(
        template: str, own_tmpdir: Path, tmp_path: Path) -> None:
    notebook = next(p for p in NOTEBOOKS if p.stem == template)
    run_report(notebook, tmp_path / "reports" / f"{template}.html", parameters=RUNS[template])
    left = _left_in(own_tmpdir)
    assert not left, f"{template} left {left} in the temporary folder"


def test_a_failed_run_leaves_nothing_either(own_tmpdir: Path, tmp_path: Path) -> None:
    """A cell fails after the synthetic ledger was written: it still goes with the kernel (06
    used to remove its scratch folder in its last cell, so a failed run left it behind)."""
    with pytest.raises(PapermillExecutionError, match="FOCUS"):
        run_report(next(p for p in NOTEBOOKS if p.stem == "06-large-ledger-audit"),
                   tmp_path / "failed.html", parameters={"EVENTS": 2_000, "FOCUS": "no-such"})
    left = _left_in(own_tmpdir)
    assert not left, f"06-large-ledger-audit left {left} in the temporary folder after a failed run"


def test_a_template_checked_by_nbval_leaves_nothing(own_tmpdir: Path) -> None:
    """``make test`` checks the templates with nbval, which kills each kernel: what the
    template removes in its last cell is all that goes."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           "notebooks/01-quickstart.ipynb"],
                          capture_output=True, text=True, timeout=240, cwd=ROOT, env=dict(os.environ))
    assert done.returncode == 0, done.stdout[-2000:]
    left = _left_in(own_tmpdir)
    assert not left, f"01-quickstart left {left} in the temporary folder under nbval"
