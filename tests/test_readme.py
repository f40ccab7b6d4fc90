"""The README's examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _block_after(heading: str) -> str:
    text = README.read_text()
    section = text[text.index(heading):]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


def test_five_line_example(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("ETORO_API_KEY", "ETORO_USER_KEY", "ETORO_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    code = _block_after("## Five lines")
    assert len(code.strip().splitlines()) == 5
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    client, bot = namespace["client"], namespace["bot"]
    assert "SANDBOX" in capsys.readouterr().out
    try:
        import etoro_nb as enb

        with pytest.raises(enb.errors.AuthenticationError):
            client.as_agent(bot.token).me()  # type: ignore[attr-defined]
    finally:
        client.close()  # type: ignore[attr-defined]
