"""The tools' inputs and structured outputs as pydantic models: each tool's JSON schemas
are made from them, inputs are validated by them (strict JSON types, no unknown field: a
bad argument is a tool error naming the field), and outputs are dumped by them."""

from __future__ import annotations

import json
from datetime import date
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from etoro_nb.models import Candle, PendingOrder, Position, Rate, Trade

Instrument = Annotated[int | Annotated[str, Field(min_length=1, max_length=40)],
                       Field(description="an instrument id (e.g. 1001) or symbol (e.g. \"AAPL\")")]
PositiveId = Annotated[int, Field(gt=0)]


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class NoParams(Params):
    pass


class HistoryParams(Params):
    since: date | None = Field(None, description="first UTC day (default: 30 days ago)")


class SearchParams(Params):
    text: str = Field(min_length=1, max_length=100, description="words of a name or symbol")
    limit: int = Field(10, ge=1, le=50)


class RatesParams(Params):
    instruments: list[Instrument] = Field(min_length=1, max_length=20)


class CandlesParams(Params):
    instrument: Instrument
    interval: Literal["OneMinute", "FiveMinutes", "TenMinutes", "FifteenMinutes",
                      "ThirtyMinutes", "OneHour", "FourHours", "OneDay", "OneWeek"] = "OneDay"
    count: int = Field(30, ge=1, le=1000)


class OpenParams(Params):
    instrument: Instrument
    side: Literal["buy", "sell"] = "buy"
    amount: float = Field(gt=0, allow_inf_nan=False, description="USD taken as margin")
    leverage: int = Field(1, ge=1, le=100)
    stop_loss: float | None = Field(None, gt=0, allow_inf_nan=False, description="a rate")
    take_profit: float | None = Field(None, gt=0, allow_inf_nan=False, description="a rate")


class CloseParams(Params):
    position_id: PositiveId
    units: float | None = Field(None, gt=0, allow_inf_nan=False,
                                description="close only this many units (default: all)")


class CancelParams(Params):
    order_id: PositiveId


class RoomParams(Params):
    instrument: Instrument | None = None
    leverage: int = Field(1, ge=1, le=100)


# -- results ------------------------------------------------------------------------------
class Result(BaseModel):
    notice: str | None = Field(None, description="what the owner did that this call should "
                                                 "know (a pause), if anything")


class PortfolioResult(Result):
    account: Literal["real", "demo"]
    credit: float
    unrealized_pnl: float | None
    positions: list[Position]
    orders: list[PendingOrder]


class HistoryResult(Result):
    since: date
    trades: list[Trade]


class InstrumentItem(BaseModel):
    instrument_id: int
    symbol: str | None
    name: str | None
    instrument_type: Any = None
    current_rate: float | None = None


class SearchResult(Result):
    instruments: list[InstrumentItem]


class RatesResult(Result):
    rates: list[Rate]


class CandlesResult(Result):
    instrument_id: int
    interval: str
    candles: list[Candle]


class BookFigures(BaseModel):
    gross_exposure_usd: float
    open_positions: int
    orders_today: int


class OpenResult(Result):
    order_id: int
    request_id: str = Field(description="the order's x-request-id (its idempotency key)")
    instrument_id: int
    symbol: str | None
    side: Literal["buy", "sell"]
    amount_usd: float
    leverage: int
    book: BookFigures


class CloseResult(Result):
    order_id: int
    position_id: int
    units: float
    request_id: str
    book: BookFigures


class CancelResult(Result):
    order_id: int
    cancelled: bool
    book: BookFigures


class RoomResult(Result):
    room_usd: float | None = Field(description="the largest amount an opening order may "
                                               "take now (None: no limit applies)")
    instrument: int | str | None
    leverage: int


class _Flat(GenerateJsonSchema):
    """An output schema as cheap to check as it can be: a nullable value is a type list
    (``{"type": ["number", "null"]}``, not an ``anyOf`` of two schemas). MCP clients check
    every structured result against the tool's output schema (the SDK's ``ClientSession``
    does, with ``jsonschema``), where an ``anyOf`` costs a validator per branch."""

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        inner = self.generate_inner(schema["schema"])
        if isinstance(inner.get("type"), str) and not {"$ref", "enum", "const"} & inner.keys():
            return {**inner, "type": [inner["type"], "null"]}
        return super().nullable_schema(schema)


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with each ``$ref`` to its ``$defs`` replaced by the definition (the result
    models nest without cycles): a client resolves no reference per object it checks."""
    defs = schema.get("$defs", {})

    def walk(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [walk(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref.removeprefix("#/$defs/")
            if name in seen:
                raise ValueError(f"{name} refers to itself: its schema cannot be inlined")
            return walk({**defs[name], **{k: v for k, v in node.items() if k != "$ref"}},
                        (*seen, name))
        return {key: walk(value, seen) for key, value in node.items() if key != "$defs"}

    return dict(walk(schema, ()))


@cache
def _input_schema(model: type[BaseModel]) -> str:
    return json.dumps(model.model_json_schema())


@cache
def _output_schema(model: type[BaseModel]) -> str:
    return json.dumps(_inlined(model.model_json_schema(mode="serialization", by_alias=False,
                                                       schema_generator=_Flat)))


def input_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema (made once: pydantic takes milliseconds per schema), a copy."""
    return dict(json.loads(_input_schema(model)))


def output_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's schema as it serialises (see ``_Flat`` and ``_inlined``), a copy."""
    return dict(json.loads(_output_schema(model)))


def dumped(result: BaseModel) -> dict[str, Any]:
    return result.model_dump(mode="json", by_alias=False)
