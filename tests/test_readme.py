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


def test_first_screen_commands_are_make_targets() -> None:
    """The two commands for a fresh machine, and the headless variant, exist as written."""
    text = README.read_text()
    first = re.search(r"```bash\n(.*?)```", text, re.S)
    assert first is not None and text.index(first.group(0)) < 1500  # on the first screen
    commands = [line.split("#")[0].split() for line in first.group(1).splitlines()]
    assert commands == [["make", "lab"], ["make", "test"]]
    makefile = (README.parent / "Makefile").read_text()
    for target in ("lab", "test", "reports", "sandbox", "bench"):
        assert re.search(rf"^{target}: setup$", makefile, re.M), target
    assert "etoro-nb lab notebooks" in makefile and "report notebooks/0*.ipynb" in makefile
    ci = (README.parent / ".ci" / "run").read_text()
    assert ci.rstrip().endswith("make test")  # CI runs the README's test command
