"""``RiskPolicy``: what an agent may trade, how much and how fast, and how to tell whether
a new policy loosens an old one.

Every limit is optional: ``None`` (the default) means no limit. Money is in USD. An
order's *amount* is the margin it takes (as in ``open_order(amount=...)``); its *exposure*
is ``amount x leverage``; the book's *gross exposure* is the sum of that over open
positions and pending orders, at the size they were opened with (not marked to market,
so it moves only with the agent's own orders). Days are UTC calendar days; the hourly
order limit counts the last 60 minutes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, time
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from etoro_nb.errors import InvalidInputError

Usd = Annotated[float, Field(ge=0, strict=True, allow_inf_nan=False)]
PositiveUsd = Annotated[float, Field(gt=0, strict=True, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0, strict=True)]
Instruments = tuple[int | str, ...]
MINUTES_PER_DAY = 24 * 60


def instrument_key(value: int | str) -> int | str:
    """How an instrument is compared: its id, or its symbol in upper case."""
    return value.strip().upper() if isinstance(value, str) else value


def asset_class_key(value: int | str) -> int | str:
    """How an asset class is compared: its id, or its name in lower case."""
    return value.strip().lower() if isinstance(value, str) else value


class RiskPolicy(BaseModel):
    """The limits an agent session holds every order to (frozen; ``None`` = no limit).

    ``allowed_instruments`` / ``denied_instruments``: instrument ids or symbols;
    ``allowed_asset_classes``: asset class names (``"Stocks"``, ``"ETF"``, ``"Crypto"``,
    ``"Currencies"``, any case) or ids. ``trading_hours_utc`` is a ``(start, end)`` window
    of UTC times in which opening orders are allowed (``end`` before ``start`` wraps past
    midnight). ``require_stop_loss`` refuses opening orders without a stop loss.
    ``reconcile_every_orders`` / ``reconcile_every_seconds`` set how often the session
    re-reads the account (besides at start and after an ambiguous outcome). Closing
    orders are held only to the scope, pause and expiry checks: they never need more room
    than they free.

    Examples
    --------
    >>> RiskPolicy(max_order_amount_usd=500, max_leverage=2, denied_instruments=("BTC",))
    ... # doctest: +ELLIPSIS
    RiskPolicy(...)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    expires_at: AwareDatetime | None = None
    """After this instant the session places no order (UTC-aware)."""
    allowed_instruments: Instruments | None = None
    denied_instruments: Instruments | None = None
    allowed_asset_classes: tuple[int | str, ...] | None = None
    max_order_amount_usd: PositiveUsd | None = None
    """The largest amount (margin, USD) one opening order may take."""
    max_leverage: Annotated[int, Field(ge=1, strict=True)] | None = None
    max_open_positions: Count | None = None
    """Open positions plus pending orders, after the order."""
    max_gross_exposure_usd: Usd | None = None
    """Sum of ``amount x leverage`` over open positions and pending orders, after the order."""
    max_gross_exposure_share: Annotated[float, Field(gt=0, strict=True,
                                                     allow_inf_nan=False)] | None = None
    """Gross exposure as a share of the agent portfolio's virtual balance (0.5 = half)."""
    max_orders_per_day: Count | None = None
    """Orders placed (opens and closes) in the UTC day; only opening orders are refused."""
    max_orders_per_hour: Count | None = None
    """Orders placed in the last 60 minutes; only opening orders are refused."""
    max_daily_loss_usd: PositiveUsd | None = None
    """Net realised loss in the UTC day (USD) at which opening orders stop until the next
    day; closes are still allowed."""
    trading_hours_utc: tuple[time, time] | None = None
    require_stop_loss: bool = False
    reconcile_every_orders: Annotated[int, Field(ge=1, strict=True)] | None = None
    reconcile_every_seconds: PositiveUsd | None = None

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except PydanticValidationError as exc:
            raise _as_validation_error(exc) from None

    @field_validator("allowed_instruments", "denied_instruments")
    @classmethod
    def _instruments(cls, value: Instruments | None) -> Instruments | None:
        return None if value is None else tuple(dict.fromkeys(_keys(value, instrument_key)))

    @field_validator("allowed_asset_classes")
    @classmethod
    def _classes(cls, value: tuple[int | str, ...] | None) -> tuple[int | str, ...] | None:
        return None if value is None else tuple(dict.fromkeys(_keys(value, asset_class_key)))

    @field_validator("trading_hours_utc")
    @classmethod
    def _window(cls, value: tuple[time, time] | None) -> tuple[time, time] | None:
        if value is None:
            return None
        start, end = (t.replace(second=0, microsecond=0, tzinfo=None) for t in value)
        if start == end:
            raise ValueError("start and end must differ (a window of no time)")
        return start, end

    @model_validator(mode="after")
    def _lists_meet(self) -> RiskPolicy:
        both = set(self.allowed_instruments or ()) & set(self.denied_instruments or ())
        if both:
            raise ValueError(f"instruments both allowed and denied: {sorted(map(str, both))}")
        return self

    # -- reading -------------------------------------------------------------------------
    def limits(self) -> dict[str, Any]:
        """The fields that are set, as plain JSON (what the ledger records)."""
        return {k: v for k, v in self.model_dump(mode="json").items()
                if v is not None and not (k == "require_stop_loss" and v is False)}

    @classmethod
    def from_limits(cls, limits: dict[str, Any]) -> RiskPolicy:
        """The policy ``limits()`` describes."""
        try:
            return cls.model_validate_json(json.dumps(limits))
        except PydanticValidationError as exc:
            raise _as_validation_error(exc) from None

    def in_hours(self, at: datetime) -> bool:
        """Whether ``at`` (UTC) is inside ``trading_hours_utc`` (always, when not set)."""
        return self.trading_hours_utc is None or _minute(at.time()) in _minutes(
            self.trading_hours_utc)

    def loosened_by(self, new: RiskPolicy) -> list[str]:
        """What ``new`` allows that this policy does not, in words (empty: ``new`` is as
        tight or tighter). Each list is compared item by item as given (an id and a symbol
        of the same instrument are different items: adding either loosens)."""
        out: list[str] = []
        for name in _MAXIMA:
            old_v, new_v = getattr(self, name), getattr(new, name)
            if old_v is not None and (new_v is None or new_v > old_v):
                out.append(f"{name}: {old_v} -> {'no limit' if new_v is None else new_v}")
        for name in ("allowed_instruments", "allowed_asset_classes"):
            old_l, new_l = getattr(self, name), getattr(new, name)
            if old_l is not None:
                added = [x for x in new_l or () if x not in old_l]
                if new_l is None:
                    out.append(f"{name}: {list(old_l)} -> any")
                elif added:
                    out.append(f"{name}: adds {added}")
        removed = [x for x in self.denied_instruments or () if x not in (new.denied_instruments or ())]
        if removed:
            out.append(f"denied_instruments: no longer denies {removed}")
        if self.expires_at is not None and (new.expires_at is None
                                            or new.expires_at > self.expires_at):
            later = "never" if new.expires_at is None else new.expires_at.isoformat()
            out.append(f"expires_at: {self.expires_at.isoformat()} -> {later}")
        if self.trading_hours_utc is not None and (
                new.trading_hours_utc is None
                or not _minutes(new.trading_hours_utc) <= _minutes(self.trading_hours_utc)):
            out.append(f"trading_hours_utc: {_window_text(self.trading_hours_utc)} -> "
                       f"{_window_text(new.trading_hours_utc)}")
        if self.require_stop_loss and not new.require_stop_loss:
            out.append("require_stop_loss: no longer required")
        return out

    def changes(self, new: RiskPolicy) -> dict[str, list[Any]]:
        """Each field whose value differs: ``[old, new]`` as plain JSON."""
        old_d, new_d = self.model_dump(mode="json"), new.model_dump(mode="json")
        return {k: [old_d[k], new_d[k]] for k in old_d if old_d[k] != new_d[k]}


