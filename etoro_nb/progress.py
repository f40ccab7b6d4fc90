"""Progress for long loads: a callback of yours, or a bar (a widget in notebooks)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

Progress = Callable[[int, int], None]  # (items loaded so far, pages loaded so far)


@contextmanager
def reporter(progress: bool | Progress | None, description: str) -> Iterator[Progress | None]:
    """The callback to call after each page: yours, a tqdm bar's (``True``), or none."""
    if progress is None or progress is False:
        yield None
        return
    if callable(progress):
        yield progress
        return
    from tqdm.auto import tqdm  # a widget in Jupyter, text elsewhere

    bar = tqdm(desc=description, unit=" items")

    def update(loaded: int, pages: int) -> None:
        bar.update(loaded - bar.n)
        bar.set_postfix(pages=pages)

    try:
        yield update
    finally:
        bar.close()
