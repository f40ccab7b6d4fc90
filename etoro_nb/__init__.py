"""etoro-nb: a Jupyter analyst toolkit for eToro Agent Portfolios.

``connect()`` gives a client for live eToro or, with no credentials, for the embedded
sandbox (``etoro_nb.sandbox``).

``charts`` (plotly), ``sandbox`` (uvicorn, starlette) and the client (httpx) load on
first use, so importing the package costs little more than its core dependencies
(``bench/import_time.py``).
"""

import importlib
import typing

from etoro_nb import errors, frames
from etoro_nb.ledger import Ledger
from etoro_nb.ratelimit import Quota

if typing.TYPE_CHECKING:
    from etoro_nb import charts, sandbox
    from etoro_nb.client import AsyncEtoroClient, EtoroClient, connect, connect_async

__version__ = "0.1.0"

__all__ = [
    "AsyncEtoroClient",
    "EtoroClient",
    "Ledger",
    "Quota",
    "__version__",
    "charts",
    "connect",
    "connect_async",
    "errors",
    "frames",
    "sandbox",
]

_LAZY_MODULES = frozenset({"charts", "sandbox"})
# The HTTP client (httpx) loads on first use too: reading a ledger file needs none.
_CLIENT_NAMES = frozenset({"AsyncEtoroClient", "EtoroClient", "connect", "connect_async"})


def __getattr__(name: str) -> typing.Any:
    """Load ``charts``, ``sandbox`` and the client when first used (PEP 562)."""
    if name in _LAZY_MODULES:
        return importlib.import_module(f"etoro_nb.{name}")
    if name in _CLIENT_NAMES:
        value = getattr(importlib.import_module("etoro_nb.client"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'etoro_nb' has no attribute {name!r}")
