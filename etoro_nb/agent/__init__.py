"""Risk boundaries: an agent trades through an ``AgentSession``, bounded by a ``RiskPolicy``.

The session checks every order against its policy and the owner's (set with
``client.agent_portfolios.set_policy``, kept in the ledger) before anything is sent,
keeps its own book so it needs no read per order, and stops for good when the server
refuses its token (the kill switch). See the README and ``docs/delegation.md``, "Risk
boundaries".

Modules: ``policy`` (the model), ``checks`` (the rules, pure), ``book`` (the session's
book), ``controls`` (the owner's side, in the ledger), ``events`` (what is recorded),
``room`` (how large an order may be), ``session`` (``AgentSession``, and
``SessionCore``: the logic both sessions run), ``async_session`` (``AsyncAgentSession``,
for an ``AsyncEtoroClient``).
"""

from etoro_nb.agent.async_session import AsyncAgentSession
from etoro_nb.agent.book import BookView, Holding
from etoro_nb.agent.controls import Controls
from etoro_nb.agent.policy import RiskPolicy
from etoro_nb.agent.room import Room
from etoro_nb.agent.session import AgentSession
from etoro_nb.errors import ConsentRequired, PolicyViolation, SessionStopped

__all__ = ["AgentSession", "AsyncAgentSession", "BookView", "ConsentRequired", "Controls", "Holding",
           "PolicyViolation", "RiskPolicy", "Room", "SessionStopped"]
