"""The README's MCP client configuration works as written: its stdio command and
environment, run by the MCP SDK's client as an editor runs them."""

from __future__ import annotations

import json
import re
import string
import sys
from pathlib import Path

import anyio
import mcp_types as types
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.mcp_support import MARKET_TOOLS, READ_TOOLS, WAIT

README = Path(__file__).resolve().parents[1] / "README.md"
PLACEHOLDER = "/ABSOLUTE/PATH/TO/etoro-nb/.venv/bin/etoro-nb"


def _config_block() -> dict[str, object]:
    text = README.read_text()
    section = text[text.index("## AI editors over MCP"):]
    match = re.search(r"```json\n(.*?)```", section, re.S)
    assert match is not None
    return dict(json.loads(match.group(1)))


def test_the_readme_block_serves_a_read_only_sandbox_portfolio(tmp_path: Path) -> None:
    servers = _config_block()["mcpServers"]
    assert isinstance(servers, dict)
    entry = servers["etoro-agent"]
    assert entry["command"] == PLACEHOLDER
    command = str(Path(sys.executable).parent / "etoro-nb")  # where `make setup` puts it
    shell = {"ETORO_AGENT_TOKEN": ""}  # as the editor expands ${...} from its environment
    env = {k: string.Template(v).substitute(shell) for k, v in entry["env"].items()}
    env["ETORO_NB_LEDGER"] = str(tmp_path / "ledger.sqlite")  # not the user's own ledger
    params = StdioServerParameters(command=command, args=entry["args"], env=env)

    async def main() -> None:
        with (tmp_path / "err").open("w") as err:
            async with stdio_client(params, errlog=err) as (r, w), ClientSession(
                    r, w, client_info=types.Implementation(name="claude-code", version="2")) as s:
                with anyio.fail_after(WAIT):
                    init = await s.initialize()
                assert init.instructions and "read-only agent portfolio" in init.instructions
                assert {t.name for t in (await s.list_tools()).tools} == READ_TOOLS | MARKET_TOOLS
                result = await s.call_tool("search_instruments", {"text": "apple"})
                assert isinstance(result, types.CallToolResult) and not result.is_error
                assert result.structured_content is not None
                assert result.structured_content["instruments"][0]["symbol"] == "AAPL"

    anyio.run(main)
    assert "serving the MCP client mcp:claude-code" in (tmp_path / "err").read_text()
