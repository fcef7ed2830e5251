"""Arrows point down: no domain or shared module imports the sample-data (demo) package."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "assets_pkg"
LOWER = ("ingest", "splits", "summary", "logs", "timeseries", "reader", "io", "resources")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_no_domain_module_imports_demo():
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(n for n in _imports(path) if n.startswith("assets_pkg.demo"))
        for folder in LOWER
        for path in (PACKAGE / folder).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}
