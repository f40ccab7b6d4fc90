"""The public surface is explicit: __all__ lists exactly the public names."""

from __future__ import annotations

import types

import etoro_nb
import etoro_nb.sandbox


def test_package_all_matches_public_names() -> None:
    assert set(etoro_nb.__all__) == {"__version__", "sandbox"}


def test_sandbox_all_matches_public_names() -> None:
    public = {n for n in vars(etoro_nb.sandbox) if not n.startswith("_")}
    submodules = {n for n in public if isinstance(getattr(etoro_nb.sandbox, n), types.ModuleType)}
    assert set(etoro_nb.sandbox.__all__) == public - submodules
