"""Reading request bodies, ids and query values, with errors that name the field and rule."""

from __future__ import annotations

import ipaddress
import json
import math
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from etoro_nb.sandbox.errors import ApiError, validation


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object; anything else is a 400 that says what was wrong."""
    if not raw.strip():
        raise validation("The request body is required and must be a JSON object")
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise validation(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise validation("The request body must be a JSON object")
    return value


def require_fields(body: dict[str, Any], required: list[str], hint: str = "") -> None:
    """400 naming every missing required field at once."""
    missing = [name for name in required if body.get(name) is None]
    if missing:
        raise validation(f"Missing required field(s): {', '.join(missing)}{hint}")


def opt_string(body: dict[str, Any], name: str, *, max_len: int | None = None) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise validation(f"{name} must be a string")
    if max_len is not None and len(value) > max_len:
        raise validation(f"{name} must be at most {max_len} characters")
    return value


def req_string(body: dict[str, Any], name: str) -> str:
    value = opt_string(body, name)
    if value is None:
        raise validation(f"{name} is required")
    return value


def opt_number(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise validation(f"{name} must be a number")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise validation(f"{name} must be a finite number")
    return number


def opt_integer(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise validation(f"{name} must be an integer")
    if isinstance(value, float) and not value.is_integer():
        raise validation(f"{name} must be an integer")
    result = int(value)
    if abs(result) > 2**63 - 1:
        raise validation(f"{name} is out of range")
    return result


def opt_bool(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise validation(f"{name} must be true or false")
    return value


def opt_list(body: dict[str, Any], name: str, item_type: type) -> list[Any] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list):
        raise validation(f"{name} must be an array")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, item_type):
            kind = "strings" if item_type is str else "integers"
            raise validation(f"{name} must be an array of {kind}")
    return value


def ipv4_list(values: list[str]) -> list[str]:
    """Each entry a dotted-quad IPv4 address; duplicates removed, order kept."""
    out: list[str] = []
    for value in values:
        try:
            address = ipaddress.IPv4Address(value.strip())
        except ValueError:
            raise ApiError(
                400,
                "IpsWhitelistInvalidIp",
                f"IpsWhitelist contains an invalid IPv4 address: {value!r}",
            ) from None
        if str(address) not in out:
            out.append(str(address))
    if len(out) > MAX_WHITELIST:
        raise validation(f"ipsWhitelist may hold at most {MAX_WHITELIST} addresses")
    return out


MAX_WHITELIST = 50


def parse_datetime(value: object, name: str) -> datetime:
    """An ISO 8601 date-time; one without an offset is taken as UTC."""
    if not isinstance(value, str):
        raise validation(f"{name} must be an ISO 8601 date-time string")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise validation(f"{name} must be an ISO 8601 date-time, got {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise validation(f"{name} is outside the representable range, got {value!r}") from None


def parse_date(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise validation(f"{name} must be a date in YYYY-MM-DD form, got {value!r}") from None


def parse_uuid(value: str, name: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise validation(f"{name} must be a UUID, got {value!r}") from None


_INT64 = re.compile(r"^[0-9]{1,18}$")
_INTEGER = re.compile(r"^-?[0-9]{1,18}$")


def parse_int_id(value: str, name: str) -> int:
    if not _INT64.match(value):
        raise validation(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def query_int(
    params: Mapping[str, str], name: str, *, default: int, low: int, high: int
) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not _INTEGER.match(raw):
        raise validation(f"{name} must be an integer, got {raw!r}")
    value = int(raw)
    if not low <= value <= high:
        raise validation(f"{name} must be between {low} and {high}, got {value}")
    return value


def iso(at: datetime) -> str:
    """UTC, millisecond precision, with a Z: the form every sandbox timestamp takes."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
