"""The templates as files: what nbval does not check (nbval re-runs each one and compares
its outputs; see pyproject's addopts)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
TEMPLATES = ("00-cockpit", "01-quickstart", "02-delegation", "03-compliance-audit",
             "04-portfolio-activity", "05-autonomous-rebalancer", "06-large-ledger-audit",
             "07-risk-boundaries", "08-mcp-agent-audit", "09-team-audit")


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def test_every_template_is_there() -> None:
    assert [p.stem for p in NOTEBOOKS] == list(TEMPLATES)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_template_shape(path: Path) -> None:
    nb = _load(path)
    # A kernelspec, or JupyterLab stops at a kernel dialog and papermill cannot pick a kernel.
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    cells = nb["cells"]
    assert cells[0]["cell_type"] == "markdown" and cells[0]["source"][0].startswith("# ")
    tagged = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1 and tagged[0]["cell_type"] == "code"
    # Every code cell was run, in order, from a fresh kernel.
    counts = [c["execution_count"] for c in cells if c["cell_type"] == "code"]
    assert counts == list(range(1, len(counts) + 1))
    assert not [o for c in cells if c["cell_type"] == "code" for o in c["outputs"]
                if o["output_type"] == "error"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_template_holds_no_secret_and_no_widget_state(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"etnb_[A-Za-z0-9_-]{8,}", text)  # no minted token secret
    assert "get_secret_value" not in text
    assert "widgets" not in _load(path)["metadata"]  # megabytes, and it could hold a secret
    assert path.stat().st_size < 2_000_000
