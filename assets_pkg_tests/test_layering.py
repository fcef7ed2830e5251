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


def test_the_package_never_imports_its_tests():
    """The code location loads without assets_pkg_tests (the fake log API lives there)."""
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(n for n in _imports(path) if n.split(".")[0] == "assets_pkg_tests")
        for path in PACKAGE.rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


PURE = [
    "splits/rows.py", "splits/hashing.py", "splits/profile.py", "splits/allocation.py", "splits/pass2.py",
    "splits/outputs.py", "splits/pipeline.py", "summary/ring.py", "summary/month_file.py", "summary/build.py",
]


def test_split_and_summary_logic_modules_import_no_dagster():
    offenders = {m: sorted(n for n in _imports(PACKAGE / m) if n.split(".")[0] == "dagster") for m in PURE}
    assert {k: v for k, v in offenders.items() if v} == {}
