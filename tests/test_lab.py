"""`etoro-nb lab` (the README's `make lab`): JupyterLab on the cockpit with the sandbox serving
beside it, both stopped together; and the Makefile's own behaviour (no needless reinstall)."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import httpx
import pytest

import etoro_nb as enb
from etoro_nb.lab import COCKPIT
from tests.browser_support import (
    REQUIRE_ENV,
    SCREENSHOTS,
    browser_requirements,
    free_port,
    jupyter_env,
    jupyterlab,
    launch_chromium,
    run_all_cells,
)

ROOT = Path(__file__).resolve().parents[1]
WAIT_MS = 120_000  # JupyterLab's first load and the kernel's start, on a busy machine


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


def test_a_busy_port_says_how_to_choose_another(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    from etoro_nb.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["lab", str(ROOT / "notebooks"), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"port {port} is already in use" in err
    suggested = re.search(r"`make lab PORT=(\d+)`", err)
    assert suggested and int(suggested[1]) != port, err
    assert "Errno" not in err


def test_lab_keeps_checkpoints_out_of_the_notebook_folder(tmp_path: Path) -> None:
    from etoro_nb.lab import lab_arguments

    args = lab_arguments([], euid=1000, checkpoints=tmp_path / "cp")
    assert args == [f"--FileCheckpoints.checkpoint_dir={tmp_path / 'cp'}"]
    chosen = ["--FileCheckpoints.checkpoint_dir=/elsewhere"]
    assert lab_arguments(chosen, euid=1000, checkpoints=tmp_path / "cp") == chosen


def test_lab_client_uses_the_lab_sandbox_only_inside_the_lab(monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    from etoro_nb import lab
    from etoro_nb.sandbox import SandboxConfig

    server = enb.sandbox.start(SandboxConfig(seed=3))
    try:
        monkeypatch.setenv(lab.URL_ENV, server.base_url)
        monkeypatch.setenv(lab.API_KEY_ENV, server.credentials.api_key)
        monkeypatch.setenv(lab.USER_KEY_ENV, server.credentials.user_key)
        monkeypatch.setenv(lab.LEDGER_ENV, str(tmp_path / "lab.sqlite"))
        inside = lab.lab_client(ledger=tmp_path / "fallback.sqlite")
        assert inside.config.base_url == server.base_url and inside.environment == "sandbox"
        inside.me()
        inside.close()
        assert (tmp_path / "lab.sqlite").exists() and not (tmp_path / "fallback.sqlite").exists()
        for name in (lab.URL_ENV, lab.API_KEY_ENV, lab.USER_KEY_ENV, lab.LEDGER_ENV):
            monkeypatch.delenv(name)
        outside = lab.lab_client(ledger=tmp_path / "fallback.sqlite", env_file=None)
        assert outside.config.base_url != server.base_url and outside.environment == "sandbox"
        outside.close()
    finally:
        server.stop()


# -- the Makefile ----------------------------------------------------------------------------
FAKE_PYTHON = """#!/bin/sh
# Stands in for python and the venv's commands: logs each call with its name; `-m venv DIR`
# makes DIR/bin/{python,ruff,mypy,etoro-nb} (copies of this script).
echo "$(basename "$0") $*" >> "$FAKE_LOG"
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin" && for c in python ruff mypy etoro-nb; do cp "$0" "$3/bin/$c"; done
fi
"""


def _make(project: Path, *args: str, log: Path) -> list[str]:
    """Run make in ``project`` with the stand-in python; the calls it made (the log is
    emptied), or with ``-n`` the commands it would run."""
    done = subprocess.run(["make", "--no-print-directory", "-C", str(project), *args,
                           f"PYTHON={project / 'fake-python'}"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "FAKE_LOG": str(log)})
    assert done.returncode == 0, done.stderr
    if "-n" in args:
        return done.stdout.splitlines()
    calls = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return calls


def _installs(calls: list[str]) -> list[str]:
    """The extras each `pip install -e` in ``calls`` installs, in order."""
    return [found[1] for call in calls if (found := re.search(r"pip install .*-e '?\.\[([^]]*)\]", call))]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_installs_each_set_once_until_pyproject_changes(tmp_path: Path) -> None:
    """A copy of the Makefile with a stand-in python: `make lab` makes the venv and installs
    what the lab needs, not the suite's tools (pyspark, mypy, playwright); `make test` then adds
    only the test extra; run again, neither installs anything; editing pyproject.toml installs
    again, each target its own set, without remaking the venv."""
    project, log = tmp_path / "project", tmp_path / "calls.log"
    project.mkdir()
    shutil.copy(ROOT / "Makefile", project / "Makefile")
    shutil.copy(ROOT / "pyproject.toml", project / "pyproject.toml")
    fake = project / "fake-python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)

    first = _make(project, "lab", log=log)
    assert first[0].startswith("fake-python -m venv"), first
    assert _installs(first) == ["lab,mcp"], first
    assert first[-1].startswith("etoro-nb lab notebooks"), first
    for target in ("lab", "reports", "sandbox"):  # one set serves them all
        planned = _make(project, "-n", target, log=log)
        assert not any("pip" in c or "-m venv" in c for c in planned), planned
    assert _installs(_make(project, "lab", log=log)) == []

    tested = _make(project, "test", log=log)
    assert _installs(tested) == ["test"] and not any("-m venv" in c for c in tested), tested
    assert [c.split()[0] for c in tested[-3:]] == ["ruff", "mypy", "python"], tested
    assert _installs(_make(project, "test", log=log)) == []
    assert _installs(_make(project, "lab", log=log)) == []
    assert _installs(_make(project, "-n", "bench", log=log)) == ["bench"]

    stamp = project / ".venv" / ".installed-lab"
    os.utime(project / "pyproject.toml", (stamp.stat().st_mtime + 10,) * 2)
    assert _installs(_make(project, "-n", "lab", log=log)) == ["lab,mcp"]
    changed = _make(project, "-n", "test", log=log)
    assert _installs(changed) == ["lab,mcp", "test"] and not any("-m venv" in c for c in changed)


# -- `make lab` as the README says, in a real browser ------------------------------------------
def _lab_env(home: Path, token: str, base: Mapping[str, str]) -> dict[str, str]:
    """The user's environment ``base``, with Jupyter's folders, HOME and TMPDIR under ``home``
    (so the test leaves nothing in the user's settings and can see what the lab leaves behind),
    the token known, and a "browser" that writes down what JupyterLab asks it to open (Chromium
    is driven below)."""
    tmp = home / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    browser = home / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" >> {home / "opened"}\n')
    browser.chmod(0o755)
    return {**{k: v for k, v in base.items() if not k.startswith(("ETORO_", "JUPYTER"))},
            "HOME": str(home), "TMPDIR": str(tmp), "BROWSER": f"{browser} %s",
            "JUPYTER_TOKEN": token, **jupyter_env(home)}


def _opened_url(home: Path, log: Path, proc: subprocess.Popen[bytes], timeout: float) -> str:
    """The page JupyterLab opens in the user's browser (its redirect file names it), once
    the server answers there."""
    deadline = time.monotonic() + timeout
    opened = home / "opened"
    with httpx.Client(timeout=2.0, follow_redirects=True) as http:
        while True:
            url = None
            if opened.exists() and opened.read_text().strip():
                redirect = opened.read_text().split()[0].removeprefix("file://")
                with suppress(OSError):
                    found = re.search(r'url=([^"]+)"', Path(redirect).read_text())
                    url = found[1] if found else None
            if url is not None:
                with suppress(httpx.HTTPError):
                    if http.get(url).is_success:
                        return url
            if proc.poll() is not None:
                raise AssertionError(f"make lab exited with {proc.returncode}:\n"
                                     f"{log.read_text(errors='replace')[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"JupyterLab opened nothing that answers in {timeout}s:\n"
                                     f"{log.read_text(errors='replace')[-4000:]}")
            time.sleep(0.2)  # polling for the server's readiness, bounded by the deadline


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT to make and everything in its process group, as Ctrl-C in a terminal sends it,
    so `etoro-nb lab` cleans up; SIGKILL only for what outlives that."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=60)
    finally:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def _run_all_and_see_the_cockpit(url: str, shot: str) -> str:
    """Open ``url`` in Chromium, Run All, and wait for the cockpit; the connect cell's text."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(url)
            cells = run_all_cells(page, timeout_ms=WAIT_MS)
            cockpit = page.locator(".enb-cockpit")
            expect(cockpit).to_be_visible(timeout=WAIT_MS)
            page.screenshot(path=SCREENSHOTS / shot)
            assert "Error displaying widget" not in page.locator("body").inner_text()
            return str(cells.nth(2).locator(".jp-OutputArea").inner_text())
        finally:
            browser.close()


# The ordinary user's own environment: a plain PATH (so `python3` is the system's, e.g. Debian's
# /usr/bin/python3, not the suite's or root's pyenv); of the suite's, only the machine's network
# and package-index settings, which reach every user's pip alike.
ORDINARY_PATH = "/usr/local/bin:/usr/bin:/bin"
NETWORK_ENV = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
               "SSL_CERT_FILE", "SSL_CERT_DIR", "PIP_CERT", "REQUESTS_CA_BUNDLE", "PIP_INDEX_URL",
               "PIP_EXTRA_INDEX_URL", "PIP_DEFAULT_TIMEOUT")
