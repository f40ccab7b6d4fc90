"""A local eToro-compatible server for agent portfolios, delegated tokens and trading.

Three ways to run it: in process (``create_app``, an ASGI app), as a background server
(``start()``, returning a handle with ``base_url``, ``credentials`` and ``stop()``), or
from the command line (``etoro-nb sandbox serve``). See docs/sandbox.md.
"""

from etoro_nb.sandbox.app import ConnectionDropped, create_app
from etoro_nb.sandbox.config import DEFAULT_API_KEY, DEFAULT_USER_KEY, Faults, SandboxConfig
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
