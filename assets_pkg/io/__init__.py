"""Storage helpers: atomic writes, table writers, the Parquet shard IO manager."""

from assets_pkg.io.atomic import (
    atomic_dir,
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    remove_stale_temps,
)
from assets_pkg.io.formats import (
    FORMATS,
    WriteResult,
    count_rows,
    file_extension,
    to_record_batch_reader,
    write_table,
)

__all__ = [
    "FORMATS",
    "WriteResult",
    "atomic_dir",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "count_rows",
    "file_extension",
    "remove_stale_temps",
    "to_record_batch_reader",
    "write_table",
]
