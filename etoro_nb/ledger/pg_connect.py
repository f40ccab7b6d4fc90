"""Connecting to a PostgreSQL ledger: URLs, the password kept out of every message, and a
clear error when the server can't be reached.

A ledger URL is a libpq URL, ``postgresql://[role[:password]@]host[:port]/database``
(or ``postgres://``); a password is better kept out of it, in ``~/.pgpass`` or
``PGPASSWORD``, where libpq finds it. Wherever a URL is shown (reprs, errors,
checkpoints) its password is replaced by ``***``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit, urlunsplit

from etoro_nb.errors import LedgerError

if TYPE_CHECKING:
    import psycopg

SCHEMES = ("postgresql://", "postgres://")
CONNECT_TIMEOUT = 10  # seconds: a server that is down answers at once; one unreachable, not


def is_postgres(target: object) -> bool:
    """Whether ``target`` names a PostgreSQL ledger (a ``postgresql://`` URL)."""
    return isinstance(target, str) and target.lower().startswith(SCHEMES)


def redact(url: str) -> str:
    """``url`` without its password (and without query values, which may hold one)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        auth, host = netloc.rsplit("@", 1)
        user = auth.split(":", 1)[0]
        netloc = f"{user}{':***' if ':' in auth else ''}@{host}"
    query = "&".join(f"{q.split('=', 1)[0]}=***"  # password, sslpassword
                     if q.split("=", 1)[0].lower().endswith("password") else q
                     for q in parts.query.split("&") if q)
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def connect(url: str, *, application: str = "etoro-nb ledger") -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit connection to the ledger at ``url``, or a LedgerError saying which
    server could not be reached and why (never the password)."""
    try:
        import psycopg
    except ImportError:
        raise LedgerError("a PostgreSQL ledger needs psycopg: pip install 'etoro-nb[postgres]'") \
            from None
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                               application_name=application)
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__  # libpq's lines, as one
        # libpq quotes what it could not parse, which may be the password itself.
        for secret in _secrets(url):
            reason = reason.replace(secret, "***")
        raise LedgerError(f"cannot reach the PostgreSQL ledger at {redact(url)}: {reason}") \
            from None


def _secrets(url: str) -> set[str]:
    """The password in ``url`` and in its query, as written and percent-decoded."""
    parts = urlsplit(url)
    auth = parts.netloc.rsplit("@", 1)[0] if "@" in parts.netloc else ""
    found = {auth.split(":", 1)[1]} if ":" in auth else set()
    found |= {q.split("=", 1)[1] for q in parts.query.split("&")
              if "=" in q and q.split("=", 1)[0].lower().endswith("password")}
    return {s for value in found for s in (value, unquote(value)) if s}
