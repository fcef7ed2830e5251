"""assets_pkg chooses pyarrow's jemalloc pool before pyarrow loads (see assets_pkg.arrow_pool)."""

import os
import subprocess
import sys
from pathlib import Path

from assets_pkg.arrow_pool import ENV, wants_jemalloc

REPO = Path(__file__).resolve().parent.parent
SHOW_POOL = "import pyarrow as pa, pyarrow.parquet; print(pa.default_memory_pool().backend_name)"


def _pool_after(code: str, **env) -> str:
    environ = {k: v for k, v in os.environ.items() if k != ENV} | env
    proc = subprocess.run([sys.executable, "-c", f"{code}\n{SHOW_POOL}"], cwd=REPO, env=environ,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1]


def test_jemalloc_is_wanted_only_on_linux_unset_and_before_pyarrow_loads():
    assert wants_jemalloc({}, "linux", {}) is True
    assert wants_jemalloc({}, "darwin", {}) is False
    assert wants_jemalloc({}, "win32", {}) is False
    assert wants_jemalloc({ENV: "system"}, "linux", {}) is False
    assert wants_jemalloc({ENV: ""}, "linux", {}) is True  # an empty value chooses nothing
    assert wants_jemalloc({}, "linux", {"pyarrow": object()}) is False


def test_importing_the_package_first_sets_the_pool_pyarrow_then_uses():
    default = _pool_after("pass")
    expected = "jemalloc" if sys.platform.startswith("linux") else default
    assert _pool_after("import assets_pkg.splits.profile") == expected


def test_a_pool_the_user_chose_wins():
    assert _pool_after("import assets_pkg.splits.profile", **{ENV: "system"}) == "system"


def test_pyarrow_loaded_first_keeps_its_pool_and_says_so():
    code = ("import pyarrow\nfrom assets_pkg.arrow_pool import prefer_jemalloc\n"
            "assert prefer_jemalloc() is False")
    assert _pool_after(code) == _pool_after("pass")
