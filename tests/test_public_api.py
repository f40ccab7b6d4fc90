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
    lazy = {"AsyncClient", "Client", "connect", "connect_async"}  # loaded on first use
    assert set(etoro_nb.__all__) == (_public_objects(etoro_nb) | exported_modules | lazy
                                     | {"__version__"})
    for name in etoro_nb.__all__:
        assert hasattr(etoro_nb, name)


def test_sandbox_all_matches_public_names() -> None:
    for name in etoro_nb.sandbox.__all__:  # the lazily loaded names appear once used
        assert hasattr(etoro_nb.sandbox, name)
    assert set(etoro_nb.sandbox.__all__) == _public_objects(etoro_nb.sandbox)
