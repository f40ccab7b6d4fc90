"""The tools' output schemas, as MCP clients check every structured result against them:
flat (nullable values as type lists, no ``$ref`` to resolve) and still exact."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from jsonschema.validators import validator_for

from etoro_nb.mcp import schemas as s
from etoro_nb.mcp import tools
from etoro_nb.models import Position


@pytest.mark.parametrize("spec", tools.SPECS, ids=lambda spec: spec.name)
def test_an_output_schema_is_valid_and_has_nothing_to_resolve(spec: tools.ToolSpec) -> None:
    schema = s.output_schema(spec.result)
    validator_for(schema).check_schema(schema)
    text = json.dumps(schema)
    assert "$ref" not in text and "$defs" not in text


def test_a_portfolio_result_checks_as_the_model_says() -> None:
    schema = s.output_schema(s.PortfolioResult)
    assert schema["properties"]["unrealized_pnl"]["type"] == ["number", "null"]
    check = validator_for(schema)(schema)
    position = Position(position_id=7, instrument_id=1001, is_buy=True, open_rate=180.5,
                        opened_at=datetime(2026, 11, 30, tzinfo=UTC), units=2.0)
    result = s.dumped(s.PortfolioResult(account="demo", credit=500.0, unrealized_pnl=None,
                                        positions=[position], orders=[]))
    assert list(check.iter_errors(result)) == []
    assert not check.is_valid({**result, "unrealized_pnl": "12"})  # a type list still refuses
    assert not check.is_valid({**result, "positions": [{**result["positions"][0], "cid": "x"}]})
    assert not check.is_valid({**result, "positions": [{"position_id": 7}]})  # inlined: required
