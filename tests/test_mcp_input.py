"""Bad tool input through MCP (wrong types, unknown instrument or position, negative
amount, unknown argument or tool) is a tool error naming the field, nothing reaches the
sandbox, and the server keeps serving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.agent_support import Desk
from tests.helpers import DEMO_READ, DEMO_WRITE
from tests.mcp_support import connect, error_of

CASES: list[tuple[str, dict[str, Any], str]] = [
    ("open_position", {"instrument": "AAPL", "amount": "lots"}, "amount"),
    ("open_position", {"instrument": "AAPL", "amount": -5}, "amount"),
    ("open_position", {"instrument": "AAPL", "amount": 0}, "amount"),
    ("open_position", {"instrument": "AAPL"}, "amount"),
    ("open_position", {"instrument": True, "amount": 10}, "instrument"),
    ("open_position", {"instrument": "NOPE", "amount": 10}, "instrument"),
    ("open_position", {"instrument": 999999, "amount": 10}, "instrument"),
    ("open_position", {"instrument": "AAPL", "amount": 10, "leverage": 2.5}, "leverage"),
    ("open_position", {"instrument": "AAPL", "amount": 10, "side": "hold"}, "side"),
    ("open_position", {"instrument": "AAPL", "amount": 10, "secret": "x"}, "secret"),
    ("close_position", {"position_id": 987654}, "position_id"),
    ("close_position", {"position_id": "1"}, "position_id"),
    ("cancel_order", {"order_id": -1}, "order_id"),
    ("get_rates", {"instruments": ["AAPL", "NOPE"]}, "instruments[1]"),
    ("get_rates", {"instruments": []}, "instruments"),
    ("get_candles", {"instrument": "AAPL", "count": 0}, "count"),
    ("get_trade_history", {"since": "yesterday"}, "since"),
    ("search_instruments", {"text": 42}, "text"),
]


@pytest.fixture
def trading_bot(desk: Desk) -> Any:
    return desk.portfolio([DEMO_READ, DEMO_WRITE])


def test_bad_input_is_a_tool_error_naming_the_field(desk: Desk, trading_bot: Any,
                                                     tmp_path: Path) -> None:
    seen: list[tuple[str, str, str]] = []

    async def main() -> None:
        async with connect(desk, trading_bot.token.secret.get_secret_value(),
                           tmp_path / "err") as c:
            for tool, arguments, field in CASES:
                error = error_of(await c.call(tool, arguments))
                seen.append((tool, error["field"], error["code"]))
                assert error["field"] == field, (tool, arguments, error)
                assert error["code"] == "InvalidInput" and error["sent"] is False
                assert field.split("[")[0] in str(error["message"])
            unknown = error_of(await c.call("drop_tables", {}))
            assert unknown["code"] == "UnknownTool" and unknown["field"] == "name"
            # Still serving, and nothing of the above was placed.
            assert not (await c.call("get_portfolio")).is_error

    anyio.run(main)
    assert len(seen) == len(CASES)
    assert desk.orders_received(desk.cid(trading_bot, "demo")) == 0
