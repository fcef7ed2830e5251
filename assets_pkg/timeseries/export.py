"""Write one day's merged table as user-facing files: Parquet (zstd) and CSV (gzip optional).

Pure module (no dagster import). The source (the merged partition's Parquet file) is read
in chunks and streamed into each writer, so memory stays at a few chunks. Every file is
written to a temp name and published atomically; progress with rate and ETA is logged as
``export_progress`` JSON events. gzip goes through ISA-L with two threads
(``isal.igzip_threaded``): several times faster than zlib or DuckDB's gzip COPY.

Files, under ``<data root>/exports/timeseries/``: ``<day>.parquet`` and ``<day>.csv.gz``
(or ``<day>.csv`` when ``csv_compression: none``). An empty day publishes nothing and
removes the day's old files.

On an object-store root each file is one object published by one complete PUT, not a
multi-object partition behind a commit: every file of a day is whole on its own (each holds
all the day's merged rows, which ``export_matches_merged`` verifies per file), users open
them by these names (DESIGN section 3, no ``_commit.json`` to read first), and between the
two PUTs a reader sees the old or the new version of each file, as between the two renames
of a local root.
"""

import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from assets_pkg.io.atomic import atomic_path
from assets_pkg.storage import as_path
from assets_pkg.storage.arrow import parquet_file
from assets_pkg.storage.objects import file_exists
from assets_pkg.obs import Stopwatch, log_event

CHUNK_ROWS = 262_144
GZIP_THREADS = 2
GZIP_LEVEL = 1
FORMAT_THREADS = 2


@dataclass(frozen=True)
class ExportFile:
    format: str  # parquet | csv
    path: Path
    rows: int
    bytes: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return round(self.rows / self.seconds, 1) if self.seconds > 0 else 0.0


def export_paths(out_dir: Path, day: str) -> dict:
    """Every file name a day may have (all formats/compressions), by kind."""
    out_dir = as_path(out_dir)
    return {
        "parquet": out_dir / f"{day}.parquet",
        "csv": out_dir / f"{day}.csv",
        "csv.gz": out_dir / f"{day}.csv.gz",
    }


def target_paths(out_dir: Path, day: str, formats, csv_compression: str) -> dict:
    paths = export_paths(out_dir, day)
    out = {}
    for fmt in formats:
        if fmt == "parquet":
            out["parquet"] = paths["parquet"]
        elif fmt == "csv":
            out["csv"] = paths["csv.gz"] if csv_compression == "gzip" else paths["csv"]
        else:
            raise ValueError(f"unknown export format {fmt!r}")
    return out


def remove_day_files(out_dir: Path, day: str, keep=()) -> list[Path]:
    removed = []
    for path in export_paths(out_dir, day).values():
        if path not in keep and file_exists(path):
            path.unlink()
            removed.append(path)
    return removed


class Progress:
    """Throttled ``export_progress`` events: rows, share, rate and ETA."""

    def __init__(self, fmt: str, total: int, logger=None, interval: float = 1.0, **fields):
        self.fmt, self.total, self.logger, self.interval, self.fields = fmt, total, logger, interval, fields
        self.watch = Stopwatch()
        self.last = -1e9
        self.events = 0

    def update(self, done: int, final: bool = False) -> None:
        now = time.perf_counter()
        if not final and now - self.last < self.interval:
            return
        self.last = now
        seconds = max(self.watch.seconds, 1e-9)
        rate = done / seconds
        eta = (self.total - done) / rate if rate > 0 else None
        self.events += 1
        log_event(
            "export_progress", self.logger, format=self.fmt, rows_written=done, rows_total=self.total,
            percent=round(100.0 * done / self.total, 1) if self.total else 100.0,
            rows_per_second=round(rate, 1), eta_seconds=round(eta, 2) if eta is not None else None,
            seconds=round(seconds, 3), done=final, **self.fields,
        )


def _batches(source_paths, chunk_rows: int):
    for path in source_paths:
        pf = parquet_file(path)
        yield from pf.iter_batches(batch_size=chunk_rows)


def source_rows(source_paths) -> int:
    return sum(parquet_file(p).metadata.num_rows for p in source_paths)


def write_parquet(batches, schema: pa.Schema, path: Path, progress: Progress, total: int) -> int:
    rows = 0
    dict_cols = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    with atomic_path(path) as tmp:
        writer = pq.ParquetWriter(tmp, schema, compression="zstd", use_dictionary=dict_cols or False)
        try:
            for batch in batches:
                writer.write_batch(batch)
                rows += batch.num_rows
                progress.update(rows)
        finally:
            writer.close()
    return rows


