"""In-memory DuckDB connections with bounded memory and a spill folder.

Pure logic modules take a connection as an argument; the Dagster layer gets one from
:class:`assets_pkg.resources.duckdb.DuckDBResource`, tests and the CLI from :func:`connect`.
Storage stays in Parquet: a ``.duckdb`` file would lock out every other process.
"""

import re
from contextlib import contextmanager
from pathlib import Path

import duckdb

from assets_pkg.settings import get_settings
from assets_pkg.storage.arrow import register_filesystem


def connect(
    memory_limit: str | None = None,
    threads: int | None = None,
    spill_dir: Path | str | None = None,
) -> duckdb.DuckDBPyConnection:
    settings = get_settings()
    spill = Path(spill_dir) if spill_dir else settings.duckdb_spill_dir
    spill.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(":memory:")
    con.execute(f"SET memory_limit = '{_checked_size(memory_limit or settings.duckdb_memory_limit)}'")
    con.execute(f"SET threads = {int(threads or settings.duckdb_threads)}")
    # SET takes no bound parameters; the path is ours (data root), quoted as a literal.
    con.execute(f"SET temp_directory = '{_escape(str(spill))}'")
    con.execute("SET preserve_insertion_order = false")
    # an object-store data root: read_parquet('s3://...') goes through fsspec (DESIGN section 8)
    register_filesystem(con, settings.data_root)
    return con


def current_setting(con, name: str):
    return con.execute("SELECT current_setting(?)", [name]).fetchall()[0][0]


_SIZE_UNITS = {"bytes": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "pb": 10**15,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "pib": 2**50}


def memory_limit_bytes(con) -> int:
    """``con``'s ``memory_limit`` in bytes (DuckDB reports it as text such as '488.2 MiB')."""
    text = str(current_setting(con, "memory_limit"))
    size = _size_bytes(text)
    if size is None:
        raise ValueError(f"DuckDB reported a memory_limit of {text!r}, not a size")
    return size


def _size_bytes(text: str, units=_SIZE_UNITS) -> int | None:
    """A size such as '2GB' or '488.2 MiB' in bytes; None when ``text`` is not one (or its
    unit is not among ``units``)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*", text)
    if not match or match.group(2).lower() not in units:
        return None
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def threads_of(con) -> int:
    """The worker threads DuckDB may use (the ``threads`` setting, global to the database)."""
    return int(current_setting(con, "threads"))


@contextmanager
def setting(con, name: str, value):
    """``SET name = value`` for the block, then the previous value again; nothing when it
    already holds. Most settings (``threads``, ``disabled_optimizers``) are GLOBAL: every
    cursor of the database sees them, so a block wraps all the work that needs it."""
    previous = current_setting(con, name)
    if str(previous) == str(value):
        yield
        return
    con.execute(f"SET {name} = '{_escape(str(value))}'")
    try:
        yield
    finally:
        con.execute(f"SET {name} = '{_escape(str(previous))}'")


def quote_ident(name: str) -> str:
    """Quote an identifier that came from config or a file header."""
    return '"' + str(name).replace('"', '""') + '"'


def _escape(text: str) -> str:
    return text.replace("'", "''")


# the units DUCKDB_MEMORY_LIMIT is accepted in (what DuckDB's SET memory_limit takes)
_SETTABLE_UNITS = {"b", "kb", "mb", "gb", "tb", "kib", "mib", "gib", "tib"}


def _checked_size(size: str) -> str:
    if _size_bytes(size, _SETTABLE_UNITS) is None:
        raise ValueError(f"DuckDB memory limit {size!r} is not a size like '2GB' (DUCKDB_MEMORY_LIMIT)")
    return size.strip()
