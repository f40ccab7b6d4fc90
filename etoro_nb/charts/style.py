"""How the charts look: template, colours, legend and the text of times. Pure Python, no
plotly (``charts.figures`` registers the template with plotly).

Colours are fixed maps or a stable hash of a key, so the same frames give the same figure.
A portfolio keeps one colour in every chart of a session (``portfolio_colours``). Categorical
palettes hold no reds: red means refused or failed.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

TEMPLATE = "etoro_nb"
"""The project's plotly template, registered once in ``plotly.io.templates`` when a chart is
first drawn: plotly's white template with the palette below as colourway, and a legend
laid out by ``legend_below``. Every figure of ``etoro_nb.charts`` uses it."""
FONT = "Inter, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"

# Categorical colours for operations and portfolios.
PALETTE: tuple[str, ...] = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
    "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7",
    "#dbdb8d", "#9edae5", "#393b79", "#637939",
)
ERROR_COLOUR = "#d62728"
TRADE_COLOUR = "#111111"
GREY = "#7f7f7f"
STATUS_COLOURS: dict[str, str] = {
    "active": "#2ca02c", "expiring": "#ff7f0e", "expired": "#7f7f7f", "revoked": "#d62728",
}
SCOPE_COLOURS: dict[str, str] = {  # by ``shaping.SCOPE_STATES``, in its order
    "not granted": "#eeeeee", "granted, unused": "#ffbb33", "used": "#2ca02c", "refused": "#d62728",
}
OWNER_COLOUR = "#333333"
APPLICATION_COLOUR = "#8c8c8c"
LINK_ALPHA = 0.35

# The rebalancer's instruments: no orange or red either, which mark refused and stopped steps.
INSTRUMENT_PALETTE = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
                      "#393b79")
CASH_COLOUR = "#7f7f7f"
GAP_COLOUR = "#444444"
EVENT_COLOURS: dict[str, str] = {"refused": "#ff7f0e", "stopped": "#d62728"}
GAP_FLOOR = 1e-5  # gaps are drawn on a log axis: 0 is shown as 0.001%


class PortfolioColours:
    """One palette colour per portfolio, shared by every chart: a portfolio (by name, or id
    when it has none) takes its preferred slot (a hash of the key) unless another portfolio
    already holds it, then the next free one, and keeps it for the life of the process. Up
    to ``len(PALETTE)`` portfolios get distinct colours; beyond that colours repeat."""

    def __init__(self, palette: tuple[str, ...] = PALETTE) -> None:
        self._palette = palette
        self._slots: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, keys: Iterable[str]) -> dict[str, str]:
        """The colour of each key, assigning new keys in sorted order (so a figure's own
        order does not decide who gets a contested slot)."""
        with self._lock:
            for key in sorted(set(keys) - self._slots.keys()):
                self._slots[key] = self._free_slot(key)
            return {key: self._palette[self._slots[key]] for key in keys}

    def _free_slot(self, key: str) -> int:
        size = len(self._palette)
        slot = zlib.crc32(key.encode()) % size
        taken = set(self._slots.values())
        for step in range(size):
            if (slot + step) % size not in taken:
                return (slot + step) % size
        return slot  # every colour taken: share the preferred one

    def clear(self) -> None:
        """Forget every assignment (tests; a new session)."""
        with self._lock:
            self._slots.clear()


portfolio_colours = PortfolioColours()
"""The session's portfolio -> colour mapping that every chart uses."""


def legend_below(height: int, *, offset_px: int = 64) -> dict[str, Any]:
    """A horizontal legend under the plot, clear of the x axis's ticks and title: it wraps
    into rows and pushes the bottom margin (never the plot's width), whatever its length.
    ``height`` is the figure's height in pixels; the offset is kept in pixels."""
    plot = max(height - 160, 120)  # the plot area: the figure less the default margins
    return {"orientation": "h", "x": 0, "xanchor": "left", "y": -offset_px / plot,
            "yanchor": "top", "title": {"side": "left"}}


def rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def when(value: datetime | None) -> str:
    """A time as hover text: ``2026-03-02 14:00 UTC`` (``—`` for none)."""
    return "—" if value is None else f"{value.astimezone(UTC):%Y-%m-%d %H:%M} UTC"

# Risk boundaries: the book's lines, its limits, and what happened to the agent.
EXPOSURE_COLOURS: dict[str, str] = {
    "gross exposure": "#1f77b4", "exposure limit": "#d62728", "daily loss": "#8c564b",
    "loss limit": "#d62728",
}
MARK_COLOURS: dict[str, str] = {
    "refused locally": "#ff7f0e", "refused by the server": "#d62728", "paused": "#7f7f7f",
    "resumed": "#2ca02c", "policy set": "#1f77b4", "stopped": "#d62728",
}
