"""``etoro-nb lab`` (``make lab``): JupyterLab on the cockpit, with a sandbox serving beside it.

The sandbox runs in this process (a background thread) on a fixed port, so the cockpit,
other notebooks and ``curl`` share one state while you explore. JupyterLab's kernels find it
through the ``ETORO_NB_LAB_*`` environment variables, which ``lab_client()`` reads; the
templates start their own seeded sandbox each, so their outputs stay the same on every run.
JupyterLab keeps its checkpoints in a folder of this session, not as ``.ipynb_checkpoints``
beside the notebooks, and that folder goes when the session ends. Stopping JupyterLab
(Ctrl-C) stops the sandbox too.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etoro_nb.sandbox.config import SandboxConfig

if TYPE_CHECKING:
    from etoro_nb.client import EtoroClient
    from etoro_nb.sandbox.server import SandboxServer

COCKPIT = "00-cockpit.ipynb"
# What a kernel started by `etoro-nb lab` is told about the lab's sandbox and ledger.
URL_ENV, API_KEY_ENV, USER_KEY_ENV, LEDGER_ENV = (
    "ETORO_NB_LAB_URL", "ETORO_NB_LAB_API_KEY", "ETORO_NB_LAB_USER_KEY", "ETORO_NB_LAB_LEDGER")


class PortUnavailableError(OSError):
    """The sandbox's port cannot be had; the message says how to choose another."""


def connect_hint(base_url: str, config: SandboxConfig) -> str:
    """The lines that tell a user how to reach a running sandbox."""
    return (f"etoro-nb SANDBOX (simulated money, not eToro) serving on {base_url}\n"
            f"  ETORO_BASE_URL={base_url}\n"
            f"  ETORO_API_KEY={config.api_key}\n"
            f"  ETORO_USER_KEY={config.user_key}\n"
            f"  in a notebook: enb.connect({config.api_key!r}, {config.user_key!r}, "
            f"base_url={base_url!r})")


def lab_client(**fallback: Any) -> EtoroClient:
    """A client of the sandbox ``etoro-nb lab`` serves, recording into the lab session's
    ledger, when this kernel was started by it; anywhere else (nbval, a report, another
    JupyterLab) ``enb.connect(**fallback)``."""
    from etoro_nb.client import connect

    url = os.environ.get(URL_ENV)
    if not url:
        return connect(**fallback)
    ledger = os.environ.get(LEDGER_ENV) or fallback.get("ledger")
    return connect(os.environ.get(API_KEY_ENV), os.environ.get(USER_KEY_ENV), base_url=url,
                   env_file=None, ledger=ledger)


def run_lab(notebooks: Path, *, config: SandboxConfig, port: int, lab_args: list[str],
            open_notebook: str | None = COCKPIT) -> int:
    """Serve the sandbox on ``port``, run JupyterLab on ``notebooks`` (opening
    ``open_notebook`` when it is there) until it exits; Ctrl-C or SIGTERM stops both."""
    if not notebooks.is_dir():
        raise FileNotFoundError(f"no notebook folder at {notebooks}")
    server = _serve(config, port)
    session = Path(tempfile.mkdtemp(prefix="etoro-nb-lab-"))
    previous = signal.signal(signal.SIGTERM, _terminated)
    lab: subprocess.Popen[bytes] | None = None
    try:
        print(connect_hint(server.base_url, config), flush=True)
        env = {**os.environ, URL_ENV: server.base_url, API_KEY_ENV: config.api_key,
               USER_KEY_ENV: config.user_key, LEDGER_ENV: str(session / "ledger.sqlite")}
        opened = [open_notebook] if open_notebook and (notebooks / open_notebook).is_file() else []
        # JupyterLab in a session of its own: Ctrl-C reaches this process only, which stops
        # it with SIGTERM (its kernels shut down, its runtime files go) instead of it asking
        # "Shut down this Jupyter server?" in the terminal, or, with no terminal, exiting
        # without shutting its kernels down; and a running cell is not interrupted by it.
        lab = subprocess.Popen([sys.executable, "-m", "jupyterlab", *opened,
                                *lab_arguments(lab_args, checkpoints=session / "checkpoints")],
                               cwd=notebooks, env=env, start_new_session=True)
        return _wait(lab)
    except KeyboardInterrupt:
        return 0
    finally:
        if lab is not None and lab.poll() is None:
            lab.terminate()  # JupyterLab shuts its kernels down on SIGTERM
            try:
                lab.wait(timeout=20)
            except subprocess.TimeoutExpired:
                lab.kill()
        signal.signal(signal.SIGTERM, previous)
        server.stop()
        shutil.rmtree(session, ignore_errors=True)


def _wait(process: subprocess.Popen[bytes]) -> int:
    """``process.wait()``, in short waits: Ctrl-C may be taken by another thread of this
    process (the sandbox's), and Python raises KeyboardInterrupt in the main thread only when
    it next runs, which a single blocking wait would put off until JupyterLab exits."""
    while True:
        try:
            return process.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            continue


def _serve(config: SandboxConfig, port: int) -> SandboxServer:
    """The sandbox on ``port``, or an error that says how to choose another port."""
    from etoro_nb.sandbox.server import start

    try:
        _probe(port)  # first, as start() would: a failed start leaves its socket to the GC
        return start(config, port=port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            other = free_port_near(port)
            raise PortUnavailableError(
                f"port {port} is already in use (another `make lab` or sandbox?). Choose another "
                f"port for the sandbox: `make lab PORT={other}` (or `etoro-nb lab --port {other}`)"
            ) from None
        if exc.errno == errno.EACCES:
            raise PortUnavailableError(
                f"port {port} needs privileges this user lacks: choose one above 1023, "
                "e.g. `make lab PORT=8765`") from None
        raise


def _probe(port: int) -> None:
    """Bind ``port`` on 127.0.0.1 the way the sandbox does, and let it go."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))


def free_port_near(port: int, *, tries: int = 50) -> int:
    """The first port after ``port`` that is free on 127.0.0.1 now (a suggestion: it may
    be taken by the time it is used), else ``port + 1``."""
    for candidate in range(port + 1, min(port + 1 + tries, 65536)):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return candidate
    return port + 1


def lab_arguments(lab_args: list[str], *, euid: int | None = None,
                  checkpoints: Path | None = None) -> list[str]:
    """JupyterLab's arguments: the user's, plus ``--allow-root`` when running as root (the
    default user in containers), where JupyterLab otherwise refuses to start, and the
    checkpoints folder (``checkpoints``) unless the user chose one."""
    out = list(lab_args)
    root = (os.geteuid() if euid is None else euid) == 0
    if root and not any(a.startswith(("--allow-root", "--ServerApp.allow_root")) for a in lab_args):
        print("etoro-nb: running as root, so JupyterLab is started with --allow-root", flush=True)
        out.append("--allow-root")
    if checkpoints is not None and not any("checkpoint_dir" in a for a in lab_args):
        # An absolute checkpoint_dir holds every notebook's checkpoints in one place.
        out.append(f"--FileCheckpoints.checkpoint_dir={checkpoints}")
    return out


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
