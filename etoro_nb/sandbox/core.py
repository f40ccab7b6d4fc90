"""One sandbox: its settings, clock, state, market, quota and fault switches together."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from etoro_nb.sandbox.clock import Clock
from etoro_nb.sandbox.config import Faults, SandboxConfig
from etoro_nb.sandbox.delegation import Delegation
from etoro_nb.sandbox.market import PriceSimulator
from etoro_nb.sandbox.quota import RollingQuota
from etoro_nb.sandbox.store import Store
from etoro_nb.sandbox.trading import Trading


@dataclass(frozen=True)
class Credentials:
    """What a client needs to talk to a sandbox as its owner."""

    base_url: str
    api_key: str
    user_key: str

    def __repr__(self) -> str:
        return f"Credentials(base_url={self.base_url!r}, api_key=***, user_key=***)"


class Sandbox:
    """The services behind the ASGI app; the app is a thin HTTP layer over these."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.clock = Clock(self.config.clock)
        self.store = Store(self.config.db, self.config.seed)
        self.prices = PriceSimulator(self.config.seed)
        self.delegation = Delegation(self.store, self.config)
        self.trading = Trading(self.store, self.delegation, self.prices)
        self.quota = RollingQuota(
            self.config.read_limit, self.config.write_limit, self.config.limit_window
        )
        self._faults = self.config.faults
        self._fault_rng = random.Random(f"faults:{self.config.seed}")
        self._fault_lock = threading.Lock()
        with self.store.transaction():
            self.delegation.seed_owner(self.clock.now())

    @property
    def faults(self) -> Faults:
        return self._faults

    def set_faults(self, faults: Faults) -> None:
        """Switch fault injection at run time (also reachable over HTTP)."""
        self._faults = faults

    def roll(self, rate: float) -> bool:
        """True with probability ``rate``, from the seeded fault stream."""
        if rate <= 0.0:
            return False
        with self._fault_lock:
            return self._fault_rng.random() < rate

    def close(self) -> None:
        self.store.close()
