"""`etoro-nb ledger synth | verify | seal`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl

from etoro_nb import frames
from etoro_nb.ledger import Ledger


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "etoro_nb.cli", "ledger", *args],
                          capture_output=True, text=True, timeout=300)


def test_synth_is_deterministic_and_verifies(tmp_path: Path) -> None:
    a, b = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    for path in (a, b):
        out = _cli("synth", "--events", "30000", "--out", str(path), "--seed", "5")
        assert out.returncode == 0, out.stderr
    usage_a, usage_b = frames.usage(Ledger(a)), frames.usage(Ledger(b))
    assert isinstance(usage_a, pl.DataFrame) and isinstance(usage_b, pl.DataFrame)
    assert usage_a.height == 30_000
    # Same seed, same events; only the keyed fingerprints differ (each ledger has its key).
    assert usage_a.drop("token_fingerprint").equals(usage_b.drop("token_fingerprint"))
    assert set(usage_a["phase"]) == {"intent", "outcome"}
    statuses = set(usage_a["status"].drop_nulls())
    assert {200, 401, 403} <= statuses  # successes, revoked tokens, missing scopes
    assert Ledger(a).segments("usage_events")  # sealed past the threshold
    verified = _cli("verify", str(a))
    assert verified.returncode == 0 and "chain intact" in verified.stdout


def test_verify_fails_loudly_on_tampering(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    assert _cli("synth", "--events", "2000", "--out", str(path)).returncode == 0
    assert _cli("seal", str(path)).returncode == 0
    segment = next((tmp_path / "l.sqlite.segments").glob("usage_events-*.parquet"))
    raw = bytearray(segment.read_bytes())
    raw[100] ^= 0xFF
    segment.write_bytes(bytes(raw))
    out = _cli("verify", str(path))
    assert out.returncode == 1 and "FAILED" in out.stdout and segment.name in out.stdout


def test_cli_errors_are_clear(tmp_path: Path) -> None:
    assert "no ledger" in _cli("verify", str(tmp_path / "nope.sqlite")).stderr
    path = tmp_path / "l.sqlite"
    path.write_text("")
    assert "exists" in _cli("synth", "--events", "10", "--out", str(path)).stderr
