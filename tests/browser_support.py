"""Support for the real-browser test: a notebook that shows the panels against a given
sandbox, and a headless JupyterLab server isolated from the user's Jupyter settings."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from etoro_nb.sandbox import SandboxServer

CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_ENV = "ETORO_NB_REQUIRE_BROWSER"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking"]
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"


def _write_notebook(path: Path, title: str, names: str, shown: Sequence[str], *,
                    sandbox: SandboxServer, ledger: Path) -> Path:
    """A notebook titled ``title`` whose first cell imports ``names`` from ``widgets`` and
    connects to ``sandbox`` (recording into ``ledger``), then one cell per ``shown`` source."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    creds = sandbox.credentials
    nb = new_notebook()
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [
        new_markdown_cell(f"# {title}"),
        new_code_cell(
            "import etoro_nb\n"
            f"from widgets import {names}\n"
            f"client = etoro_nb.connect({creds.api_key!r}, {creds.user_key!r}, "
            f"base_url={creds.base_url!r},\n"
            f"                          ledger={str(ledger)!r})\n"
            "print(client.environment)"),
        *(new_code_cell(source) for source in shown),
    ]
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return path


def write_panels_notebook(path: Path, *, sandbox: SandboxServer, ledger: Path) -> Path:
    """A notebook whose cells connect to the sandbox, then show PortfolioPanel and
    DelegationPanel, each in its own cell (so the delegation cell can be re-run)."""
    return _write_notebook(path, "etoro-nb panels, browser test", "DelegationPanel, PortfolioPanel",
                           ["portfolio_panel = PortfolioPanel(client)\nportfolio_panel",
                            "delegation_panel = DelegationPanel(client)\ndelegation_panel"],
                           sandbox=sandbox, ledger=ledger)


def write_cockpit_notebook(path: Path, *, sandbox: SandboxServer, ledger: Path) -> Path:
    """A notebook that connects to the sandbox and shows ``Cockpit(client)``."""
    return _write_notebook(path, "etoro-nb cockpit, browser test", "Cockpit",
                           ["cockpit = Cockpit(client)\ncockpit"],
                           sandbox=sandbox, ledger=ledger)


def browser_marks(timeout: int) -> list[pytest.MarkDecorator]:
    """A browser test's marks: ``browser``, its timeout, and a skip (with what is missing)
    unless ``ETORO_NB_REQUIRE_BROWSER`` makes a missing browser a failure."""
    missing = browser_requirements()
    return [pytest.mark.browser, pytest.mark.timeout(timeout),
            pytest.mark.skipif(missing is not None and not os.environ.get(REQUIRE_ENV),
                               reason=f"browser test needs: {missing} (set {REQUIRE_ENV}=1 to "
                                      "make this a failure instead of a skip)")]


def launch_chromium(pw: Any) -> Any:
    """Debian's Chromium (``CHROMIUM``), headless, started by Playwright ``pw``; screenshots
    go to ``SCREENSHOTS``, made here."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)


def run_all_cells(page: Any, *, timeout_ms: int) -> Any:
    """Run > Run All Cells on the notebook ``page`` shows, once its kernel is idle (before,
    Run All runs nothing), waiting up to ``timeout_ms`` for the page and the kernel; the
    notebook's cells."""
    from playwright.sync_api import expect

    cells = page.locator(".jp-Notebook .jp-Cell")
    expect(cells.first).to_be_visible(timeout=timeout_ms)
    expect(page.locator(".jp-StatusBar-TextItem", has_text=re.compile(
        r"Python 3.*\|\s*Idle"))).to_be_visible(timeout=timeout_ms)
    cells.nth(0).click()  # the notebook focused, so the menu acts on it
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    run_all = page.locator(".lm-Menu-item", has=page.locator(
        ".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")))
    expect(run_all).not_to_have_class(re.compile(r"lm-mod-disabled"))
    run_all.click()
    return cells


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _write_settings(settings_dir: Path) -> None:
    """JupyterLab user settings: no news or update toasts over the page, and every cell
    rendered (no virtual scrolling), so the test sees a plain, stable page."""
    settings = {
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
            {"fetchNews": "false", "checkForUpdates": False},
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings":
            {"windowingMode": "none"},
    }
    for name, value in settings.items():
        target = settings_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(value))


def jupyter_env(home: Path) -> dict[str, str]:
    """Jupyter's variables putting its config, data, runtime, settings, workspaces and IPython
    folders under ``home`` (made there, with ``_write_settings``'s settings), so a test
    neither reads nor leaves anything in the user's own."""
    dirs = {name: home / name for name in ("config", "data", "runtime", "settings",
                                           "workspaces", "ipython")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    _write_settings(dirs["settings"])
    return {"JUPYTER_CONFIG_DIR": str(dirs["config"]), "JUPYTER_DATA_DIR": str(dirs["data"]),
            "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
            "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
            "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]),
            "IPYTHONDIR": str(dirs["ipython"]), "JUPYTER_PLATFORM_DIRS": "1"}


@dataclass
class Lab:
    url: str
    token: str
    log: Path

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}"

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "<no log>"


@contextmanager
def jupyterlab(root: Path, home: Path, *, timeout: float = 60.0,
               launcher: Sequence[str] = (sys.executable, "-m", "jupyterlab"),
               allow_root: bool = True) -> Iterator[Lab]:
    """Run JupyterLab (``launcher``: ``python -m jupyterlab`` or a command that starts it)
    headless on a free port, serving ``root``; yield once ``/api/status`` answers; shut its
    kernels down and stop it afterwards, even on error. Config, data, runtime, settings and
    workspaces live under ``home``."""
    port, token = free_port(), os.urandom(16).hex()
    env = {**os.environ, **jupyter_env(home)}
    log = home / "jupyterlab.log"
    cmd = [*launcher, "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--ServerApp.open_browser=False",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if allow_root:  # a launcher run as users run it (etoro-nb lab) must manage without
        cmd.append("--ServerApp.allow_root=True")
    lab = Lab(url=f"http://127.0.0.1:{port}", token=token, log=log)
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        _wait_ready(lab, proc, timeout)
        yield lab
    finally:
        _stop(lab, proc)


def _wait_ready(lab: Lab, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as http:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyterlab exited with {proc.returncode}:\n{lab.log_tail()}")
            with suppress(httpx.HTTPError):
                if http.get(f"{lab.url}/api/status", params={"token": lab.token}).is_success:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"jupyterlab not ready after {timeout}s:\n{lab.log_tail()}")
            # Polling interval for the server's readiness, bounded by the deadline above.
            time.sleep(0.2)


def _stop(lab: Lab, proc: subprocess.Popen[bytes]) -> None:
    """Shut down kernels through the API (they are the server's children), then the
    server; whatever is left of the server's own process group is killed."""
    if proc.poll() is None:
        with suppress(httpx.HTTPError), httpx.Client(timeout=5.0) as http:
            params = {"token": lab.token}
            for kernel in http.get(f"{lab.url}/api/kernels", params=params).json():
                http.delete(f"{lab.url}/api/kernels/{kernel['id']}", params=params)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def browser_requirements() -> str | None:
    """Why the browser test cannot run here, or None when it can."""
    missing = [] if CHROMIUM.exists() else [f"{CHROMIUM} is missing"]
    for module in ("playwright", "jupyterlab", "ipykernel", "nbformat"):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"python package {module} is not installed")
    return "; ".join(missing) or None
