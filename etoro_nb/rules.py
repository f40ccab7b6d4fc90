"""The contract's input rules, checked before anything is sent.

Each function returns the value in the contract's form or raises ``InvalidInputError``
naming the field and the rule.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from etoro_nb.errors import InvalidInputError
from etoro_nb.scopes import NAMES as SCOPES

NAME_MIN, NAME_MAX = 6, 10


def portfolio_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_MIN <= len(name) <= NAME_MAX:
        raise InvalidInputError("name", f"an agent portfolio name has {NAME_MIN} to {NAME_MAX} "
                                      f"characters, got {name!r}")
    return name


def token_name(name: str, field: str = "token_name") -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError(field, "a token name is a non-empty string")
    return name


def _finite(value: float, field: str, rule: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInputError(field, f"must be {rule}, got {value!r}")
    return float(value)


def positive(value: float, field: str) -> float:
    if _finite(value, field, "a positive number") <= 0:
        raise InvalidInputError(field, f"must be a positive number, got {value!r}")
    return float(value)


def not_negative(value: float, field: str) -> float:
    if _finite(value, field, "a number >= 0") < 0:
        raise InvalidInputError(field, f"must be a number >= 0, got {value!r}")
    return float(value)


def scopes(values: Iterable[str], allowed: Iterable[str] = SCOPES) -> list[str]:
    if isinstance(values, str):
        values = [values]
    chosen = list(dict.fromkeys(values))
    if not chosen:
        raise InvalidInputError("scopes", "at least one scope is required")
    allowed = tuple(allowed)
    unknown = [s for s in chosen if s not in allowed]
    if unknown:
        raise InvalidInputError("scopes", f"not an allowed scope: {', '.join(unknown)} "
                                        f"(allowed: {', '.join(allowed)})")
    return chosen


def ipv4_whitelist(values: Iterable[str] | None) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    out = []
    for value in values:
        try:
            out.append(str(ipaddress.IPv4Address(value)))
        except (ipaddress.AddressValueError, ValueError):
            raise InvalidInputError("ips_whitelist",
                                  f"{value!r} is not an IPv4 address (a.b.c.d)") from None
    return out


def expiry(value: datetime | timedelta | None, now: datetime) -> str | None:
    """``expiresAt`` in ISO 8601 UTC; a timedelta counts from ``now``; None never expires."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        at = now + value
    elif isinstance(value, datetime):
        at = value if value.tzinfo else value.replace(tzinfo=UTC)
    else:
        raise InvalidInputError("expires_at", "must be a datetime, a timedelta or None")
    if at <= now:
        raise InvalidInputError("expires_at", f"must be in the future (now is {now.isoformat()})")
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def path_id(value: object, field: str) -> str:
    """An id for a URL path: non-empty, quoted so it can't change the path."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError(field, f"must be a non-empty id, got {value!r}")
    return quote(text, safe="")


def order_size(amount: float | None, units: float | None) -> tuple[float | None, float | None]:
    if (amount is None) == (units is None):
        raise InvalidInputError("amount/units", "give exactly one of amount or units")
    if amount is not None:
        return positive(amount, "amount"), None
    assert units is not None
    return None, positive(units, "units")
