"""Auditing a ledger file needs no HTTP client: ``etoro_nb.frames.ledger`` (and the package
it sits in) import neither httpx nor ``etoro_nb.client``; every public frames name is still
``etoro_nb.frames.<name>``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import etoro_nb.frames as frames
from etoro_nb.frames import api, common, ledger

ROOT = Path(__file__).resolve().parents[1]
AUDIT = """
import sys
from etoro_nb.frames.ledger import grants_from_ledger, least_privilege, lifecycle, usage
from etoro_nb.ledger import Ledger
from etoro_nb.ledger.synth import synthesize
ledger = synthesize(sys.argv[1], events=2000, seed=3)
ledger.close()
ledger = Ledger(sys.argv[1])
found = least_privilege(grants_from_ledger(ledger), usage(ledger))
assert found.height and lifecycle(ledger).height
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] == "httpx"
                      or m == "etoro_nb.client")))
"""


def test_an_audit_of_a_ledger_file_imports_no_http_client(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", AUDIT, str(tmp_path / "l.sqlite")], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    assert out.stdout.split() == []


def test_every_loader_is_still_a_frames_name() -> None:
    for module in (api, ledger):
        for name in (n for n in vars(module) if not n.startswith("_")):
            value = getattr(module, name)
            if callable(value) and getattr(value, "__module__", "") == module.__name__:
                assert getattr(frames, name) is value, name
    for name in ("usage", "lifecycle", "tokens_from_ledger", "grants_from_ledger",
                 "least_privilege", "unfinished_changes", "requests", "portfolios", "tokens",
                 "scope_grants", "accounting", "value_snapshot", "trades", "positions",
                 "grants", "token_status", "frame_of", "UTC_US", "VALUE_HISTORY_SCHEMA"):
        assert name in frames.__all__ and hasattr(frames, name), name
    assert common.USAGE_SCHEMA["ts"] == frames.UTC_US
