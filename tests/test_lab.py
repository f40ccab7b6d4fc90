"""`etoro-nb lab` (the README's `make lab`): JupyterLab on notebooks/ with the sandbox serving
beside it, both stopped together."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import httpx
import pytest

import etoro_nb as enb
from tests.browser_support import jupyterlab

ROOT = Path(__file__).resolve().parents[1]


def test_lab_serves_the_templates_and_a_sandbox(tmp_path: Path) -> None:
    launcher = (sys.executable, "-m", "etoro_nb.cli", "lab", str(ROOT / "notebooks"),
                "--port", "0", "--")
    # No allow-root flag from the test: as root (CI, containers) `etoro-nb lab` must add it.
    with jupyterlab(ROOT / "notebooks", tmp_path, launcher=launcher, allow_root=False) as lab:
        banner = lab.log.read_text()
        base_url = re.search(r"ETORO_BASE_URL=(\S+)", banner)
        api_key = re.search(r"ETORO_API_KEY=(\S+)", banner)
        user_key = re.search(r"ETORO_USER_KEY=(\S+)", banner)
        assert base_url and api_key and user_key, banner
        client = enb.connect(api_key[1], user_key[1], base_url=base_url[1], env_file=None,
                             ledger=tmp_path / "l.sqlite")
        assert client.environment == "sandbox" and client.me().username
        client.close()
        listed = httpx.get(f"{lab.url}/api/contents", params={"token": lab.token}).json()
        names = {item["name"] for item in listed["content"]}
        assert {"01-quickstart.ipynb", "02-delegation.ipynb"} <= names
    with pytest.raises(httpx.ConnectError):  # the sandbox stopped with JupyterLab
        httpx.get(base_url[1] + "/", timeout=2.0)


def test_lab_refuses_a_missing_folder(tmp_path: Path) -> None:
    from etoro_nb.cli import main

    assert main(["lab", str(tmp_path / "nowhere"), "--port", "0"]) == 2


def test_lab_adds_allow_root_only_for_root() -> None:
    from etoro_nb.lab import lab_arguments

    assert lab_arguments(["--no-browser"], euid=0) == ["--no-browser", "--allow-root"]
    assert lab_arguments(["--allow-root"], euid=0) == ["--allow-root"]
    assert lab_arguments(["--no-browser"], euid=1000) == ["--no-browser"]
