"""Where a client's settings come from: arguments, then environment, then a .env file.

Keys are held as ``pydantic.SecretStr`` so they never print. With no keys anywhere, the
client talks to the embedded sandbox. Real trading on a live connection needs an explicit
opt-in: ``allow_real=True`` or ``ETORO_NB_ALLOW_REAL=1``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from dotenv import dotenv_values
from pydantic import SecretStr

from etoro_nb.errors import ConfigurationError

ENV_API_KEY = "ETORO_API_KEY"
ENV_USER_KEY = "ETORO_USER_KEY"
ENV_BASE_URL = "ETORO_BASE_URL"
ENV_ALLOW_REAL = "ETORO_NB_ALLOW_REAL"
ENV_LEDGER = "ETORO_NB_LEDGER"
LIVE_BASE_URL = "https://public-api.etoro.com"

Environment = Literal["sandbox", "live"]
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Credentials:
    """An application key, a user key and where to send them."""

    api_key: SecretStr
    user_key: SecretStr
    base_url: str


def _lookup(name: str, env: Mapping[str, str], dotenv: Mapping[str, str | None]) -> str | None:
    value = env.get(name)
    if value:
        return value
    value = dotenv.get(name)
    return value or None


def resolve_credentials(
    api_key: str | None = None, user_key: str | None = None, base_url: str | None = None,
    *, env: Mapping[str, str] | None = None, env_file: str | Path | None = ".env",
) -> Credentials | None:
    """Live credentials from arguments, environment or .env; ``None`` means "use the sandbox".

    Each key is taken from the first place that has it. Having only one of the two keys is
    an error that says both ways to supply the other.
    """
    env = os.environ if env is None else env
    dotenv: Mapping[str, str | None] = {}
    if env_file is not None and Path(env_file).is_file():
        dotenv = dotenv_values(env_file)
    api = api_key or _lookup(ENV_API_KEY, env, dotenv)
    user = user_key or _lookup(ENV_USER_KEY, env, dotenv)
    url = base_url or _lookup(ENV_BASE_URL, env, dotenv) or LIVE_BASE_URL
    if api is None and user is None:
        return None
    if api is None or user is None:
        missing, name = ("api_key", ENV_API_KEY) if api is None else ("user_key", ENV_USER_KEY)
        raise ConfigurationError(
            f"{missing} is missing while the other key is set: pass {missing}=... to "
            f"connect(), or set {name} in the environment or in a .env file"
        )
    return Credentials(SecretStr(api), SecretStr(user), url.rstrip("/"))


def real_trading_allowed(
    allow_real: bool | None, *, env: Mapping[str, str] | None = None
) -> bool:
    """The explicit opt-in for the real trading endpoints on a live connection."""
    if allow_real is not None:
        return allow_real
    env = os.environ if env is None else env
    return env.get(ENV_ALLOW_REAL, "").strip().lower() in _TRUE


def ledger_path(chosen: str | Path | None, environment: Environment, *,
                env: Mapping[str, str] | None = None) -> Path:
    """Where the ledger lives: the argument, else ``ETORO_NB_LEDGER``, else a per-user
    default kept apart for sandbox and live (``~/.etoro-nb/ledger-<environment>.sqlite``)."""
    env = os.environ if env is None else env
    if chosen is not None:
        return Path(chosen).expanduser()
    if env.get(ENV_LEDGER):
        return Path(env[ENV_LEDGER]).expanduser()
    return Path.home() / ".etoro-nb" / f"ledger-{environment}.sqlite"