SYSTEM_PYTHON_CHECK = "import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))"


@dataclass
class LabUser:
    """Who runs `make lab`, where: ``name`` ("suite" or "ordinary"), the command ``prefix``
    that runs as that user, a ``home`` folder they own, the checkout ``project`` they run it in,
    and their environment ``base`` (before the lab's settings)."""

    name: str
    prefix: list[str]
    home: Path
    project: Path
    base: dict[str, str]


def _cannot(reason: str) -> NoReturn:
    """Skip: the ordinary user's run cannot be set up here; a failure instead under
    ETORO_NB_REQUIRE_BROWSER (CI), where this test must run."""
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(reason)
    pytest.skip(reason)


def _copy_tracked_files(dest: Path) -> None:
    """This checkout's tracked files, as its working tree holds them (uncommitted edits included:
    the Makefile under test is this one), copied to ``dest``: what a fresh clone holds, with no
    venv, stamps or caches."""
    try:
        listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True,
                                check=True, timeout=60).stdout.decode()
    except (OSError, subprocess.CalledProcessError) as exc:
        _cannot(f"the ordinary user's clone is copied from git's list of files: {exc}")
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # tracked but deleted in the working tree: not in the clone
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def _ordinary_user(work: Path) -> LabUser:
    """An ordinary user with a fresh clone in ``work/project`` and a home in ``work/home``: as
    root, `nobody` through runuser (``work`` becomes theirs); otherwise the suite's own user,
    who is one. Skips when that cannot be (``_cannot``: fails under ETORO_NB_REQUIRE_BROWSER)."""
    base = {"PATH": ORDINARY_PATH, "LANG": "C.UTF-8",
            **{k: os.environ[k] for k in NETWORK_ENV if k in os.environ}}
    home, project = work / "home", work / "project"
    home.mkdir()
    project.mkdir()
    _copy_tracked_files(project)
    prefix: list[str] = []
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if runuser is None:
            _cannot("running as root, with no runuser to become an ordinary user")
        try:
            user = pwd.getpwnam("nobody")
        except KeyError:
            _cannot("running as root, with no `nobody` account to be the ordinary user")
        for path in (work, *work.rglob("*")):
            os.chown(path, user.pw_uid, user.pw_gid)
        # runuser resets HOME to the account's (`nobody` has none): the user's own comes after.
        prefix = [runuser, "-u", user.pw_name, "--", "/usr/bin/env", f"HOME={home}"]
    found = subprocess.run([*prefix, "python3", "-c", SYSTEM_PYTHON_CHECK], env={**base, "HOME": str(home)},
                           capture_output=True, text=True, timeout=120)
    if found.returncode != 0:
        reason = (f"no python3 3.11+ with venv and ensurepip on the ordinary user's PATH "
                  f"({ORDINARY_PATH}; on Debian: apt-get install python3-venv): "
                  f"{found.stderr.strip()[-300:]}")
        _cannot(reason)
    return LabUser("ordinary", prefix, home, project, base)


