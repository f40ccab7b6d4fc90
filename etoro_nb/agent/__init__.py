"""Risk boundaries: an agent trades through an ``AgentSession``, bounded by a ``RiskPolicy``.

The session checks every order against its policy and the owner's (set with
``client.agent_portfolios.set_policy``, kept in the ledger) before anything is sent,
keeps its own book so it needs no read per order, and stops for good when the server
refuses its token (the kill switch). See ``docs/delegation.md``, "Risk boundaries".
"""

from etoro_nb.agent.policy import RiskPolicy
from etoro_nb.errors import ConsentRequired, PolicyViolation, SessionStopped

__all__ = ["ConsentRequired", "PolicyViolation", "RiskPolicy", "SessionStopped"]
