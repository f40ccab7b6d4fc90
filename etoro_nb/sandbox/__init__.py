"""A local eToro-compatible server for agent portfolios, delegated tokens and trading.

Three ways to run it: in process (``create_app``, an ASGI app), as a background server
(``start()``, returning a handle with ``base_url``, ``credentials`` and ``stop()``), or
from the command line (``etoro-nb sandbox serve``). See docs/sandbox.md.

Its settings (``SandboxConfig``) import nothing heavy; the app and the server (starlette,
uvicorn) load when one of their names is first used, so a client that never starts a
sandbox never imports them.
"""

import importlib
import typing

from etoro_nb.sandbox.config import DEFAULT_API_KEY, DEFAULT_USER_KEY, Faults, SandboxConfig

if typing.TYPE_CHECKING:
    from etoro_nb.sandbox.app import ConnectionDropped, create_app
    from etoro_nb.sandbox.core import Credentials, Sandbox
    from etoro_nb.sandbox.server import SandboxServer, start

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_USER_KEY",
    "ConnectionDropped",
    "Credentials",
    "Faults",
    "Sandbox",
    "SandboxConfig",
    "SandboxServer",
    "create_app",
    "start",
]

_LAZY = {
    "ConnectionDropped": "app", "create_app": "app",
    "Credentials": "core", "Sandbox": "core",
    "SandboxServer": "server", "start": "server",
}


def __getattr__(name: str) -> typing.Any:
    """Load the app and the server on first use (PEP 562)."""
    if name in _LAZY:
        value = getattr(importlib.import_module(f"etoro_nb.sandbox.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'etoro_nb.sandbox' has no attribute {name!r}")
