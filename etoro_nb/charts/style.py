"""How the charts look: template, colours and the text of times. Pure Python, no plotly.

Colours are fixed maps or a stable hash of a key, so the same frames always give the same
figure. Categorical palettes hold no reds: red means refused or failed.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from datetime import UTC, datetime

TEMPLATE = "plotly_white"

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


def colours(keys: Iterable[str]) -> dict[str, str]:
    """A colour per key: a fixed preferred slot (hash of the key), moved on only when another
    key of the same figure has taken it, so colours stay distinct and mostly stable."""
    out: dict[str, str] = {}
    taken: set[int] = set()
    for key in sorted(set(keys)):
        slot = zlib.crc32(key.encode()) % len(PALETTE)
        while slot in taken and len(taken) < len(PALETTE):
            slot = (slot + 1) % len(PALETTE)
        taken.add(slot)
        out[key] = PALETTE[slot]
    return out


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
