"""The public surface is explicit: __all__ lists exactly the public names."""

from __future__ import annotations

import types

import etoro_nb
import etoro_nb.sandbox


def _public_objects(module: types.ModuleType) -> set[str]:
    """Public names that are not submodules (those appear as a side effect of imports)."""
    return {n for n, v in vars(module).items()
            if not n.startswith("_") and not isinstance(v, types.ModuleType)}


def test_package_all_matches_public_names() -> None:
    exported_modules = {"charts", "errors", "frames", "sandbox"}
    lazy = {"AsyncEtoroClient", "EtoroClient", "connect", "connect_async"}  # loaded on first use
    assert set(etoro_nb.__all__) == (_public_objects(etoro_nb) | exported_modules | lazy
                                     | {"__version__"})
    for name in etoro_nb.__all__:
        assert hasattr(etoro_nb, name)


def test_sandbox_all_matches_public_names() -> None:
    for name in etoro_nb.sandbox.__all__:  # the lazily loaded names appear once used
        assert hasattr(etoro_nb.sandbox, name)
    assert set(etoro_nb.sandbox.__all__) == _public_objects(etoro_nb.sandbox)


DEPENDENCIES = ("httpx", "pydantic", "polars", "plotly.graph_objects", "starlette", "uvicorn",
                "ipywidgets", "anywidget", "papermill", "nbconvert", "dotenv", "tqdm")


def _public(module: types.ModuleType) -> set[str]:
    """Public names that are not dunders or submodules (a module attribute is no API name)."""
    names = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
    return {n for n in names if not n.startswith("__")
            and not isinstance(getattr(module, n, None), types.ModuleType)}


def test_no_public_name_collides_with_a_dependencys() -> None:
    import importlib

    import etoro_nb.charts
    import etoro_nb.errors
    import etoro_nb.frames
    import etoro_nb.ledger
    import widgets

    theirs = set().union(*(_public(importlib.import_module(d)) for d in DEPENDENCIES))
    ours = {f"{m.__name__}.{n}" for m in (etoro_nb, etoro_nb.errors, etoro_nb.frames,
                                          etoro_nb.charts, etoro_nb.ledger, etoro_nb.sandbox,
                                          widgets)
            for n in _public(m)}
    assert sorted(q for q in ours if q.rsplit(".", 1)[1] in theirs) == []
