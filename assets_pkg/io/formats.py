"""Write tabular data (Arrow, pandas, DuckDB) to parquet/csv/tsv without collecting it.

Everything is turned into a ``pyarrow.RecordBatchReader`` and streamed batch by batch
into a temp file that is published atomically (on an object-store root: a local temp
uploaded with one PUT); an empty result publishes nothing.
"""

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from assets_pkg.io.atomic import atomic_path
from assets_pkg.storage import as_path
from assets_pkg.storage.arrow import parquet_file

FORMATS = ("parquet", "csv", "tsv")
_EXTENSIONS = {"parquet": "parquet", "csv": "csv", "tsv": "tsv"}
_BATCH_ROWS = 131_072


@dataclass(frozen=True)
class WriteResult:
    path: Path | None  # None when the result was empty and no file was written
    rows: int
    bytes: int


def file_extension(fmt: str) -> str:
    if fmt not in _EXTENSIONS:
        raise ValueError(f"unknown output format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return _EXTENSIONS[fmt]


def to_record_batch_reader(data) -> pa.RecordBatchReader:
    """Accept a pyarrow Table/RecordBatch/RecordBatchReader, a pandas DataFrame or a
    DuckDB relation and return a streaming reader over it."""
    if isinstance(data, pa.RecordBatchReader):
        return data
    if isinstance(data, pa.Table):
        return pa.RecordBatchReader.from_batches(data.schema, data.to_batches(max_chunksize=_BATCH_ROWS))
    if isinstance(data, pa.RecordBatch):
        return pa.RecordBatchReader.from_batches(data.schema, [data])
    module = type(data).__module__
    if module.startswith("duckdb"):
        # A relation streams its result; arrow() would materialize it whole.
        return data.fetch_record_batch(_BATCH_ROWS)
    if module.startswith("pandas"):
        return to_record_batch_reader(pa.Table.from_pandas(data, preserve_index=False))
    raise TypeError(
        f"cannot write a {type(data).__name__}; return a pyarrow Table/RecordBatchReader, "
        "a pandas DataFrame or a DuckDB relation"
    )


def count_rows(path: Path | str) -> int:
    path = as_path(path)
    if path.suffix == ".parquet":
        return parquet_file(path).metadata.num_rows
    raise ValueError(f"count_rows supports parquet only, got {path}")


def write_table(data, path: Path | str, fmt: str = "parquet", compression: str = "zstd",
                keep_empty: bool = False) -> WriteResult:
    """Stream ``data`` into ``path`` atomically. Zero rows: no file, old file removed;
    with ``keep_empty``, a file with the schema and no row (for readers that expect it)."""
    path = as_path(path)
    file_extension(fmt)
    reader = to_record_batch_reader(data)
    rows = 0
    with atomic_path(path) as tmp:
        writer = None
        try:
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                if writer is None:
                    writer = _open_writer(tmp, reader.schema, fmt, compression)
                writer.write_batch(batch)
                rows += batch.num_rows
            if writer is None and keep_empty:
                writer = _open_writer(tmp, reader.schema, fmt, compression)
        finally:
            if writer is not None:
                writer.close()
        if rows == 0 and tmp.exists() and not keep_empty:
            tmp.unlink()
        # the size of what is published, from the local temp (no request to an object store)
        size = tmp.stat().st_size if tmp.exists() else 0
    if rows == 0 and not keep_empty:
        path.unlink(missing_ok=True)
        return WriteResult(path=None, rows=0, bytes=0)
    return WriteResult(path=path, rows=rows, bytes=size)


def _open_writer(tmp: Path, schema: pa.Schema, fmt: str, compression: str):
    if fmt == "parquet":
        return pq.ParquetWriter(tmp, schema, compression=compression)
    delimiter = "\t" if fmt == "tsv" else ","
    return pacsv.CSVWriter(tmp, schema, write_options=pacsv.WriteOptions(delimiter=delimiter))
