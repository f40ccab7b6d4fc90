"""``etoro-nb lab``: JupyterLab on the templates, with a sandbox serving beside it.

The sandbox runs in this process (a background thread) on a fixed port, so panels and
``curl`` can share one state while you explore; the templates start their own seeded
sandbox each, so their outputs stay the same on every run. Stopping JupyterLab (Ctrl-C)
stops the sandbox too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from etoro_nb.sandbox.config import SandboxConfig
from etoro_nb.sandbox.server import start


def connect_hint(base_url: str, config: SandboxConfig) -> str:
    """The lines that tell a user how to reach a running sandbox."""
    return (f"etoro-nb SANDBOX (simulated money, not eToro) serving on {base_url}\n"
            f"  ETORO_BASE_URL={base_url}\n"
            f"  ETORO_API_KEY={config.api_key}\n"
            f"  ETORO_USER_KEY={config.user_key}\n"
            f"  in a notebook: enb.connect({config.api_key!r}, {config.user_key!r}, "
            f"base_url={base_url!r})")


def run_lab(notebooks: Path, *, config: SandboxConfig, port: int, lab_args: list[str]) -> int:
    """Serve the sandbox on ``port``, run JupyterLab on ``notebooks`` until it exits; Ctrl-C
    or SIGTERM stops both."""
    if not notebooks.is_dir():
        raise FileNotFoundError(f"no notebook folder at {notebooks}")
    server = start(config, port=port)
    previous = signal.signal(signal.SIGTERM, _terminated)
    lab: subprocess.Popen[bytes] | None = None
    try:
        print(connect_hint(server.base_url, config), flush=True)
        lab = subprocess.Popen([sys.executable, "-m", "jupyterlab", *lab_arguments(lab_args)],
                               cwd=notebooks)
        return lab.wait()
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


def lab_arguments(lab_args: list[str], *, euid: int | None = None) -> list[str]:
    """JupyterLab's arguments: the user's, plus ``--allow-root`` when running as root (the
    default user in containers), where JupyterLab otherwise refuses to start."""
    root = (os.geteuid() if euid is None else euid) == 0
    if root and not any(a.startswith(("--allow-root", "--ServerApp.allow_root")) for a in lab_args):
        print("etoro-nb: running as root, so JupyterLab is started with --allow-root", flush=True)
        return [*lab_args, "--allow-root"]
    return list(lab_args)


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
