"""`etoro-nb ledger synth | verify | seal | checkpoint`."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import polars as pl

from etoro_nb import frames
from etoro_nb.ledger import Ledger
from etoro_nb.ledger.checkpoint import signing_key


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "etoro_nb.cli", "ledger", *args],
                          capture_output=True, text=True, timeout=300,
                          env=None if env is None else {**os.environ, **env})


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


def test_checkpoint_then_verify_against_it(tmp_path: Path) -> None:
    path, key = tmp_path / "ledger" / "l.sqlite", tmp_path / "keys" / "k"
    checkpoints = tmp_path / "audit" / "cp.jsonl"
    path.parent.mkdir()
    assert _cli("synth", "--events", "2000", "--out", str(path)).returncode == 0
    assert _cli("seal", str(path)).returncode == 0
    with Ledger(path) as ledger:  # live rows after the sealed ones
        ledger.append_lifecycle(kind="token_revoked", token_id="t1")
    made = _cli("checkpoint", str(path), "--to", str(checkpoints), "--key", str(key))
    assert made.returncode == 0, made.stderr
    assert "chain intact" in made.stdout and "usage_events to row 2000" in made.stdout
    assert f"verify with {key}.pub" in made.stdout
    assert key.stat().st_mode & 0o777 == 0o600 and len(checkpoints.read_text().splitlines()) == 1
    auditor = _cli("verify", str(path), "--checkpoint", str(checkpoints), "--key", f"{key}.pub")
    assert auditor.returncode == 0, auditor.stdout + auditor.stderr
    assert "matches 1 signed checkpoint(s)" in auditor.stdout
    assert "no row up to the newest" in auditor.stdout
    with sqlite3.connect(path) as conn:  # the newest rows go, triggers first
        conn.execute("DROP TRIGGER lifecycle_events_no_delete")
        conn.execute("DELETE FROM lifecycle_events")
    alone = _cli("verify", str(path))
    assert alone.returncode == 0 and "internal consistency only" in alone.stdout
    caught = _cli("verify", str(path), "--checkpoint", str(checkpoints), "--key", str(key))
    assert caught.returncode == 1 and "FAILED" in caught.stdout
    assert "lifecycle_events rows" in caught.stdout and "were removed" in caught.stdout
    again = _cli("checkpoint", str(path), "--to", str(checkpoints), "--key", str(key))
    assert again.returncode == 1 and "nothing signed" in again.stdout
    assert len(checkpoints.read_text().splitlines()) == 1


def test_checkpoint_cli_errors_are_clear(tmp_path: Path) -> None:
    path = tmp_path / "ledger" / "l.sqlite"
    path.parent.mkdir()
    Ledger(path).close()
    home = tmp_path / "home"
    made = _cli("checkpoint", str(path), "--to", str(tmp_path / "cp.jsonl"),
                env={"HOME": str(home)})  # the default key: ~/.etoro-nb/checkpoint.key
    assert made.returncode == 0, made.stderr
    assert (home / ".etoro-nb" / "checkpoint.key").is_file()
    assert "-----BEGIN" not in made.stdout + made.stderr  # the private key is never shown
    missing = _cli("verify", str(path), "--checkpoint", str(tmp_path / "nope.jsonl"),
                   env={"HOME": str(home)})
    assert missing.returncode == 2 and "no checkpoint file at" in missing.stderr
    no_key = _cli("verify", str(path), "--checkpoint", str(tmp_path / "cp.jsonl"), "--key",
                  str(tmp_path / "nokey"))
    assert no_key.returncode == 2 and "no checkpoint key at" in no_key.stderr
    beside = _cli("checkpoint", str(path), "--to", str(tmp_path / "cp.jsonl"), "--key",
                  str(path.with_name("k")))
    assert beside.returncode == 2 and "keep it apart" in beside.stderr
    assert not (tmp_path / "nokey").exists()  # verify never makes a key
    signing_key(tmp_path / "keys" / "other")
    other = _cli("verify", str(path), "--checkpoint", str(tmp_path / "cp.jsonl"), "--key",
                 str(tmp_path / "keys" / "other.pub"))
    assert other.returncode == 1 and "FAILED" in other.stdout
    assert "cp.jsonl line 1 was signed by another key" in other.stdout
