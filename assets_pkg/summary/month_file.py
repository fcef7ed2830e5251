"""The month file: how one month's summary table is encoded to and decoded from Parquet
(no dagster import).

The schema (key, month, timestamp, value columns, ``<C>_history`` lists), the codecs tuned
for the history lists, the atomic write, and the source fingerprint a file carries in its
schema metadata (:data:`FINGERPRINT_KEY`): a file carrying the current fingerprint holds
exactly the winners the source gives for its month now, so the build may read its history
columns back instead of aggregating the source again.
"""

import itertools
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from assets_pkg.io import WriteResult, atomic_path
from assets_pkg.storage import as_path
from assets_pkg.storage.arrow import arrow_file, parquet_file, read_table
from assets_pkg.summary.config import SummarySettings
from assets_pkg.summary.ring import MonthRows

ARROW_TYPES = {"DOUBLE": pa.float64(), "FLOAT": pa.float32(), "BIGINT": pa.int64(), "INTEGER": pa.int32()}

def output_schema(cfg: SummarySettings, key_type: pa.DataType) -> pa.Schema:
    fields = [
        pa.field(cfg.key_column, key_type),
        pa.field(cfg.month_column, pa.string()),
        pa.field(cfg.timestamp_column, pa.timestamp("us")),
    ]
    for col in cfg.all_value_columns:
        fields.append(pa.field(col, ARROW_TYPES.get(cfg.value_type(col), pa.string())))
    for col in cfg.history_columns:
        fields.append(pa.field(cfg.history_name(col), pa.list_(ARROW_TYPES[cfg.value_type(col)])))
    return pa.schema(fields)


def key_arrow_type(cfg: SummarySettings) -> pa.DataType:
    return pa.int64() if cfg.key_type == "BIGINT" else pa.string()


# Parquet codecs of the month files. Encoding the history list values is most of the
# build's CPU. They are BYTE_STREAM_SPLIT-encoded (the k-th bytes of all values stored
# together), which zstd compresses well: less CPU than plain values with snappy for a fifth
# fewer bytes, and cheaper to decode. Plain values: snappy cost less CPU than zstd;
# uncompressed lists less still but doubled the bytes (the figures: bench/NOTES.md).
SCALAR_COMPRESSION = "zstd"
HISTORY_COMPRESSION = "zstd"

# Rows per row group, written one batch at a time: the writer's level buffers for 64k rows
# are reused by the allocator, larger ones are fresh (zeroed) pages every time, which costs
# kernel time and peak memory (bench/NOTES.md).
ROW_GROUP_ROWS = 65_536

# Data page size limit. zstd compresses each page on its own, so the history lists' 1 MiB
# pages (Arrow's default) each restart its window: 8 MiB pages (in practice cut at Arrow's
# 20k rows per page, ~5.8 MB of a balance list) write 1.8% fewer bytes at the same write CPU
# and read CPU. Every byte is one an object store ingests (about 10 CPU-s per GB for the
# bench's SeaweedFS: bench/NOTES.md "Month file bytes").
DATA_PAGE_BYTES = 8 << 20


def write_month_file(rows: "pa.Table | MonthRows | pa.RecordBatchReader", path: Path, keep: Path | None = None,
                     row_group_rows: int = ROW_GROUP_ROWS, uploads=None) -> WriteResult:
    """Publish one month atomically (empty: delete the old file). ``latest_summary``, whose
    rows are month rows, is written here too, from a stream of batches.

    Like :func:`assets_pkg.io.write_table`, but tuned for the history lists: no dictionary
    encoding of the lists (dictionary attempts on every list value are costly and never
    pay) nor of scalars that are unique or nearly so per month (key, timestamp, floats),
    no column statistics of the lists (min/max of list leaves serve no reader), and list
    values BYTE_STREAM_SPLIT-encoded under ``HISTORY_COMPRESSION``. A :class:`MonthRows`
    is written one row group at a time, its lists gathered just before they are encoded.
    Schema metadata (the source fingerprint, see
    :func:`assets_pkg.summary.build.month_fingerprints`) is stored in the file.

    ``keep``: a local path that gets the same bytes (a hard link to the temp before it is
    published): the run's checks read the months it wrote there instead of from the store.
    ``row_group_rows``: rows per row group (a reader decodes one whole row group at a time).
    ``uploads``: an object store's PUT is queued there (see :func:`assets_pkg.io.atomic.atomic_path`).
    """
    path = as_path(path)
    if isinstance(rows, pa.RecordBatchReader):
        rows = _unless_empty(rows)
        if rows is None:
            return _remove(path)
    elif rows.num_rows == 0:
        return _remove(path)
    schema = rows.schema
    scalar = [f.name for f in schema if not pa.types.is_list(f.type)]
    key = schema.names[0]
    repetitive = [f.name for f in schema if f.name in scalar and f.name != key
                  and (pa.types.is_string(f.type) or pa.types.is_integer(f.type))]
    # per-column codecs are keyed by leaf path: "<name>.list.element" for the lists
    codecs = {f.name: SCALAR_COMPRESSION for f in schema if f.name in scalar}
    lists = [f"{f.name}.list.element" for f in schema if f.name not in scalar]
    codecs.update({leaf: HISTORY_COMPRESSION for leaf in lists})
    written = 0
    with atomic_path(path, uploads) as tmp:
        with pq.ParquetWriter(tmp, schema, compression=codecs, use_dictionary=repetitive,
                              use_byte_stream_split=lists, write_statistics=scalar,
                              data_page_size=DATA_PAGE_BYTES) as writer:
            for batch in _batches(rows, row_group_rows):
                writer.write_batch(batch, row_group_size=row_group_rows)
                written += batch.num_rows
        size = tmp.stat().st_size  # what is published: no second look at the store
        if keep is not None:
            keep.unlink(missing_ok=True)
            os.link(tmp, keep)
    return WriteResult(path=path, rows=written, bytes=size)


