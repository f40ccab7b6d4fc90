"""Starting ``etoro-nb mcp serve``: where the API is, the token from its environment
variable, the ledger, the policy, one check of the token, and the instructions the MCP
client is given. Nothing here prints to stdout (over stdio it is the protocol's channel):
what the operator should read goes to stderr through logging.

With ``--sandbox`` the embedded sandbox starts here. A fresh sandbox knows no token, so an
empty token variable means: mint a read-only agent portfolio with the sandbox owner's keys
(the instructions say so); a token in the variable needs ``--sandbox-db`` (a sandbox state
file where it was minted), else the start is refused.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from etoro_nb.agent.policy import RiskPolicy
from etoro_nb.client_config import ClientConfig
from etoro_nb.config import ENV_LEDGER, ledger_path, real_trading_allowed
from etoro_nb.errors import AuthenticationError, ConfigurationError, EtoroError
from etoro_nb.ledger import Ledger
from etoro_nb.ledger.pg_connect import is_postgres
from etoro_nb.mcp.backend import Account
from etoro_nb.mcp.server import Settings
from etoro_nb.ratelimit import Quota, RateLimiter
from etoro_nb.scopes import scope_for

if TYPE_CHECKING:
    from etoro_nb.client import EtoroClient
    from etoro_nb.sandbox import SandboxServer

log = logging.getLogger("etoro_nb.mcp")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_ENV_NAME = 64  # shorter than any token, so a pasted token is never taken for a name
API_KEY_ENV = "ETORO_API_KEY"
MINTED_INVESTMENT_USD = 200.0


@dataclass
class Launch:
    """Everything a running server holds; ``close()`` lets it all go."""

    settings: Settings
    ledger: Ledger
    sandbox: SandboxServer | None = None

    def close(self) -> None:
        self.ledger.close()
        if self.sandbox is not None:
            self.sandbox.stop()


def read_token(name: str, env: dict[str, str] | None = None) -> SecretStr | None:
    """The token in the environment variable ``name`` (None when unset or empty)."""
    if not ENV_NAME.match(name) or len(name) > MAX_ENV_NAME:
        # Not echoed: what was given in place of a name may be the token itself.
        raise ConfigurationError(f"--token-env takes the NAME of an environment variable "
                                 f"(letters, digits, _; at most {MAX_ENV_NAME} characters), not "
                                 "the token: what was given is not shown")
    value = (os.environ if env is None else env).get(name, "").strip()
    return SecretStr(value) if value else None


def read_policy(path: str | None) -> RiskPolicy | None:
    if path is None:
        return None
    try:
        limits = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"--policy {path}: cannot read it as JSON ({exc})") from None
    if not isinstance(limits, dict):
        raise ConfigurationError(f"--policy {path}: a JSON object of RiskPolicy fields")
    return RiskPolicy.from_limits(limits)


def read_quota(text: str | None) -> Quota:
    """``READS/WRITES`` per 60 s (default: eToro's documented 60 reads and 20 writes)."""
    if text is None:
        return Quota()
    try:
        reads, writes = (int(part) for part in text.split("/"))
        return Quota(reads, writes)
    except ValueError:
        raise ConfigurationError(f"--quota takes READS/WRITES per 60 s, whole numbers of at "
                                 f"least 1, such as 60/20; got {text!r}") from None


def launch(*, token_env: str, account: Account, policy_file: str | None, ledger: str | None,
           base_url: str | None, sandbox: bool, sandbox_db: str | None, portfolio: str | None,
           quota: str | None = None, poll_seconds: float = 1.0) -> Launch:
    """Check everything, start what is needed, and say what the server will act as."""
    token = read_token(token_env)
    policy = read_policy(policy_file)
    limiter = RateLimiter(read_quota(quota))  # one quota for the token, whatever the clients
    if sandbox and base_url:
        raise ConfigurationError("give --base-url or --sandbox, not both")
    if not sandbox and not base_url:
        raise ConfigurationError("give --base-url URL (eToro, or a sandbox you started) or "
                                 "--sandbox (an embedded sandbox, simulated money)")
    if sandbox and token is not None and sandbox_db is None:
        raise ConfigurationError(
            f"--sandbox starts a fresh sandbox, which does not know the token in {token_env}: "
            f"unset {token_env} to have a read-only agent portfolio minted, or give --sandbox-db "
            "FILE (the sandbox state where the token was minted)")
    server = _start_sandbox(sandbox_db) if sandbox else None
    try:
        return _connect(token, token_env, account, policy, ledger, base_url, server, portfolio,
                        limiter, poll_seconds)
    except BaseException:
        if server is not None:
            server.stop()
        raise


def _start_sandbox(db: str | None) -> SandboxServer:
    from etoro_nb.sandbox import SandboxConfig, start

    server = start(SandboxConfig(db=db or ":memory:"))
    log.info("started the embedded SANDBOX (simulated money) at %s", server.base_url)
    return server


def _connect(token: SecretStr | None, token_env: str, account: Account,
             policy: RiskPolicy | None, ledger_arg: str | None, base_url: str | None,
             server: SandboxServer | None, portfolio: str | None, limiter: RateLimiter,
             poll_seconds: float) -> Launch:
    from etoro_nb.client import EtoroClient, _detect

    url = server.base_url if server is not None else str(base_url).rstrip("/")
    environment = "sandbox" if server is not None else _detect(url)
    api_key = _api_key(server, environment)
    if is_postgres(str(ledger_arg or os.environ.get(ENV_LEDGER, ""))):
        # Its owner watch reads a SQLite file; taken as a path, the URL would become a file
        # named after it, password included.
        raise ConfigurationError("mcp serve records into a SQLite ledger file; a shared "
                                 "PostgreSQL ledger is not supported here yet")
    ledger = Ledger(ledger_path(ledger_arg, environment))
    try:
        base = ClientConfig(base_url=url, api_key=api_key, user_key=SecretStr("pending"),
                            environment=environment, principal="agent",
                            allow_real=environment == "sandbox" or real_trading_allowed(None),
                            ledger=ledger, clock=server.sandbox.clock.now if server else None,
                            limiter=limiter)
        minted = None
        if token is None:
            if server is None:
                raise ConfigurationError(f"the environment variable {token_env} is unset or "
                                         "empty: put the agent portfolio's token in it")
            token, minted = _mint(server, ledger, account)

        def make_agent(application: str) -> EtoroClient:
            from dataclasses import replace

            return EtoroClient(replace(base, user_key=token, application=application))

        scopes = _probe(make_agent, token_env)
        _known_portfolio(ledger, token, portfolio, token_env)
        if account == "real" and environment == "live" and not base.allow_real:
            raise ConfigurationError("--account real on live moves real money: opt in with "
                                     "ETORO_NB_ALLOW_REAL=1 in the server's environment")
        return Launch(Settings(make_agent, account, policy, portfolio,
                               _instructions(environment, url, account, scopes, minted, policy,
                                             embedded=server is not None),
                               poll_seconds), ledger, server)
    except BaseException:
        ledger.close()
        raise


def _api_key(server: SandboxServer | None, environment: str) -> SecretStr:
    if server is not None:
        return SecretStr(server.credentials.api_key)
    value = os.environ.get(API_KEY_ENV, "").strip()
    if value:
        return SecretStr(value)
    if environment == "sandbox":
        from etoro_nb.sandbox.config import DEFAULT_API_KEY

        log.info("%s is unset: using the sandbox's default application key", API_KEY_ENV)
        return SecretStr(DEFAULT_API_KEY)
    raise ConfigurationError(f"set {API_KEY_ENV} to your application's eToro API key (the "
                             "x-api-key that goes with the delegated token)")


def _mint(server: SandboxServer, ledger: Ledger, account: Account) -> tuple[SecretStr, str]:
    """A read-only agent portfolio on the sandbox, minted with its owner's keys (recorded
    in the ledger like any delegation); returns its token and a sentence saying so."""
    from etoro_nb.client import EtoroClient

    creds = server.credentials
    scope = scope_for(account, "read")
    with EtoroClient(base_url=creds.base_url, api_key=creds.api_key, user_key=creds.user_key,
                     environment="sandbox", allow_real=True, ledger=ledger,
                     clock=server.sandbox.clock.now, application="mcp:serve --sandbox") as owner:
        name = f"mcp{secrets.token_hex(3)}"
        bot = owner.agent_portfolios.create(name, MINTED_INVESTMENT_USD, scopes=[scope],
                                            token_name="mcp-read-only")
    said = (f"No token was given, so a read-only agent portfolio '{name}' (id {bot.portfolio.id}) "
            f"was minted on the sandbox with its owner's keys, with the scope {scope} only.")
    log.info(said)
    return SecretStr(bot.token.secret.get_secret_value()), said


def _probe(make_agent: Any, token_env: str) -> tuple[str, ...]:
    """One ``/api/v1/me`` with the token (recorded as the application ``mcp``): the start
    fails now, plainly, if the server refuses it."""
    agent = make_agent("mcp")
    try:
        return tuple(agent.me().scopes)
    except AuthenticationError as exc:
        raise ConfigurationError(
            f"the server refused the token in {token_env} ({exc.status} "
            f"{exc.error_code or 'no errorCode'}, request id {exc.request_id}): it was revoked, "
            "has expired or was mistyped") from None
    except EtoroError as exc:
        raise ConfigurationError(f"could not check the token in {token_env}: {exc}") from None
    finally:
        agent.close()


def _known_portfolio(ledger: Ledger, token: SecretStr, portfolio: str | None,
                     token_env: str) -> None:
    """The owner's controls are found by the token's portfolio: the ledger must know it
    (the token was minted through it), or ``--portfolio`` must say it."""
    if portfolio is None and ledger.token_for(ledger.fingerprint(token.get_secret_value())) is None:
        raise ConfigurationError(
            f"the ledger at {ledger.path} did not see the token in {token_env} minted, so the "
            "owner's policy and pause could not reach this server: use the owner's ledger "
            "(--ledger PATH), or give --portfolio ID")


def _instructions(environment: str, url: str, account: Account, scopes: tuple[str, ...],
                  minted: str | None, policy: RiskPolicy | None, embedded: bool) -> str:
    if environment == "live":
        where = f"LIVE eToro at {url}"
    else:
        where = ("the embedded etoro-nb SANDBOX" if embedded else f"the etoro-nb SANDBOX at {url}")
        where += " (simulated money, nothing real)"
    lines = [
        f"etoro-nb acts for ONE eToro agent portfolio with its delegated token, on {where}, "
        f"{account} account. Scopes at start: {', '.join(scopes) or 'none'}.",
        "The tools follow the token's scopes: market data for any valid token; the account "
        "(portfolio, P&L, trade history) with its read scope; orders, closes and cancels with "
        "its write scope. The list changes (tools/list_changed) when the owner narrows, widens "
        "or revokes the token.",
        "Every order is checked against the owner's risk policy first: a refusal comes back "
        "as a tool error with the rule, the limit and the request id, and sends nothing. "
        "Closes and cancels never need room. When the owner pauses the agent, orders are "
        "refused until they resume; when the owner revokes the token, every tool fails.",
        "Every call is recorded in the owner's ledger under this client's name. Resources: "
        "etoro-nb://policy, etoro-nb://token, etoro-nb://activity.",
    ]
    if policy is not None:
        lines.append(f"This server adds its own policy: {json.dumps(policy.limits())}.")
    if minted is not None:
        lines.append(minted)
    return "\n".join(lines)
