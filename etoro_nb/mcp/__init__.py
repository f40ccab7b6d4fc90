"""An MCP server bound to one delegated token: AI editors and agents trade through the
owner's risk policy (``etoro_nb.agent.AgentSession``) and every call lands in the ledger.

``etoro-nb mcp serve --token-env NAME`` (``cli``, ``launch``) reads the token from that
environment variable (never an argument) and serves the tools its scopes allow (``tools``,
with their JSON schemas in ``schemas``), the policy, the token and the recent activity as
resources (``resources``), over stdio or streamable HTTP on 127.0.0.1 (``server``). Each
MCP client gets its own ``Backend`` (``backend``: its session, run off the event loop),
whose requests the ledger records with the application ``"mcp:<client name>"``. Every
failure is an MCP tool error (``failures``). ``driver.StdioEditor`` drives the server
from a notebook as an editor would. The ``mcp`` SDK is imported only here, never by
``import etoro_nb``. See ``docs/mcp.md``.
"""
