"""ipywidgets views over etoro_nb: each takes a client.

``Cockpit`` is the app: tabs over one shared state (``CockpitState``). Its views work on
their own too, and share that state when built from the same client: ``PortfolioPanel``
lists, creates and deletes agent portfolios; ``DelegationPanel`` mints, edits and revokes
their tokens; ``PoliciesPanel`` sets risk policies, pauses, resumes and stops agents;
``ActivityPanel`` charts what each agent did; ``PlaygroundPanel`` sends any operation of
the contract. Every view shows the environment it talks to, asks for explicit consent
before granting trading authority (or loosening a policy), and shows a minted secret once.
"""

from widgets._common import error_text
from widgets.activity_panel import ActivityPanel
from widgets.cockpit import Cockpit
from widgets.delegation_panel import DelegationPanel
from widgets.playground_panel import PlaygroundPanel
from widgets.policies_panel import PoliciesPanel
from widgets.portfolio_panel import PortfolioPanel
from widgets.state import CockpitState

__all__ = ["ActivityPanel", "Cockpit", "CockpitState", "DelegationPanel", "PlaygroundPanel",
           "PoliciesPanel", "PortfolioPanel", "error_text"]
