"""The delegation guide's snippets run as written, in order, on the sandbox."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "delegation.md"


def test_delegation_guide_snippets_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("ETORO_API_KEY", "ETORO_USER_KEY", "ETORO_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S)
    assert len(blocks) >= 8
    namespace: dict[str, object] = {}
    try:
        for number, block in enumerate(blocks, 1):
            exec(compile(block, f"docs/delegation.md block {number}", "exec"), namespace)
    finally:
        client = namespace.get("client")
        if client is not None:
            client.close()  # type: ignore[attr-defined]
    out = capsys.readouterr().out
    assert "SANDBOX" in out and "chain intact" in out
    assert "reporting" in out  # the unused grant was found and shown
