"""``ClientConfig``: every setting of a ``EtoroClient`` or ``AsyncEtoroClient``, frozen and typed.

``EtoroClient(base_url=..., api_key=..., user_key=..., environment=...)`` builds one from its
keywords (``ClientSettings`` types them); ``connect()`` and ``as_agent()`` build one and
pass it as ``EtoroClient(config)``. Keys are checked and held as ``SecretStr`` here, and a
``"sandbox"`` environment is refused for a URL not on this machine, so a config that
exists is valid.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Literal, TypedDict

import httpx
from pydantic import SecretStr

from etoro_nb._base import DEFAULT_TIMEOUT, RetryPolicy
from etoro_nb.config import Environment
from etoro_nb.errors import ConfigurationError
from etoro_nb.models import MintedToken
from etoro_nb.ratelimit import Quota, RateLimiter

if TYPE_CHECKING:
    from etoro_nb.ledger import Ledger
    from etoro_nb.sandbox.server import SandboxServer

Secret = str | SecretStr | MintedToken
Principal = Literal["owner", "agent"]
LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


def reveal(value: Secret, name: str = "user_key") -> str:
    """The plain key, checked: printable ASCII with no spaces (as HTTP headers need)."""
    if isinstance(value, MintedToken):
        key = value.secret.get_secret_value()
    elif isinstance(value, SecretStr):
        key = value.get_secret_value()
    else:
        key = value
    if not isinstance(key, str) or not key or not key.isascii() or not key.isprintable() \
            or any(c.isspace() for c in key):
        # Never echo the value: it is a secret.
        raise ConfigurationError(f"{name} must be non-empty printable ASCII with no spaces")
    return key


def is_loopback(base_url: str) -> bool:
    """Whether the URL's host is this machine: ``localhost`` or a loopback address
    (127.0.0.0/8, ``::1``, or 127.x mapped into IPv6)."""
    try:
        host = httpx.URL(base_url).host.lower()
    except httpx.InvalidURL:
        return False
    if host in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # any other name may resolve anywhere
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


@dataclass(frozen=True, kw_only=True)
class ClientConfig:
    """A client's settings. ``api_key`` and ``user_key`` may be given as ``str``,
    ``SecretStr`` or a ``MintedToken``; they are kept as ``SecretStr`` (never in the repr).

    ``sandbox`` is an embedded sandbox the client owns (stopped on close; its clock stamps
    the ledger); ``limiter`` and ``retry`` are shared by ``as_agent`` clients; ``clock``
    stamps ledger rows (default: the sandbox's clock, else UTC now); ``simulated_time``
    skips real waits; ``owns_ledger`` closes ``ledger`` with the client. ``application``
    names what makes the requests (the MCP server sets ``"mcp:<client name>"``): it is
    recorded on every request row of the ledger (``frames.requests``' ``application``)."""

    base_url: str
    api_key: SecretStr = field(repr=False)
    user_key: SecretStr = field(repr=False)
    environment: Environment
    allow_real: bool = False
    principal: Principal = "owner"
    quota: Quota | None = None
    limiter: RateLimiter | None = None
    retry: RetryPolicy | None = None
    timeout: httpx.Timeout = field(default_factory=lambda: DEFAULT_TIMEOUT)
    sandbox: SandboxServer | None = None
    ledger: Ledger | None = None
    clock: Callable[[], datetime] | None = None
    simulated_time: bool = False
    owns_ledger: bool = False
    application: str | None = None

    def __post_init__(self) -> None:
        # Typed as SecretStr, but accepted as any Secret: normalised (and checked) here.
        object.__setattr__(self, "api_key", SecretStr(reveal(self.api_key, "api_key")))
        object.__setattr__(self, "user_key", SecretStr(reveal(self.user_key)))
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        check_application(self.application)
        if self.environment not in ("sandbox", "live"):
            raise ConfigurationError(f"environment is 'sandbox' or 'live', got {self.environment!r}")
        if self.environment == "sandbox" and self.sandbox is None and not is_loopback(self.base_url):
            # Saying "sandbox" switches off the real-money guard: only for this machine.
            raise ConfigurationError(
                f"environment='sandbox' is only for a sandbox on this machine (a loopback "
                f"base_url); {httpx.URL(self.base_url).host or self.base_url!r} is treated as live")


class ClientSettings(TypedDict, total=False):
    """``ClientConfig``'s fields as ``EtoroClient(...)`` keywords (a test keeps the two equal).
    ``base_url``, ``api_key``, ``user_key`` and ``environment`` are required unless a
    ``ClientConfig`` is given instead (``ClientConfig`` says so by a ``TypeError``)."""

    base_url: str
    api_key: Secret
    user_key: Secret
    environment: Environment
    allow_real: bool
    principal: Principal
    quota: Quota | None
    limiter: RateLimiter | None
    retry: RetryPolicy | None
    timeout: httpx.Timeout
    sandbox: SandboxServer | None
    ledger: Ledger | None
    clock: Callable[[], datetime] | None
    simulated_time: bool
    owns_ledger: bool
    application: str | None


APPLICATION_MAX = 200


def check_application(application: object) -> None:
    """An application name is a non-empty line of printable text (it lands in the ledger)."""
    if application is None:
        return
    if (not isinstance(application, str) or not application.strip()
            or len(application) > APPLICATION_MAX or not application.isprintable()):
        raise ConfigurationError(f"application is a non-empty line of printable text of at "
                                 f"most {APPLICATION_MAX} characters, or None; got "
                                 f"{type(application).__name__} of length "
                                 f"{len(application) if isinstance(application, str) else '-'}")


def config_of(config: ClientConfig | None, settings: ClientSettings) -> ClientConfig:
    """The config a client is made with: ``config``, or one built from the keywords
    (``ClientSettings``; an unknown keyword is a ``TypeError`` naming it)."""
    if config is None:
        return ClientConfig(**settings)  # type: ignore[arg-type]  # keys: any Secret, normalised
    if settings:
        raise ConfigurationError(f"give a ClientConfig or keywords, not both "
                                 f"({', '.join(sorted(settings))})")
    return config


CONFIG_FIELDS = frozenset(f.name for f in fields(ClientConfig))
