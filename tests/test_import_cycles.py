"""No import cycles in etoro_nb or widgets: the graph of imports read from every module's
AST (at module level and inside functions, but not under ``if TYPE_CHECKING:``) is a DAG.

An edge goes to the module an import names: ``from etoro_nb import rules`` to
``etoro_nb.rules`` when that is a module, else to the package. A package's ``__init__`` run
as a side effect of importing its submodule is not an edge: that would make every
re-exporting ``__init__`` a cycle without any module depending on another both ways.
"""

from __future__ import annotations

import ast
import graphlib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("etoro_nb", "widgets")



def module_names() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported(tree: ast.AST, module: str, is_package: bool, *,
             typing: bool = False) -> Iterator[str]:
    """Every module name imported in ``tree``, skipping ``if TYPE_CHECKING:`` bodies unless
    ``typing``."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if not typing and isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[:len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)
        stack.extend(ast.iter_child_nodes(node))


def import_graph(*, typing: bool = False) -> dict[str, set[str]]:
    """Module -> the package modules it imports (``typing``: also those imported only for
    type checking)."""
    modules = module_names()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        targets = {t for t in imported(tree, name, path.name == "__init__.py", typing=typing)
                   if t in modules}
        # ``from pkg import sub`` names both pkg and pkg.sub: the edge is to the submodule.
        graph[name] = {t for t in targets
                       if not any(o.startswith(t + ".") for o in targets)} - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return None


def test_the_graph_sees_imports_inside_functions_and_skips_type_checking() -> None:
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from a import x\n"
              "def f():\n    from b.c import y\n    import d\n")
    assert set(imported(ast.parse(source), "m", False)) == {"typing", "typing.TYPE_CHECKING",
                                                            "b.c", "b.c.y", "d"}
    assert find_cycle({"a": {"b"}, "b": {"a"}}) is not None


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert "etoro_nb.resources.market" in graph and "widgets" in graph
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle: {' -> '.join(cycle)}"


def test_client_and_resources_depend_one_way_even_for_typing() -> None:
    """The client -> resources and models -> (nothing) directions hold for type-checking
    imports too: resources type against ``_runner``'s protocols, errors against ``Any``."""
    graph = import_graph(typing=True)
    for name in graph:
        if name.startswith("etoro_nb.resources"):
            assert "etoro_nb.client" not in graph[name], name
    assert not graph["etoro_nb.errors"], graph["etoro_nb.errors"]
    assert "etoro_nb.errors" not in graph["etoro_nb.models"]