def _format_timestamps(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Pre-format tz-aware timestamp columns as text, the way pyarrow's CSV writer does
    (``2024-01-01 00:00:00.000000Z``) but once per distinct value: the writer's own
    per-row time-zone conversion costs more than all the other columns together, and a
    merged day repeats each bucket once per key."""
    for i, field in enumerate(batch.schema):
        if pa.types.is_timestamp(field.type) and field.type.tz:
            col = batch.column(i)
            ints = col.cast(pa.int64())  # UTC epoch values; formatted as naive UTC wall time (no tz database)
            distinct = pc.unique(ints)
            text = pc.binary_join_element_wise(
                pc.strftime(distinct.cast(pa.timestamp(field.type.unit)), format="%Y-%m-%d %H:%M:%S"), "Z", ""
            ) if field.type.tz.upper() in ("UTC", "Z", "+00:00") else None
            if text is None:  # another zone: let the writer format it
                continue
            formatted = pc.take(text, pc.index_in(ints, value_set=distinct))
            batch = batch.set_column(i, pa.field(field.name, pa.string(), field.nullable), formatted)
    return batch


_SPECIAL = r'[",\r\n]'


def _needs_quoting(batch: pa.RecordBatch) -> bool:
    """True when a text value (or a column name) holds a comma, quote or line break."""
    if any(ch in name for name in batch.schema.names for ch in ',"\r\n'):
        return True
    for col in batch.columns:
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            if pc.any(pc.match_substring_regex(col, _SPECIAL)).as_py():
                return True
    return False


def _csv_bytes(batch: pa.RecordBatch, header: bool = False) -> pa.Buffer:
    """One chunk as CSV text. Quoting only where a value needs it; when no value of the chunk
    does (numbers, timestamps, plain keys: the usual case) the writer skips the per-value scan."""
    sink = pa.BufferOutputStream()
    batch = _format_timestamps(batch)
    style = "needed" if _needs_quoting(batch) else "none"
    options = pacsv.WriteOptions(quoting_style=style, include_header=header)
    writer = pacsv.CSVWriter(sink, batch.schema, write_options=options)
    writer.write_batch(batch)
    writer.close()
    return sink.getvalue()


def write_csv(batches, schema: pa.Schema, path: Path, progress: Progress, gzip: bool) -> int:
    """CSV text is formatted per chunk on FORMAT_THREADS threads (pyarrow releases the GIL;
    number formatting is most of the cost) and written in order, so memory holds at most a
    few chunks; gzip runs in ISA-L's own threads."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    rows = 0
    with atomic_path(path) as tmp:
        if gzip:
            from isal import igzip_threaded

            sink = igzip_threaded.open(tmp, "wb", compresslevel=GZIP_LEVEL, threads=GZIP_THREADS)
        else:
            sink = open(tmp, "wb", buffering=1 << 20)
        try:
            sink.write(_csv_bytes(pa.RecordBatch.from_pylist([], schema=schema), header=True))
            with ThreadPoolExecutor(FORMAT_THREADS) as pool:
                pending: deque = deque()
                for batch in batches:
                    pending.append((batch.num_rows, pool.submit(_csv_bytes, batch)))
                    while len(pending) > FORMAT_THREADS:
                        rows = _drain(pending, sink, rows, progress)
                while pending:
                    rows = _drain(pending, sink, rows, progress)
        finally:
            sink.close()
    return rows


def _drain(pending, sink, rows: int, progress: Progress) -> int:
    n, future = pending.popleft()
    sink.write(future.result())
    rows += n
    progress.update(rows)
    return rows


def export_day(
    source_paths,
    out_dir: Path,
    day: str,
    formats=("parquet", "csv"),
    csv_compression: str = "gzip",
    logger=None,
    chunk_rows: int = CHUNK_ROWS,
    progress_interval: float = 1.0,
) -> list[ExportFile]:
    """Export the merged partition file(s) of ``day``. Returns one ExportFile per written file
    ([] for an empty day, whose old files are removed)."""
    source_paths = [as_path(p) for p in source_paths if file_exists(as_path(p))]
    out_dir = as_path(out_dir)
    targets = target_paths(out_dir, day, formats, csv_compression)
    total = source_rows(source_paths) if source_paths else 0
    if total == 0:
        removed = remove_day_files(out_dir, day)
        log_event("export_empty_day", logger, day=day, removed=[str(p) for p in removed])
        return []
    schema = parquet_file(source_paths[0]).schema_arrow
    written = []
    for fmt, path in targets.items():
        progress = Progress(fmt, total, logger, progress_interval, day=day, path=str(path))
        watch = Stopwatch()
        batches = _batches(source_paths, chunk_rows)
        if fmt == "parquet":
            rows = write_parquet(batches, schema, path, progress, total)
        else:
            rows = write_csv(batches, schema, path, progress, gzip=path.name.endswith(".gz"))
        progress.update(rows, final=True)
        written.append(ExportFile(fmt, path, rows, path.stat().st_size, watch.seconds))
    # A day has exactly the configured files: drop other formats/compressions left by earlier runs.
    remove_day_files(out_dir, day, keep=set(targets.values()))
    return written
