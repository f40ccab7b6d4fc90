"""The MCP server: what serving a portfolio read to an MCP client costs, against the
same read made through ``AgentSession`` directly.

One sandbox runs in another process (``etoro-nb mcp serve`` talks to it over a socket, as
the session does), with a quota no run reaches; both sides record into one ledger file.
The same read-only agent portfolio is read ``--calls`` times each way, in alternating
rounds so drift affects both alike: ``session.portfolio()`` in this process, and the
``get_portfolio`` tool through ``etoro-nb mcp serve`` over stdio, driven by the MCP SDK's
client (initialised and warmed up before timing). Prints what each side includes and its
time per call, the ratio (target: at most 1.5x), the time added per call, and beside it
the fixed cost of a call through the server, timed in the same rounds: the SDK's bare
round trip (ping) and a tools/call the server refuses in its worker thread (no API
request); and the server process's resident memory after the run.

    .venv/bin/python bench/mcp.py [--calls 200] [--rounds 4]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

# Run as ``python bench/mcp.py``, this file's folder comes first on the path, and this file
# would stand for the MCP SDK's ``mcp`` package: take the folder off before importing it.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import anyio  # noqa: E402
import mcp_types as types  # noqa: E402
from mcp.client.session import ClientSession  # noqa: E402
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402

sys.path.append(str(HERE))  # the SDK is imported: bench/'s helpers (_scratch) may be found now
from _scratch import scratch_dir  # noqa: E402

from etoro_nb.agent.session import AgentSession  # noqa: E402
from etoro_nb.client import EtoroClient  # noqa: E402
from etoro_nb.ledger import Ledger  # noqa: E402
from etoro_nb.ratelimit import Quota  # noqa: E402
from etoro_nb.scopes import DEMO_READ  # noqa: E402

# The sandbox in another process, started as bench/policy.py starts it.
_spec = importlib.util.spec_from_file_location("bench_policy", HERE / "policy.py")
assert _spec is not None and _spec.loader is not None
policy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(policy)
API_KEY, USER_KEY, serve = policy.API_KEY, policy.USER_KEY, policy.serve
TOKEN_ENV = "ETORO_NB_BENCH_TOKEN"
UNLIMITED = 10**9


def server_rss_mib() -> float | None:
    """Resident memory of this process's ``mcp serve`` child (Linux /proc), in MiB."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            if int(stat[1]) == me and b"mcp serve" in cmdline:
                for line in (entry / "status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except (OSError, IndexError, ValueError):
            continue
    return None


SIDES = ["direct", "served", "ping", "refused"]


def make_sides(session: AgentSession, mcp: ClientSession) -> dict[str, Callable[[], Awaitable[None]]]:
    """One call of each side; the last two time the fixed cost of a call through the server."""
    async def direct() -> None:
        session.portfolio()

    async def served() -> None:
        result = await mcp.call_tool("get_portfolio", {})
        assert isinstance(result, types.CallToolResult)
        assert not result.is_error, result.content

    async def ping() -> None:
        await mcp.send_ping()

    async def refused() -> None:  # a read-only token: refused in the backend's thread
        result = await mcp.call_tool("open_position", {"instrument": 1001, "amount": 10})
        assert isinstance(result, types.CallToolResult) and result.is_error
        assert result.structured_content is not None
        assert result.structured_content["error"]["code"] == "ScopeMissing", result.content

    return {"direct": direct, "served": served, "ping": ping, "refused": refused}


def report(totals: dict[str, float], calls: int, rss: float | None) -> None:
    ms = {name: total / calls * 1000 for name, total in totals.items()}
    ratio = totals["served"] / totals["direct"]
    print(f"get_portfolio x {calls}, in alternating rounds:")
    print(f"  directly  {ms['direct']:.2f} ms/call: AgentSession.portfolio() in this process (one "
          "GET to the sandbox, its intent and outcome recorded in the ledger)")
    print(f"  served    {ms['served']:.2f} ms/call: the MCP SDK's ClientSession.call_tool over stdio "
          "to etoro-nb mcp serve (a process of its own): there the SDK's dispatch, a look at the "
          "ledger for the owner's changes, the same read (recorded), the result as text and "
          "structured content; here the SDK checks it against the tool's output schema")
    print(f"ratio {ratio:.2f}x (target <= 1.5x): {'OK' if ratio <= 1.5 else 'OVER TARGET'}; "
          f"added per call {ms['served'] - ms['direct']:.2f} ms")
    print(f"the fixed cost of a call through the server, with no API request: the SDK's bare "
          f"stdio round trip (ping) {ms['ping']:.2f} ms; a tools/call refused in the server's "
          f"worker thread (dispatch, thread, ledger look, tool error) {ms['refused']:.2f} ms: "
          f"with it the ratio cannot go below {(ms['direct'] + ms['refused']) / ms['direct']:.2f}x "
          f"for this read")
    print(f"server memory after the run: {rss:.1f} MiB resident" if rss is not None
          else "server memory: not measurable here (needs Linux /proc)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    per_round = args.calls // args.rounds
    process, base = serve()
    folder = scratch_dir("bench-mcp-")
    ledger = Ledger(folder / "ledger.sqlite")
    owner = EtoroClient(base_url=base, api_key=API_KEY, user_key=USER_KEY, environment="sandbox",
                        allow_real=True, ledger=ledger, quota=Quota(UNLIMITED, UNLIMITED))
    try:
        bot = owner.agent_portfolios.create("benchmcp", 500, scopes=[DEMO_READ])
        session = AgentSession(owner.as_agent(bot.token), account="demo")
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "etoro_nb.cli", "mcp", "serve", "--token-env", TOKEN_ENV,
                  "--base-url", base, "--ledger", str(ledger.path),
                  "--quota", f"{UNLIMITED}/{UNLIMITED}"],  # as the direct side: no wait
            env={TOKEN_ENV: bot.token.secret.get_secret_value(), "ETORO_API_KEY": API_KEY})
        totals = dict.fromkeys(SIDES, 0.0)
        rss: float | None = None

        async def run() -> None:
            nonlocal rss
            with (folder / "server.stderr").open("w") as err:
                async with stdio_client(params, errlog=err) as (r, w), ClientSession(
                        r, w, client_info=types.Implementation(name="bench", version="1")) as mcp:
                    await mcp.initialize()
                    await mcp.list_tools()
                    sides = make_sides(session, mcp)
                    for side in sides.values():  # warm: the client's session, the validator
                        await side()
                    for round_ in range(args.rounds):  # each side first in turn: drift hits all
                        for name in SIDES[round_ % 4:] + SIDES[:round_ % 4]:
                            started = time.perf_counter()
                            for _ in range(per_round):
                                await sides[name]()
                            totals[name] += time.perf_counter() - started
                    rss = server_rss_mib()

        anyio.run(run)
        report(totals, per_round * args.rounds, rss)
    finally:
        owner.close()
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
