"""The hybrid package depends on nothing that uses it: the server drives the router, not the reverse."""
from __future__ import annotations

import ast
from pathlib import Path

HYBRID = Path(__file__).resolve().parents[2] / "runtime" / "hybrid"


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            out.append("." * node.level + (node.module or ""))
    return out


def test_the_hybrid_package_imports_nothing_from_the_server_or_the_app():
    files = sorted(HYBRID.glob("*.py"))
    assert len(files) >= 8
    for path in files:
        for name in _imports(path):
            assert "server" not in name.split(".") and "mobile_demo" not in name, f"{path.name} imports {name}"
            assert not name.startswith(".."), f"{path.name} imports {name}: reach other subpackages by absolute name"
