"""polars loaders: portfolios, tokens, scope grants, usage, lifecycle (and unfinished
changes), least privilege, trades, positions, per-portfolio accounting, and the events of
risk boundaries (``policy_events``).

Every loader has keyword-only options and a declared schema (``*_SCHEMA`` below):
datetimes are ``Datetime("us", "UTC")``, scopes and whitelists ``List(String)``. Loaders
that take a client call the API (``frames.api``); loaders that take a ledger read it (live
SQLite rows and sealed Parquet segments as one lazy frame) and never touch the network
(``frames.ledger``, which imports no HTTP client: ``import etoro_nb.frames.ledger`` is
all an audit of a ledger file needs). ``replay`` turns lifecycle events into token states.

Examples
--------
>>> import etoro_nb as enb
>>> client = enb.connect()                                   # doctest: +SKIP
>>> enb.frames.tokens(client).filter(status="expiring")      # doctest: +SKIP
>>> enb.frames.usage(client.ledger, since=datetime(2026, 3, 1, tzinfo=UTC))  # doctest: +SKIP
"""

from etoro_nb.frames.activity import ACTIVITY_SCHEMA, activity
from etoro_nb.frames.api import (
    accounting,
    portfolios,
    positions,
    scope_grants,
    tokens,
    trades,
    value_snapshot,
)
from etoro_nb.frames.chains import CHAINS_SCHEMA, delegation_chains
from etoro_nb.frames.common import (
    ACCOUNTING_SCHEMA,
    GRANTS_SCHEMA,
    LEAST_PRIVILEGE_SCHEMA,
    LIFECYCLE_SCHEMA,
    POLICY_EVENTS_SCHEMA,
    PORTFOLIOS_SCHEMA,
    POSITIONS_SCHEMA,
    SCOPES,
    TOKENS_SCHEMA,
    TRADES_SCHEMA,
    USAGE_SCHEMA,
    UTC_US,
    VALUE_HISTORY_SCHEMA,
    frame_of,
    grants,
    token_status,
)
from etoro_nb.frames.ledger import (
    EventSource,
    grants_from_ledger,
    least_privilege,
    lifecycle,
    policy_events,
    requests,
    tokens_from_ledger,
    unfinished_changes,
    usage,
)

__all__ = ["ACCOUNTING_SCHEMA", "GRANTS_SCHEMA", "LEAST_PRIVILEGE_SCHEMA", "LIFECYCLE_SCHEMA",
           "POLICY_EVENTS_SCHEMA", "PORTFOLIOS_SCHEMA", "POSITIONS_SCHEMA", "SCOPES", "TOKENS_SCHEMA",
           "TRADES_SCHEMA", "USAGE_SCHEMA", "UTC_US", "VALUE_HISTORY_SCHEMA", "accounting", "frame_of",
           "grants", "grants_from_ledger", "least_privilege", "lifecycle", "policy_events", "portfolios",
           "positions", "requests", "scope_grants", "token_status", "tokens", "tokens_from_ledger", "trades",
           "unfinished_changes", "usage", "value_snapshot"]
__all__ += ["ACTIVITY_SCHEMA", "CHAINS_SCHEMA", "EventSource", "activity", "delegation_chains"]
