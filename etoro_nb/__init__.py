"""etoro-nb: a Jupyter analyst toolkit for eToro Agent Portfolios.

``connect()`` gives a client for live eToro or, with no credentials, for the embedded
sandbox (``etoro_nb.sandbox``).
"""

from etoro_nb import charts, errors, frames, sandbox
from etoro_nb.client import AsyncClient, Client, connect, connect_async
from etoro_nb.ledger import Ledger
from etoro_nb.ratelimit import Quota

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "Client",
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
