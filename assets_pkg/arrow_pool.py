"""pyarrow's memory pool for this code location: jemalloc, which hands freed memory back.

pyarrow's default pool on Linux is mimalloc. It keeps the pages a thread freed for that
thread's next allocations, and the splits allocate Arrow buffers on three threads (the
caller and :class:`~assets_pkg.splits.shard_pool.ShardPool`'s two workers), so a shard's
profile, once written, stays resident as spare capacity of the thread that built it.
Measured on the splits benchmark (``python -m bench.splits --rows 10000000 --formats
parquet csv --variants logic dagster``, each pool chosen with ``ARROW_DEFAULT_MEMORY_POOL``):
peak RSS of the logic path 382 -> 325 MB (parquet) and 414 -> 342 MB (csv), the Dagster
run 429 -> 412 and 445 -> 393 MB, times within the run-to-run noise.

Arrow's C++ code (Parquet reader and writer, compute kernels, the csv parser) takes its
pool from that variable, read once when pyarrow is loaded; ``pa.set_memory_pool`` changes
only what Python calls pass. So the variable is set before anything imports pyarrow, and
inherited by the processes Dagster starts. A value already set (pyarrow's own variable)
wins; outside Linux pyarrow wheels carry no jemalloc and keep their default.
"""

import os
import sys

ENV = "ARROW_DEFAULT_MEMORY_POOL"


def wants_jemalloc(environ, platform: str, loaded_modules) -> bool:
    """Whether to ask for jemalloc: nobody chose a pool, the platform's pyarrow has
    jemalloc (Linux), and pyarrow is not loaded yet (its pool would already be chosen)."""
    return not environ.get(ENV) and platform.startswith("linux") and "pyarrow" not in loaded_modules


def prefer_jemalloc() -> bool:
    """Set ``ARROW_DEFAULT_MEMORY_POOL=jemalloc`` when :func:`wants_jemalloc`; True if set."""
    if not wants_jemalloc(os.environ, sys.platform, sys.modules):
        return False
    os.environ[ENV] = "jemalloc"
    return True
