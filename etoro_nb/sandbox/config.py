"""Settings of a sandbox instance: credentials, money, quota, clock and faults.

Every default is documented in ``docs/sandbox.md``; the CLI flags map one to one onto
these fields.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime

DEFAULT_API_KEY = "sandbox-api-key"
DEFAULT_USER_KEY = "sandbox-user-key"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024  # 1 MiB: the largest contract body is well under 10 KiB


@dataclass(frozen=True)
class Faults:
    """Switchable fault injection, so clients' retries can be tested for real.

    ``fail_rate`` answers that share of requests 503 before any effect;
    ``drop_after_commit_rate`` lets that share of mutating requests take effect and
    then drops the connection; ``partial_create_rate`` answers that share of portfolio
    creations 207 (portfolio made, token not); ``latency_ms`` delays every answer.
    """

    latency_ms: float = 0.0
    fail_rate: float = 0.0
    drop_after_commit_rate: float = 0.0
    partial_create_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")
        for name in ("fail_rate", "drop_after_commit_rate", "partial_create_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")


@dataclass(frozen=True)
class SandboxConfig:
    """Everything that makes one sandbox differ from another.

    ``db`` is a SQLite path or ``":memory:"``. ``clock`` fixes the simulated clock's
    start (it then moves only when advanced); ``None`` follows the wall clock.
    ``trust_proxy`` takes the client address (which IP whitelists check) from
    ``X-Forwarded-For`` when a proxy on the same machine forwards the request; off, the
    header is ignored. ``max_body_bytes`` bounds a request body (413 beyond it).
    """

    db: str = ":memory:"
    seed: int = 42
    clock: datetime | None = None
    api_key: str = DEFAULT_API_KEY
    user_key: str = DEFAULT_USER_KEY
    username: str = "sandbox.owner"
    owner_real_balance: float = 100_000.0
    owner_demo_balance: float = 100_000.0
    min_investment: float = 200.0
    virtual_balance: float = 10_000.0
    max_tokens_per_portfolio: int = 10
    read_limit: int = 60
    write_limit: int = 20
    limit_window: float = 60.0
    faults: Faults = field(default_factory=Faults)
    trust_proxy: bool = False
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    def __post_init__(self) -> None:
        if not self.api_key or not self.user_key:
            raise ValueError("api_key and user_key must be non-empty")
        if self.api_key == self.user_key:
            raise ValueError("api_key and user_key must differ")
        for name in ("min_investment", "virtual_balance", "limit_window"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        for name in ("read_limit", "write_limit", "max_tokens_per_portfolio", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.clock is not None and self.clock.tzinfo is None:
            raise ValueError("clock must be timezone-aware (UTC)")

    def replace(self, **changes: object) -> SandboxConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