def _remove(path: Path) -> WriteResult:
    """An empty month: no file (an older one is deleted)."""
    path.unlink(missing_ok=True)
    return WriteResult(path=None, rows=0, bytes=0)


def _batches(rows: "pa.Table | MonthRows | pa.RecordBatchReader", rows_per_batch: int):
    if isinstance(rows, pa.RecordBatchReader):
        return rows  # as they come: a batch above rows_per_batch rows makes several row groups
    return rows.batches(rows_per_batch) if isinstance(rows, MonthRows) else rows.to_batches(rows_per_batch)


def _unless_empty(reader: pa.RecordBatchReader) -> pa.RecordBatchReader | None:
    """``reader`` with its first batch holding a row put back in front; None if it has none."""
    for batch in reader:
        if batch.num_rows:
            return pa.RecordBatchReader.from_batches(reader.schema, itertools.chain([batch], reader))
    return None


# A fan-out run's staged month of one bucket (:mod:`assets_pkg.summary.fanout`) is written
# once and read once, by the combine that publishes the month: Arrow IPC with LZ4 buffers
# instead of the month file's Parquet. For a month of 843k accounts: written in 0.78 CPU-s
# and read in 0.18, against 1.36 and 0.71 for Parquet, for 1.36x the bytes (bench/NOTES.md
# "Summary key-range buckets").
STAGED_SUFFIX = ".arrow"
STAGED_COMPRESSION = "lz4"
STAGED_BATCH_ROWS = 16_384


def write_staged_file(rows: "pa.Table | MonthRows", path: Path) -> WriteResult:
    """Write one bucket's month to staging atomically (empty: delete the old file); the
    schema metadata (the source fingerprint) is kept as :func:`write_month_file` keeps it."""
    path = as_path(path)
    if rows.num_rows == 0:
        return _remove(path)
    options = ipc.IpcWriteOptions(compression=STAGED_COMPRESSION)
    with atomic_path(path) as tmp:
        with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, rows.schema, options=options) as writer:
            for batch in _batches(rows, STAGED_BATCH_ROWS):
                writer.write_batch(batch)
        size = tmp.stat().st_size
    return WriteResult(path=path, rows=rows.num_rows, bytes=size)


def _is_staged(path) -> bool:
    return str(path).endswith(STAGED_SUFFIX)


def file_schema(path) -> pa.Schema:
    """The schema of a month file or of a staged month."""
    return arrow_file(path).schema if _is_staged(path) else parquet_file(path).schema_arrow


FINGERPRINT_KEY = b"assets_pkg.summary.source"


def file_fingerprint(path: Path) -> str | None:
    try:
        meta = file_schema(path).metadata or {}
    except (OSError, pa.ArrowException):
        return None
    value = meta.get(FINGERPRINT_KEY)
    return value.decode() if value else None


def read_history_columns(path: Path, cfg: SummarySettings) -> pa.Table | None:
    """The key and the history value columns of a month file or of a staged month; None when
    it cannot be read."""
    columns = [cfg.key_column, *cfg.history_columns]
    try:
        if _is_staged(path):
            return arrow_file(path).read_all().select(columns)
        return read_table(path, columns=columns)
    except (OSError, pa.ArrowException, KeyError):
        return None
