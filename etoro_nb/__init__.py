"""etoro-nb: a Jupyter analyst toolkit for eToro Agent Portfolios.

This release ships the embedded sandbox (``etoro_nb.sandbox``); the client, ledger,
frames, charts and panels build on it.
"""

from etoro_nb import sandbox

__version__ = "0.1.0"

__all__ = ["__version__", "sandbox"]
