"""DataGrid: a sortable, filterable, scrollable table with single-row selection, on
itables' ``ITable`` widget (DataTables in the browser, bundled: works offline).

Rows carry a key column (an id) that is not shown; ``selected`` is the key of the
selected row, so callers think in ids, never in row positions. Cells are text or HTML
that the caller has escaped (``widgets.tables`` builds them).

itables 2.9 binds its browser-side selection listener to the first DataTable it draws
only, so after ``ITable.update()`` clicks no longer reach Python. New data therefore
gets a new ``ITable`` (same data: nothing is redrawn, and the reader's sort, filter and
scroll stay).
"""

from __future__ import annotations

import html
import re
from typing import Any

import ipywidgets as w
import polars as pl
import traitlets
from itables.widget import ITable

_TAGS = re.compile(r"<[^>]*>")
_OPTIONS: dict[str, Any] = {
    "select": {"style": "single"},
    "paging": False,
    "scrollY": "260px",
    "scrollCollapse": True,
    "scrollX": True,
    "maxBytes": 0,
    "showIndex": False,
    "allow_html": True,
    "column_filters": "footer",
    "classes": "display compact nowrap cell-border",
    "style": "width:100%;margin:0",
    "layout": {"topStart": None, "topEnd": "search", "bottomStart": "info", "bottomEnd": None},
}


class DataGrid(w.VBox):
    """A grid of ``frame`` rows keyed by ``key``; ``selected`` follows the reader's clicks
    and selects the row when set from Python (None: no row)."""

    selected = traitlets.Unicode(None, allow_none=True)

    def __init__(self, key: str, *, css_class: str, empty: str = "Nothing to show.") -> None:
        self.key = key
        self.empty = w.HTML(f"<i>{empty}</i>")
        self._frame = pl.DataFrame()
        self._keys: list[str] = []
        self._table: ITable | None = None
        super().__init__([self.empty], layout=w.Layout(width="100%"))
        self.add_class("enb-grid")
        self.add_class(css_class)
        self.observe(lambda _: self._select_row(), "selected")

    @property
    def frame(self) -> pl.DataFrame:
        """The rows shown, key column included (cells as shown: text or HTML)."""
        return self._frame

    def column(self, name: str) -> list[str]:
        """A column's cells as the reader sees them: text, without the HTML."""
        return [html.unescape(_TAGS.sub("", cell)) for cell in self._frame[name]] \
            if self._frame.height else []

    def as_text(self) -> pl.DataFrame:
        """The grid as the reader sees it, as a plain frame (no key, no HTML): for a
        notebook's output or a report."""
        shown = [c for c in self._frame.columns if c != self.key]
        return pl.DataFrame({c: self.column(c) for c in shown}, schema={c: pl.String for c in shown})

    @property
    def row_keys(self) -> list[str]:
        return list(self._keys)

    def show(self, frame: pl.DataFrame) -> None:
        """Show these rows (redrawn only if they changed), the selected key's row selected."""
        if self._table is not None and frame.equals(self._frame):
            return
        self._frame = frame
        self._keys = [str(k) for k in frame[self.key]] if frame.height else []
        old, self._table = self._table, None
        if frame.height:
            rows = [self._keys.index(self.selected)] if self.selected in self._keys else []
            self._table = ITable(frame.drop(self.key), selected_rows=rows, **_OPTIONS)
            self._table.observe(self._clicked, "selected_rows")
            self.children = [self._table]
        else:
            self.children = [self.empty]
        if old is not None:
            old.close()

    def _clicked(self, change: dict[str, Any]) -> None:
        rows = change["new"]
        chosen = self._keys[rows[0]] if rows and rows[0] < len(self._keys) else None
        if chosen != self.selected:
            self.selected = chosen

    def _select_row(self) -> None:
        if self._table is None:
            return
        rows = [self._keys.index(self.selected)] if self.selected in self._keys else []
        if list(self._table.selected_rows) != rows:
            self._table.selected_rows = rows

    def click_row(self, key: str) -> None:
        """What a click on the row of ``key`` does (for tests and scripted notebooks)."""
        if self._table is None or key not in self._keys:
            raise ValueError(f"no row {key!r} in this grid")
        self._table.selected_rows = [self._keys.index(key)]
