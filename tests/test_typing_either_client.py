"""mypy (strict, the project's settings) resolves the overloads that let frames loaders,
the agent session and the rebalancer take either client: ``tests/typecheck/either_client_ok.py``
checks clean, and every line marked ``# error`` in ``either_client_wrong.py`` is an error
(and nothing else is)."""

from __future__ import annotations

import re
from pathlib import Path

import mypy.api as mypy_api

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent / "typecheck"


def _mypy(path: Path) -> tuple[str, int]:
    out, err, status = mypy_api.run(["--config-file", str(ROOT / "pyproject.toml"),
                                     "--no-error-summary", str(path)])
    assert not err, err
    return out, status


def test_the_overloads_resolve_for_either_client() -> None:
    out, status = _mypy(HERE / "either_client_ok.py")
    assert (status, out) == (0, "")


def test_mixing_up_the_clients_is_a_type_error() -> None:
    path = HERE / "either_client_wrong.py"
    out, status = _mypy(path)
    marked = {n for n, line in enumerate(path.read_text().splitlines(), 1)
              if line.rstrip().endswith("# error")}
    found = {int(m) for m in re.findall(rf"{re.escape(path.name)}:(\d+): error", out)}
    assert status == 1 and marked and found == marked, out