@pytest.fixture(params=["suite", "ordinary"])
def lab_user(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LabUser]:
    """Who runs `make lab`: the suite's user in this checkout (its venv installed), or an
    ordinary user in a fresh clone of their own, where `make lab` makes the venv and installs
    from the package index, as the README promises a new user."""
    if request.param == "suite":
        home = tmp_path / "home"
        home.mkdir()
        yield LabUser("suite", [], home, ROOT, dict(os.environ))
        return
    work = Path(tempfile.mkdtemp(prefix="etoro-nb-lab-user-"))  # tmp_path is root's alone
    try:
        yield _ordinary_user(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.browser
@pytest.mark.timeout(900)
def test_make_lab_opens_the_cockpit_on_its_sandbox(lab_user: LabUser, tmp_path: Path) -> None:
    """The README's `make lab` (with the ports it documents), as the suite's user (root in CI)
    in this checkout and as an ordinary user in a fresh clone (the venv made and installed
    there): JupyterLab opens on 00-cockpit, the cockpit renders in Chromium, connected to the
    sandbox `make lab` serves; stopped, it leaves no checkpoints or temporary files behind."""
    missing = browser_requirements() or (None if shutil.which("make") else "make")
    if missing and not os.environ.get(REQUIRE_ENV):
        pytest.skip(f"needs: {missing}")
    notebooks = lab_user.project / "notebooks"
    before = set(notebooks.rglob("*"))
    sandbox_port, lab_port, token = free_port(), free_port(), os.urandom(16).hex()
    home = lab_user.home
    env = _lab_env(home, token, lab_user.base)
    if lab_user.prefix:  # what the test wrote there is the user's
        for path in home.rglob("*"):
            shutil.chown(path, home.owner(), home.group())
    log = tmp_path / "make-lab.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*lab_user.prefix, "make", "lab", f"PORT={sandbox_port}",
                                 f"LAB_PORT={lab_port}"], cwd=lab_user.project, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # A fresh clone installs first: minutes on a slow network or a busy machine.
        url = _opened_url(home, log, proc, timeout=300 if lab_user.name == "suite" else 720)
        assert re.search(rf":{lab_port}/lab/tree/{COCKPIT}\?token={token}$", url), url
        assert f"ETORO_BASE_URL=http://127.0.0.1:{sandbox_port}" in log.read_text()
        connected = _run_all_and_see_the_cockpit(url, f"lab-cockpit-{lab_user.name}.png")
        assert f"http://127.0.0.1:{sandbox_port}" in connected, connected
    finally:
        _stop_group(proc)
    assert proc.returncode is not None
    with pytest.raises(httpx.ConnectError):  # the sandbox stopped with JupyterLab
        httpx.get(f"http://127.0.0.1:{sandbox_port}/", timeout=2.0)
    assert set(notebooks.rglob("*")) <= before, "left in notebooks/"
    assert not list((home / "tmp").iterdir()), "temporary files left behind"
    # JupyterLab shut down (its kernels too), not just died: it removes its runtime files.
    assert not list((home / "runtime").glob("jpserver-*")), "JupyterLab did not shut down"
