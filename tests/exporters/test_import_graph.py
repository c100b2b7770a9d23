"""exporters/ imports point one way: no module of the package reaches itself again through its imports.

The graph is read from the source with `ast` (nothing is imported), function-level imports included:
a lazy import inside a function closes a cycle as surely as one at the top, only later (issue 29 found
export -> embedder/export -> embedder/validate -> validate -> testing -> export). Pure Python, no torch.
"""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _module_names(root: Path, package: str) -> dict[str, Path]:
    """{dotted name: file} of every module under `root`, named as installed (`package` is root's name)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join((package, *parts))] = path
    return out


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """{module: modules of the same package it imports}, every import statement counted wherever it is."""
    modules = _module_names(root, package)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]  # the package `from .` means
        ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
                    base = f"{base}.{node.module}" if node.module else base
                else:
                    base = node.module or ""
                # `from X import a` runs X (an ancestor package is already running: not an edge) and, when
                # `a` is a submodule, X.a.
                if base not in ancestors:
                    targets.add(base)
                targets.update(f"{base}.{a.name}" for a in node.names)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (depth-first search, nodes in sorted order: stable output)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_exporters_have_no_import_cycle():
    graph = import_graph(REPO / "exporters", "edge_sdk.exporters")
    assert len(graph) > 40 and graph["edge_sdk.exporters.export"], "the graph was not read"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in exporters/: " + " -> ".join(c.removeprefix("edge_sdk.exporters.") for c in cycle)


def test_validation_does_not_import_the_test_fixtures():
    """Issue 29: the production path (export, validation) never imports testing.py, directly or not."""
    graph = import_graph(REPO / "exporters", "edge_sdk.exporters")
    seen, todo = set(), ["edge_sdk.exporters.export"]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph[node])
    assert "edge_sdk.exporters.validate" in seen and "edge_sdk.exporters.testing" not in seen


def test_the_cycle_finder_sees_function_level_and_relative_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..c import g\n")
    (pkg / "c.py").write_text("import os\nfrom . import d\n")
    (pkg / "d.py").write_text("from pkg.sub import b as _b\n")  # absolute, as the package is installed
    graph = import_graph(pkg, "pkg")
    assert graph["pkg.a"] == {"pkg.sub", "pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.c"}
    assert graph["pkg.c"] == {"pkg.d"}  # `from . import d` runs d, not the package again
    cycle = find_cycle(graph)
    assert cycle[0] == cycle[-1] and set(cycle) == {"pkg.c", "pkg.d", "pkg.sub.b"} and len(cycle) == 4
    (pkg / "d.py").write_text("def later():\n    import json\n    import pkg.sub\n")  # the package, not b
    assert find_cycle(import_graph(pkg, "pkg")) is None
