"""Market data: ``client.market.search(...)``, ``.rates(...)``, ``.candles(...)``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from etoro_nb._base import Call, Flow, read
from etoro_nb.errors import InvalidInputError
from etoro_nb.models import Candle, Rate

if TYPE_CHECKING:
    from etoro_nb._runner import AsyncRunner, Runner

INTERVALS = ("OneMinute", "FiveMinutes", "TenMinutes", "FifteenMinutes", "ThirtyMinutes",
             "OneHour", "FourHours", "OneDay", "OneWeek")
DEFAULT_FIELDS = ("instrumentId", "symbol", "displayname", "instrumentType", "currentRate")


def search_flow(text: str | None, fields: Iterable[str], page: int, page_size: int,
                sort: str | None, filters: dict[str, Any]) -> Flow[list[dict[str, Any]]]:
    params: dict[str, Any] = {"fields": ",".join(fields), "pageNumber": page,
                              "pageSize": page_size, **filters}
    if text:
        params["searchText"] = text
    if sort:
        params["sort"] = sort
    answer = yield Call.of("searchForInstruments", params=params)
    return read(answer, lambda body: [dict(item) for item in body["items"]])


def instrument_flow(instrument: int | str, fields: Iterable[str] = DEFAULT_FIELDS, *,
                    symbol_field: str = "symbol") -> Flow[dict[str, Any] | None]:
    """The instrument with this id, or this symbol in any case (``symbol_field`` says which
    field holds it), or None if the market knows none: one search filtered on that field.
    Only an exact match is taken: eToro's document names no such filter, and a server that
    ignored it must not pass another instrument off as this one."""
    field = "instrumentId" if isinstance(instrument, int) else symbol_field
    wanted = instrument if isinstance(instrument, int) else instrument.strip()
    items = yield from search_flow(None, dict.fromkeys((*fields, field)), 1, 1, None,
                                   {field: wanted})
    return next((i for i in items if str(i.get(field)).upper() == str(wanted).upper()), None)


def rates_flow(instrument_ids: Iterable[int]) -> Flow[list[Rate]]:
    ids = [int(i) for i in instrument_ids]
    if not 1 <= len(ids) <= 100:
        raise InvalidInputError("instrument_ids", "give 1 to 100 instrument ids")
    answer = yield Call.of("retrieveCurrentMarketRatesPricingInformation",
                           params={"instrumentIds": ",".join(map(str, ids))})
    return read(answer, lambda body: [Rate.model_validate(r) for r in body["rates"]])


def candles_flow(instrument_id: int, interval: str, count: int,
                 direction: str) -> Flow[list[Candle]]:
    if interval not in INTERVALS:
        raise InvalidInputError("interval", f"is one of {', '.join(INTERVALS)}")
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1000:
        raise InvalidInputError("count", "is a whole number from 1 to 1000")
    if direction not in ("asc", "desc"):
        raise InvalidInputError("direction", "is 'asc' or 'desc'")
    answer = yield Call.of("getCandles", {"instrumentId": int(instrument_id),
                                          "direction": direction, "interval": interval,
                                          "candlesCount": count})
    return read(answer, lambda body: [Candle.model_validate(c) for group in body["candles"]
                                      for c in group["candles"]])


class Market:
    def __init__(self, client: Runner) -> None:
        self._client = client

    def search(self, text: str | None = None, *, fields: Iterable[str] = DEFAULT_FIELDS,
               page: int = 1, page_size: int = 20, sort: str | None = None,
               **filters: Any) -> list[dict[str, Any]]:
        """Instruments matching ``text``; extra keywords filter on Instrument fields."""
        return self._client.run_flow(search_flow(text, fields, page, page_size, sort, filters))

    def instrument(self, instrument: int | str, *,
                   fields: Iterable[str] = DEFAULT_FIELDS) -> dict[str, Any] | None:
        """The instrument with this id or symbol (any case), None if the market knows none."""
        return self._client.run_flow(instrument_flow(instrument, fields))

    def rates(self, instrument_ids: Iterable[int]) -> list[Rate]:
        return self._client.run_flow(rates_flow(instrument_ids))

    def candles(self, instrument_id: int, interval: str = "OneDay", count: int = 100, *,
                direction: str = "asc") -> list[Candle]:
        return self._client.run_flow(candles_flow(instrument_id, interval, count, direction))


class AsyncMarket:
    def __init__(self, client: AsyncRunner) -> None:
        self._client = client

    async def search(self, text: str | None = None, *, fields: Iterable[str] = DEFAULT_FIELDS,
                     page: int = 1, page_size: int = 20, sort: str | None = None,
                     **filters: Any) -> list[dict[str, Any]]:
        return await self._client.run_flow(search_flow(text, fields, page, page_size, sort, filters))

    async def instrument(self, instrument: int | str, *,
                         fields: Iterable[str] = DEFAULT_FIELDS) -> dict[str, Any] | None:
        return await self._client.run_flow(instrument_flow(instrument, fields))

    async def rates(self, instrument_ids: Iterable[int]) -> list[Rate]:
        return await self._client.run_flow(rates_flow(instrument_ids))

    async def candles(self, instrument_id: int, interval: str = "OneDay", count: int = 100, *,
                      direction: str = "asc") -> list[Candle]:
        return await self._client.run_flow(candles_flow(instrument_id, interval, count, direction))
