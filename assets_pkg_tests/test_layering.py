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


# The storage layer (DESIGN section 8): the only modules that publish by rename or lock files;
# everything else goes through io.atomic / io.locks, so an object-store root works everywhere.
STORAGE_LAYER = ("storage/", "io/atomic.py", "io/locks.py")


def _publish_or_lock_calls(path: Path) -> list[str]:
    """``os.replace`` / ``os.rename`` / ``shutil.move``, ``<path>.rename(x)`` /
    ``<path>.replace(x)`` (one positional argument: ``str.replace`` takes two), ``flock`` /
    ``lockf`` and ``import fcntl`` in one module, as ``line: call``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import) and any(a.name == "fcntl" for a in node.names):
            found.append(f"{node.lineno}: import fcntl")
        elif isinstance(node, ast.ImportFrom) and node.module == "fcntl":
            found.append(f"{node.lineno}: from fcntl import")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name, owner = node.func.attr, node.func.value
            owner_name = owner.id if isinstance(owner, ast.Name) else None
            if name in ("flock", "lockf") \
                    or (owner_name == "os" and name in ("replace", "rename", "renames")) \
                    or (owner_name == "shutil" and name == "move") \
                    or (name in ("rename", "replace") and len(node.args) == 1 and not node.keywords
                        and owner_name not in ("os", "shutil")):
                found.append(f"{node.lineno}: {ast.unparse(node.func)}")
    return found


def test_only_the_storage_layer_renames_replaces_or_flocks():
    """No module outside assets_pkg/storage, io/atomic.py and io/locks.py publishes with
    ``os.replace`` / ``Path.rename`` or takes a ``flock``: on an object-store root there is
    no rename and no shared disk to lock, so such a call is a write that skips the commit
    rules (a scratch file is published with ``io.atomic.publish_file``)."""
    offenders = {
        rel: calls
        for path in sorted(PACKAGE.rglob("*.py"))
        if not (rel := path.relative_to(PACKAGE).as_posix()).startswith(STORAGE_LAYER)
        and (calls := _publish_or_lock_calls(path))
    }
    assert offenders == {}


def test_the_rename_rule_sees_each_form_of_the_call(tmp_path):
    """The rule above can fail: each forbidden form is found, ``str.replace`` is not."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os, shutil, fcntl\n"
        "os.replace(a, b)\nos.rename(a, b)\nshutil.move(a, b)\ntmp.rename(final)\ntmp.replace(final)\n"
        "fcntl.flock(fd, 2)\ntext.replace('a', 'b')\nwhen.replace(tzinfo=None)\n",
        encoding="utf-8")
    assert [c.split(": ", 1)[1] for c in _publish_or_lock_calls(sample)] == [
        "import fcntl", "os.replace", "os.rename", "shutil.move", "tmp.rename", "tmp.replace", "fcntl.flock"]
