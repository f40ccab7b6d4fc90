"""``etoro-nb mcp serve``: the command's options and its run (see ``launch``)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]


def add_parser(commands: Commands) -> None:
    mcp = commands.add_parser("mcp", help="an MCP server bound to one delegated token")
    mcp_cmds = mcp.add_subparsers(dest="mcp_command", required=True)
    serve = mcp_cmds.add_parser(
        "serve", help="serve one agent portfolio's token to an MCP client (stdio by default)",
        description="Serve the tools a delegated token's scopes allow to an MCP client (an AI "
                    "editor or agent), trading through the owner's risk policy and recording "
                    "every call in the ledger. The token is read from an environment variable, "
                    "never from an argument.")
    serve.add_argument("--token-env", required=True, metavar="NAME",
                       help="the environment variable holding the delegated token")
    serve.add_argument("--policy", metavar="FILE",
                       help="a JSON RiskPolicy this server adds to the owner's")
    serve.add_argument("--ledger", metavar="PATH",
                       help="the ledger (default: ETORO_NB_LEDGER, else the per-user one); "
                            "use the owner's, so their pauses and policies reach the server")
    serve.add_argument("--base-url", metavar="URL", help="eToro's API, or a sandbox's URL")
    serve.add_argument("--account", choices=("demo", "real"), default="demo")
    serve.add_argument("--sandbox", action="store_true",
                       help="start the embedded sandbox (simulated money); with no token in "
                            "the variable, a read-only agent portfolio is minted on it")
    serve.add_argument("--sandbox-db", metavar="FILE",
                       help="with --sandbox: the sandbox state file to serve")
    serve.add_argument("--portfolio", metavar="ID",
                       help="the token's agent portfolio, when the ledger did not see it minted")
    serve.add_argument("--quota", metavar="READS/WRITES",
                       help="requests per 60 s this server keeps the token to, for all its "
                            "clients together (default 60/20, eToro's documented quota)")
    serve.add_argument("--http", type=int, metavar="PORT",
                       help="serve streamable HTTP on 127.0.0.1:PORT instead of stdio")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="etoro-nb mcp: %(levelname)s %(message)s")
    for noisy in ("httpx", "httpcore", "mcp", "uvicorn"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        import anyio

        from etoro_nb.mcp import server
        from etoro_nb.mcp.launch import launch
    except ImportError as exc:  # the SDK is an extra
        print(f"etoro-nb mcp: the MCP SDK is missing ({exc.name}): pip install 'etoro-nb[mcp]'",
              file=sys.stderr)
        return 2
    from etoro_nb.errors import EtoroError

    try:
        started = launch(token_env=args.token_env, account=args.account, policy_file=args.policy,
                         ledger=args.ledger, base_url=args.base_url, sandbox=args.sandbox,
                         sandbox_db=args.sandbox_db, portfolio=args.portfolio,
                         quota=args.quota)
    except EtoroError as exc:
        print(f"etoro-nb mcp: {exc}", file=sys.stderr)
        return 2
    service = server.Service(started.settings)
    try:
        if args.http is not None:
            logging.getLogger("etoro_nb.mcp").info("serving streamable HTTP at "
                                                   "http://127.0.0.1:%d/mcp", args.http)
            anyio.run(server.serve_http, service, args.http)
        else:
            anyio.run(server.serve_stdio, service)
    except KeyboardInterrupt:
        pass
    finally:
        started.close()
    return 0
