"""assets_pkg chooses pyarrow's jemalloc pool before pyarrow loads (see assets_pkg.arrow_pool)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHOW_POOL = "import pyarrow as pa, pyarrow.parquet; print(pa.default_memory_pool().backend_name)"


def _pool_after(code: str, **env) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"} | env
    proc = subprocess.run([sys.executable, "-c", f"{code}\n{SHOW_POOL}"], cwd=REPO, env=environ,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pyarrow wheels carry jemalloc on Linux")
def test_importing_the_package_first_gives_pyarrow_jemalloc():
    assert _pool_after("import assets_pkg.splits.logic") == "jemalloc"


def test_a_pool_the_user_chose_wins():
    assert _pool_after("import assets_pkg.splits.logic", ARROW_DEFAULT_MEMORY_POOL="system") == "system"


def test_pyarrow_loaded_first_keeps_its_pool_and_says_so():
    code = ("import pyarrow\nfrom assets_pkg.arrow_pool import prefer_jemalloc\n"
            "assert prefer_jemalloc() is False")
    assert _pool_after(code) == _pool_after("pass")
