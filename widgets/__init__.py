"""ipywidgets panels over etoro_nb: each takes a client.

``PortfolioPanel`` lists, creates and deletes agent portfolios; ``DelegationPanel`` mints,
edits and revokes their tokens; ``ActivityPanel`` charts what each agent did;
``PlaygroundPanel`` sends any operation of the contract.
Every panel shows the environment it talks to, asks for explicit consent before granting
trading authority, and shows a minted secret once.
"""

from widgets.activity_panel import ActivityPanel
from widgets.delegation_panel import DelegationPanel
from widgets.playground_panel import PlaygroundPanel
from widgets.portfolio_panel import PortfolioPanel

__all__ = ["ActivityPanel", "DelegationPanel", "PlaygroundPanel", "PortfolioPanel"]
