"""No import cycle between the product's modules (DESIGN section 4: "a cycle between modules"),
and no module imported by name at run time, which would hide an edge from this graph.

The import graph is grimp's (the engine of import-linter): every import statement of every
module under ``qualification/``, module level, inside functions and under ``TYPE_CHECKING``
alike, since an import moved into a function to dodge a cycle is still that cycle. A cycle is
a strongly connected component of more than one module; the failure lists each with the
imports that close it (importer -> imported, line numbers), so it can be cut where it should.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest

PACKAGE = "qualification"
ROOT = Path(__file__).resolve().parents[2]
TREES = (ROOT / PACKAGE, ROOT / "ansible_collections/vqual/qualification/plugins")
#: Imports by name: importlib's loaders and __import__ (importlib.metadata and .resources read
#: package data and are fine).
_BY_NAME = {"import_module", "__import__", "spec_from_file_location", "module_from_spec",
            "SourceFileLoader", "find_spec", "reload"}


def import_cycles(graph: grimp.ImportGraph, package: str) -> list[list[str]]:
    """The strongly connected components (more than one module) among ``package``'s modules,
    each sorted, in a stable order (Tarjan's algorithm, iterative)."""
    modules = sorted(m for m in graph.modules if m == package or m.startswith(package + "."))
    inside = set(modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m) & inside) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in modules:
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            step = next(successors, None)
            if step is not None:
                if step not in index:
                    index[step] = low[step] = len(index)
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, iter(edges[step])))
                elif step in on_stack:
                    low[node] = min(low[node], index[step])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def describe(graph: grimp.ImportGraph, cycle: list[str]) -> str:
    """One cycle as text: its modules, then every import between two of them."""
    members = set(cycle)
    lines = [f"cycle of {len(cycle)} modules: {', '.join(cycle)}"]
    for importer in cycle:
        for imported in sorted(graph.find_modules_directly_imported_by(importer) & members):
            details = graph.get_import_details(importer=importer, imported=imported)
            where = ", ".join(str(d["line_number"]) for d in details)
            lines.append(f"    {importer} -> {imported} (line {where})")
    return "\n".join(lines)


def test_no_import_cycle_between_modules() -> None:
    graph = grimp.build_graph(PACKAGE, cache_dir=None)
    cycles = import_cycles(graph, PACKAGE)
    report = "\n".join(describe(graph, cycle) for cycle in cycles)
    assert not cycles, f"{len(cycles)} import cycle(s) in {PACKAGE}:\n{report}"


@pytest.fixture
def cyclic_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    # a -> b -> c -> a (c's import inside a function), d -> a only, e alone; f <-> g apart.
    root = tmp_path / "vqual_cycle_probe"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "a.py").write_text("from vqual_cycle_probe import b\n")
    (root / "b.py").write_text("import vqual_cycle_probe.c\n")
    (root / "c.py").write_text("def late():\n    from vqual_cycle_probe import a\n")
    (root / "d.py").write_text("from vqual_cycle_probe import a\n")
    (root / "e.py").write_text("import json\n")
    (root / "f.py").write_text("from vqual_cycle_probe.g import x\n")
    (root / "g.py").write_text("x = 1\nfrom vqual_cycle_probe import f\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("vqual_cycle_probe", None)
    return "vqual_cycle_probe"


def test_the_cycle_finder_finds_every_cycle_and_names_its_imports(cyclic_package: str) -> None:
    graph = grimp.build_graph(cyclic_package, cache_dir=None)
    cycles = import_cycles(graph, cyclic_package)
    assert cycles == [
        [f"{cyclic_package}.a", f"{cyclic_package}.b", f"{cyclic_package}.c"],
        [f"{cyclic_package}.f", f"{cyclic_package}.g"],
    ]
    text = describe(graph, cycles[0])
    assert f"{cyclic_package}.c -> {cyclic_package}.a (line 2)" in text
    assert f"{cyclic_package}.d" not in text


def imports_by_name(path: Path) -> list[str]:
    """``line: text`` of every use of an import-by-name function in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        name = None
        if isinstance(node, ast.Name) and node.id in _BY_NAME:
            name = node.id
        elif isinstance(node, ast.Attribute) and node.attr in _BY_NAME:
            name = node.attr
        elif isinstance(node, ast.ImportFrom) and node.module in ("importlib", "importlib.util"):
            name = ",".join(a.name for a in node.names if a.name not in ("metadata", "resources"))
        elif isinstance(node, ast.Import):
            name = ",".join(a.name for a in node.names if a.name in ("importlib", "importlib.util"))
        if name:
            found.append(f"{getattr(node, 'lineno', 0)}: {name}")
    return found


def test_no_module_is_imported_by_name() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{hit}"
        for tree in TREES
        for path in sorted(tree.rglob("*.py"))
        for hit in imports_by_name(path)
    ]
    assert found == []


def test_an_import_by_name_is_seen(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import importlib\nfrom importlib import metadata, import_module\n"
        "def f():\n    return importlib.import_module('qualification.checks')\n"
    )
    assert imports_by_name(bad) == [
        "1: importlib", "2: import_module", "4: import_module"
    ]