_MAXIMA = ("max_order_amount_usd", "max_leverage", "max_open_positions",
           "max_gross_exposure_usd", "max_gross_exposure_share", "max_orders_per_day",
           "max_orders_per_hour", "max_daily_loss_usd")
"""The limits that are upper bounds: a higher value (or none) loosens."""


def _keys(values: Iterable[int | str], key: Any) -> list[int | str]:
    if isinstance(values, str | int):
        raise ValueError("must be a list of ids or names, not a single value")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | str) or (isinstance(v, str)
                                                                    and not v.strip()):
            raise ValueError(f"each item is an id or a name, got {v!r}")
        out.append(key(v))
    return out


def _minute(t: time) -> int:
    return t.hour * 60 + t.minute


def _minutes(window: tuple[time, time]) -> frozenset[int]:
    """The minutes of the day a window covers, ``[start, end)``, wrapping past midnight."""
    start, end = _minute(window[0]), _minute(window[1])
    span = (end - start) % MINUTES_PER_DAY
    return frozenset((start + k) % MINUTES_PER_DAY for k in range(span))


def _window_text(window: tuple[time, time] | None) -> str:
    return "any time" if window is None else f"{window[0]:%H:%M}-{window[1]:%H:%M} UTC"


def _as_validation_error(exc: PydanticValidationError) -> InvalidInputError:
    """pydantic's errors as the project's: the fields, and each one's rule."""
    whole = "allowed_instruments/denied_instruments"  # the one rule across fields
    problems = [(".".join(map(str, e["loc"])) or whole, e["msg"].removeprefix("Value error, "))
                for e in exc.errors(include_input=False, include_url=False)]
    fields = ", ".join(dict.fromkeys(f for f, _ in problems))
    if len(problems) == 1:
        return InvalidInputError(f"RiskPolicy.{fields}", problems[0][1])
    return InvalidInputError(f"RiskPolicy.{{{fields}}}", "; ".join(f"{f}: {m}" for f, m in problems))
