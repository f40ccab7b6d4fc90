"""Reading request bodies, ids and query values, with errors that name the field and rule."""

from __future__ import annotations

import ipaddress
import json
import math
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime
from typing import Any

from etoro_nb.sandbox.errors import ApiError, validation

INT64_MAX = 2**63 - 1


def _fold(name: str) -> str:
    # Only ASCII letters fold: every field of the contract is ASCII, and Unicode folding
    # would let look-alikes (the Kelvin sign for K) bind to them.
    return name.lower() if name.isascii() else name


class Fields(Mapping[str, Any]):
    """Request fields (a JSON object's, or query parameters) whose names match regardless
    of ASCII case; the last of repeated names wins.

    eToro's document names its fields in PascalCase and camelCase alike (and spells one
    field ``InstrumentID`` and ``InstrumentId`` in two operations), the mark of an ASP.NET
    service, which binds names case-insensitively. ``body["instrumentid"]`` finds
    ``InstrumentID``. Names given more than once (in any casing) are kept in ``repeated``
    so a caller can refuse the ambiguity rather than pick one.
    """

    __slots__ = ("_fields", "repeated")

    def __init__(self, pairs: Iterable[tuple[str, Any]]) -> None:
        self._fields: dict[str, tuple[str, Any]] = {}
        self.repeated: dict[str, list[str]] = {}
        for name, value in pairs:
            key = _fold(name)
            if key in self._fields:
                self.repeated.setdefault(key, [self._fields[key][0]]).append(name)
            self._fields[key] = (name, value)

    def __getitem__(self, name: str) -> Any:
        return self._fields[_fold(name)][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._fields.values())

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"Fields({dict(self.items())!r})"


def parse_json_object(raw: bytes) -> Fields:
    """The body as a JSON object; anything else is a 400 that says what was wrong.

    A field given twice, whatever the casing and however deep, is a 400 naming it.
    """
    if not raw.strip():
        raise validation("The request body is required and must be a JSON object")
    try:
        value = json.loads(raw, object_pairs_hook=Fields)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise validation(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(value, Fields):
        raise validation("The request body must be a JSON object")
    refuse_repeats(value, "The request body gives the field")
    return value


def _repeated(value: Any) -> list[str] | None:
    """The spellings of the first name given twice in ``value``, at any depth."""
    if isinstance(value, Fields):
        if value.repeated:
            return next(iter(value.repeated.values()))
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            if (found := _repeated(item)) is not None:
                return found
    return None


def refuse_repeats(fields: Fields, what: str) -> None:
    """A 400 if a name is given more than once, in any casing and at any depth: binding
    one of the two silently would act on a value the caller may not have meant."""
    spellings = _repeated(fields)
    if spellings is not None:
        given = ", ".join(repr(s) for s in spellings)
        raise validation(f"{what} {spellings[-1]!r} more than once ({given}); "
                         "names are matched ignoring case")


JSON_MEDIA_TYPES = ("application/json", "text/json")


def check_json_media_type(content_type: str | None, raw: bytes) -> None:
    """415 unless a body is declared JSON: ``application/json``, ``text/json`` or
    ``application/*+json``, in UTF-8 if a charset is given. No body needs no type."""
    if content_type is None:
        if not raw:
            return
        raise ApiError(415, "UnsupportedMediaType",
                       "The request body needs a Content-Type header: application/json")
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    json_type = media in JSON_MEDIA_TYPES or (
        media.startswith("application/") and media.endswith("+json"))
    if not json_type:
        raise ApiError(415, "UnsupportedMediaType",
                       f"Content-Type {media or '(empty)'!r} is not supported: send the body "
                       "as application/json")
    for param in params.split(";"):
        key, _, charset = param.partition("=")
        charset = charset.strip().strip('"').lower()
        if key.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            raise ApiError(415, "UnsupportedMediaType",
                           f"charset {charset!r} is not supported: send application/json in "
                           "UTF-8")


def require_fields(body: Mapping[str, Any], required: list[str], hint: str = "") -> None:
    """400 naming every missing required field at once."""
    missing = [name for name in required if body.get(name) is None]
    if missing:
        raise validation(f"Missing required field(s): {', '.join(missing)}{hint}")


def opt_string(body: Mapping[str, Any], name: str, *, max_len: int | None = None) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise validation(f"{name} must be a string")
    if max_len is not None and len(value) > max_len:
        raise validation(f"{name} must be at most {max_len} characters")
    return value


def req_string(body: Mapping[str, Any], name: str) -> str:
    value = opt_string(body, name)
    if value is None:
        raise validation(f"{name} is required")
    return value


def opt_number(body: Mapping[str, Any], name: str) -> float | None:
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


def opt_integer(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise validation(f"{name} must be an integer")
    if isinstance(value, float) and not value.is_integer():
        raise validation(f"{name} must be an integer")
    result = int(value)
    if abs(result) > INT64_MAX:
        raise validation(f"{name} is out of range: at most {INT64_MAX} in magnitude (int64)")
    return result


def opt_bool(body: Mapping[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise validation(f"{name} must be true or false")
    return value


def opt_list(body: Mapping[str, Any], name: str, item_type: type) -> list[Any] | None:
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


_DIGITS = re.compile(r"[0-9]+")
_INTEGER = re.compile(r"-?[0-9]+")


def parse_int_id(value: str, name: str) -> int:
    """A non-negative int64 id from a path or query value; beyond int64 is a 400."""
    if not _DIGITS.fullmatch(value):
        raise validation(f"{name} must be a positive integer, got {value!r:.40}")
    digits = value.lstrip("0") or "0"
    if len(digits) > len(str(INT64_MAX)) or int(digits) > INT64_MAX:
        raise validation(f"{name} must be at most {INT64_MAX} (int64), got {value!r:.40}")
    return int(digits)


def query_int(
    params: Mapping[str, str], name: str, *, default: int, low: int, high: int
) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not _INTEGER.fullmatch(raw) or len(raw) > 20:
        raise validation(f"{name} must be an integer, got {raw!r:.40}")
    value = int(raw)
    if not low <= value <= high:
        raise validation(f"{name} must be between {low} and {high}, got {value}")
    return value


def iso(at: datetime) -> str:
    """UTC, millisecond precision, with a Z: the form every sandbox timestamp takes."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
