"""Build monthly summary tables with history arrays (no dagster import).

Each output month M is a pure function of the source: the winning record of every account
at M, and for each history column C an array ``C_history`` of length L (36) whose ``[i]``
is the winning value at month M - i, NULL where the account has no record (or a NULL
value). Recomputing any set of months in any order gives the same files as a full rebuild.

How it stays fast and bounded: the winners are streamed from DuckDB ordered by month, a
chunk of months per query (bounded by ``max_rows_per_query``); a ring buffer of L month
slots per account (numpy, ``accounts x L`` values + validity per history column) holds the
last L months, so each month's arrays are a single gather. Memory depends on the number of
accounts and L, not on how many months are built. Each finished month is handed to
``write_month`` (in a background thread, so encoding Parquet overlaps the next month; at
most ``writers`` month tables are queued).

A range that starts after the first month needs the L-1 months before it only to fill the
ring. Each month file carries a fingerprint of what decides its winners (the batch files
holding records of that month, by name, size and mtime, and the value settings); a month
whose file carries the current fingerprint is read back from that file (key + history
value columns, no list decoding) instead of aggregating the source again. A stale, foreign
or missing file falls back to the source, so the result is the same either way.
"""

import hashlib
import json
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from assets_pkg.io import WriteResult, atomic_path

from assets_pkg.obs import log_event, peak_rss_mb
from assets_pkg.summary.config import SummarySettings
from assets_pkg.summary.months import month_index, month_str
from assets_pkg.summary.source import Source, month_chunks

_NUMPY_TYPES = {"DOUBLE": np.float64, "FLOAT": np.float32, "BIGINT": np.int64, "INTEGER": np.int32}
_ARROW_TYPES = {"DOUBLE": pa.float64(), "FLOAT": pa.float32(), "BIGINT": pa.int64(), "INTEGER": pa.int32()}


@dataclass
class BuildStats:
    months_written: list[str] = field(default_factory=list)
    rows_per_month: dict[str, int] = field(default_factory=dict)
    bytes_per_month: dict[str, int] = field(default_factory=dict)
    rows: int = 0
    source_rows_read: int = 0
    queries: int = 0
    seeded_months: int = 0  # history months read from current month files instead of the source
    seconds: float = 0.0
    peak_rss_mb: float = 0.0

    def metadata(self) -> dict:
        rate = self.rows / self.seconds if self.seconds else 0.0
        return {
            "dagster/row_count": self.rows,
            "months": len(self.rows_per_month),
            "source_rows_read": self.source_rows_read,
            "seeded_months": self.seeded_months,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(rate, 1),
            "peak_rss_mb": self.peak_rss_mb,
        }


class HistoryRing:
    """The last L months of every account.

    Month M lives in column ``p = (-M) mod L`` (L columns: ``accounts x L`` values + validity
    per history column), so the window ``M, M-1, ..., M-L+1`` is columns ``p, p+1, ...``
    (mod L): the history arrays of a month are one row x column gather (``np.ix_``), already
    in order ``[0] = M``. (A 2L-column layout made the window a plain slice but doubled the
    memory; the gather costs the same, measured.)
    """

    def __init__(self, length: int, dtypes: list, capacity: int = 1024):
        self.length = length
        self.keys: pa.Array | None = None
        self.n = 0
        self.values = [np.zeros((capacity, length), dtype=t) for t in dtypes]
        self.valid = [np.zeros((capacity, length), dtype=bool) for _ in dtypes]

    def _pos(self, month: int) -> int:
        return (-month) % self.length

    def index(self, keys: pa.Array) -> np.ndarray:
        """Row index of each key, adding keys seen for the first time."""
        if self.keys is not None and keys.type != self.keys.type:
            keys = keys.cast(self.keys.type)
        if self.keys is None or len(self.keys) == 0:
            idx = pa.nulls(len(keys), pa.int32())
        else:
            idx = pc.index_in(keys, value_set=self.keys)
        if idx.null_count:
            new_keys = pc.unique(pc.filter(keys, pc.is_null(idx)))
            self._grow(self.n + len(new_keys))
            self.keys = new_keys if self.keys is None else pa.concat_arrays([self.keys, new_keys])
            self.n = len(self.keys)
            idx = pc.index_in(keys, value_set=self.keys)
        return idx.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)

    def _grow(self, need: int) -> None:
        cap = self.values[0].shape[0]
        if need <= cap:
            return
        new_cap = max(need, cap * 2)
        for j in range(len(self.values)):
            for arrays in (self.values, self.valid):
                grown = np.zeros((new_cap, arrays[j].shape[1]), dtype=arrays[j].dtype)
                grown[:cap] = arrays[j]
                arrays[j] = grown

    def clear(self, month: int) -> None:
        p = self._pos(month)
        for valid in self.valid:
            valid[:, p] = False

    def put(self, month: int, idx: np.ndarray, columns: list[pa.Array]) -> None:
        """Forget month ``month - L`` (same slot) and store this month's values."""
        self.clear(month)
        p = self._pos(month)
        for j, arr in enumerate(columns):
            self.values[j][idx, p] = pc.fill_null(arr, 0).to_numpy(zero_copy_only=False)
            self.valid[j][idx, p] = arr.is_valid().to_numpy(zero_copy_only=False)

    def gather(self, month: int, idx: np.ndarray, j: int, arrow_type: pa.DataType) -> pa.ListArray:
        """History arrays for the accounts at rows ``idx``: ``[i]`` is month - i."""
        p = self._pos(month)
        n = len(idx)
        window = np.ix_(idx, (p + np.arange(self.length)) % self.length)
        vals = self.values[j][window].ravel()
        bitmap = np.packbits(self.valid[j][window].ravel(), bitorder="little")
        flat = pa.Array.from_buffers(
            arrow_type, n * self.length, [pa.py_buffer(bitmap), pa.py_buffer(vals)], null_count=-1
        )
        offsets = pa.array(np.arange(0, (n + 1) * self.length, self.length, dtype=np.int32))
        return pa.ListArray.from_arrays(offsets, flat)


def output_schema(cfg: SummarySettings, key_type: pa.DataType) -> pa.Schema:
    fields = [
        pa.field(cfg.key_column, key_type),
        pa.field(cfg.month_column, pa.string()),
        pa.field(cfg.timestamp_column, pa.timestamp("us")),
    ]
    for col in cfg.all_value_columns:
        fields.append(pa.field(col, _ARROW_TYPES.get(cfg.value_type(col), pa.string())))
    for col in cfg.history_columns:
        fields.append(pa.field(cfg.history_name(col), pa.list_(_ARROW_TYPES[cfg.value_type(col)])))
    return pa.schema(fields)


# Parquet codecs of the month files. Encoding the 2 x 36 list values per row is most of the
# build's CPU; measured on a real 843k-row month (1M accounts; pyarrow; CPU s, file size):
#   zstd + statistics (before) 2.6-2.9 s 171 MB | lists zstd, no list stats 2.4 s 171 MB |
#   lists snappy 1.55 s 207 MB | lists lz4 1.85 s 200 MB | lists uncompressed 1.23 s 366 MB
# Uncompressed lists cost less CPU per file but write 2x the bytes (22 GB for 45M rows):
# at full size the initial build got no faster (page cache / disk), so lists are snappy.
SCALAR_COMPRESSION = "zstd"
HISTORY_COMPRESSION = "snappy"


def write_month_file(table: pa.Table, path: Path) -> WriteResult:
    """Publish one month atomically (empty: delete the old file).

    Like :func:`assets_pkg.io.write_table`, but tuned for the history lists: no dictionary
    encoding (dictionary attempts on 36 values per row cost ~30% of the build time), no
    column statistics (min/max of list leaves serve no reader) and
    ``HISTORY_COMPRESSION``. Schema metadata of ``table`` (the source fingerprint, see
    :func:`month_fingerprints`) is stored in the file.
    """
    path = Path(path)
    if table.num_rows == 0:
        path.unlink(missing_ok=True)
        return WriteResult(path=None, rows=0, bytes=0)
    scalar = [f.name for f in table.schema if not pa.types.is_list(f.type)]
    # per-column codecs are keyed by leaf path: "<name>.list.element" for the lists
    codecs = {f.name: SCALAR_COMPRESSION for f in table.schema if f.name in scalar}
    codecs.update({f"{f.name}.list.element": HISTORY_COMPRESSION for f in table.schema if f.name not in scalar})
    with atomic_path(path) as tmp:
        pq.write_table(
            table, tmp, compression=codecs, use_dictionary=scalar, write_statistics=scalar, row_group_size=262_144
        )
    return WriteResult(path=path, rows=table.num_rows, bytes=path.stat().st_size)


FINGERPRINT_KEY = b"assets_pkg.summary.source"


def month_fingerprints(source: Source) -> dict[int, str]:
    """For each month with good records: a hash of what decides that month's winners, i.e.
    the settings that shape values and the (name, size, mtime) of every batch file holding
    good records of the month. A month file carrying the current fingerprint holds exactly
    the winners the source gives for that month now."""
    cfg = source.cfg
    settings = cfg.to_dict()
    for name in ("max_rows_per_query", "history_length", "source_dir"):
        settings.pop(name, None)
    by_month: dict[int, list] = {}
    identity = {f.name: f.identity for f in source.files}
    for name, months in source.profile().file_months.items():
        for m in months:
            by_month.setdefault(m, []).append((name, identity.get(name)))
    out = {}
    for m, files in by_month.items():
        text = json.dumps({"v": 1, "settings": settings, "month": m, "files": sorted(files)}, sort_keys=True, default=str)
        out[m] = hashlib.sha256(text.encode()).hexdigest()
    return out


def file_fingerprint(path: Path) -> str | None:
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowException):
        return None
    value = meta.get(FINGERPRINT_KEY)
    return value.decode() if value else None


def key_arrow_type(cfg: SummarySettings) -> pa.DataType:
    return pa.int64() if cfg.key_type == "BIGINT" else pa.string()


def build_months(
    source: Source,
    start: str,
    end: str,
    write_month: Callable[[str, pa.Table], object],
    accounts: list | None = None,
    logger=None,
    progress_seconds: float = 10.0,
    writers: int = 2,
    month_path: Callable[[str], Path] | None = None,
) -> BuildStats:
    """Compute months ``start..end`` from ``source`` and hand each to ``write_month(month,
    table)`` in month order. Every month in the range is handed over, empty ones too (so the
    writer can delete a stale file). ``accounts`` limits the rows to those accounts (the
    caller merges them into the existing files).

    ``write_month`` may return an object with ``rows`` and ``bytes`` (a ``WriteResult``).

    ``month_path``: where the month files live. The L-1 months before ``start`` only fill the
    history window; a month whose file carries the current source fingerprint (same batch
    files, same settings) is read from that file (key + history value columns) instead of
    aggregating the source again. Any other month falls back to the source. Each table
    handed to ``write_month`` carries its month's fingerprint as schema metadata.
    """
    cfg = source.cfg
    for col in cfg.history_columns:
        if cfg.value_type(col) not in _NUMPY_TYPES:
            raise ValueError(f"history column {col!r} must be numeric, its type is {cfg.value_type(col)}")
    started = time.perf_counter()
    stats = BuildStats()
    start_i, end_i = month_index(start), month_index(end)
    if end_i < start_i:
        return stats
    L = cfg.history_length
    profile = source.profile()
    lo = max(start_i - (L - 1), cfg.first_month_index)
    fingerprints = month_fingerprints(source)
    value_cols = list(cfg.all_value_columns)
    hist_pos = [value_cols.index(c) for c in cfg.history_columns]
    hist_types = [_ARROW_TYPES[cfg.value_type(c)] for c in cfg.history_columns]
    ring = HistoryRing(L, [_NUMPY_TYPES[cfg.value_type(c)] for c in cfg.history_columns])
    schema = output_schema(cfg, key_arrow_type(cfg))
    total_out_months = end_i - start_i + 1
    pool = ThreadPoolExecutor(max_workers=writers, thread_name_prefix="summary-write")
    pending: list[tuple[str, Future]] = []
    key_name = cfg.key_column
    last_progress = time.perf_counter()

    def finish(month: str, fut: Future) -> None:
        result = fut.result()
        rows = int(getattr(result, "rows", 0) or 0)
        stats.rows += rows
        stats.rows_per_month[month] = rows
        stats.bytes_per_month[month] = int(getattr(result, "bytes", 0) or 0)
        if rows:
            stats.months_written.append(month)

    def _assemble(table: pa.Table, idx: np.ndarray, month_i: int, month: str) -> pa.Table:
        arrays = [
            table.column(0).combine_chunks().cast(schema.field(0).type),
            pa.array([month], type=pa.string()).take(np.zeros(table.num_rows, dtype=np.int32)),
            table.column(1).combine_chunks().cast(pa.timestamp("us")),
        ]
        for k in range(len(value_cols)):
            arrays.append(table.column(2 + k).combine_chunks().cast(schema.field(3 + k).type))
        for j, t in enumerate(hist_types):
            arrays.append(ring.gather(month_i, idx, j, t))
        out = pa.Table.from_arrays(arrays, schema=schema)
        fp = fingerprints.get(month_i)
        return out.replace_schema_metadata({FINGERPRINT_KEY: fp.encode()}) if fp else out

    def emit(month_i: int, table: pa.Table | None) -> None:
        nonlocal last_progress
        month = month_str(month_i)
        if table is None or table.num_rows == 0:
            ring.clear(month_i)
            if month_i < start_i:
                return
            out = schema.empty_table()
        else:
            idx = ring.index(table.column(0).combine_chunks())
            ring.put(month_i, idx, [table.column(2 + p).combine_chunks() for p in hist_pos])
            if month_i < start_i:
                return
            out = _assemble(table, idx, month_i, month)
        while len(pending) >= writers:  # at most `writers` month tables queued or being written
            finish(*pending.pop(0))
        pending.append((month, pool.submit(write_month, month, out)))
        now = time.perf_counter()
        if logger is not None and now - last_progress >= progress_seconds:
            last_progress = now
            done = month_i - start_i + 1
            elapsed = now - started
            log_event(
                "summary_build_progress", logger, month=month, months_done=done, months_total=total_out_months,
                rows=stats.rows, rows_per_second=round(stats.rows / elapsed, 1) if elapsed else None,
                eta_seconds=round(elapsed / done * (total_out_months - done), 1) if done else None,
            )

    def seed(month_i: int) -> bool:
        """Fill the ring for a month before ``start`` from its month file, if current."""
        if profile.rows_per_month.get(month_i, 0) == 0:
            return True  # no good records: the month is empty, nothing to remember
        if month_path is None or accounts is not None:
            return False
        path = Path(month_path(month_str(month_i)))
        fp = fingerprints.get(month_i)
        if fp is None or not path.is_file() or file_fingerprint(path) != fp:
            return False
        try:
            table = pq.read_table(path, columns=[key_name, *cfg.history_columns])
        except (OSError, pa.ArrowException, KeyError):
            return False
        idx = ring.index(table.column(0).combine_chunks())
        ring.put(month_i, idx, [table.column(1 + j).combine_chunks() for j in range(len(hist_pos))])
        stats.seeded_months += 1
        return True

    try:
        source_months = [m for m in range(lo, start_i) if not seed(m)] + list(range(start_i, end_i + 1))
        chunks = []
        for r_lo, r_hi in _runs(source_months):
            chunks += month_chunks(profile.rows_per_month, r_lo, r_hi, cfg.max_rows_per_query)
        for c_lo, c_hi in chunks:
            stats.queries += 1
            rel = source.winners(c_lo, c_hi, accounts)
            reader = rel.to_arrow_reader(262_144)
            current = c_lo
            parts: list[pa.RecordBatch] = []
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                stats.source_rows_read += batch.num_rows
                months_col = batch.column(1)
                # split the batch at month boundaries (rows are ordered by month)
                uniq = pc.unique(months_col).to_pylist()
                for m in sorted(uniq):
                    while current < m:
                        emit(current, _concat(parts, batch.schema))
                        parts = []
                        current += 1
                    mask = pc.equal(months_col, m)
                    parts.append(batch.filter(mask))
            while current <= c_hi:
                emit(current, _concat(parts, None))
                parts = []
                current += 1
        while pending:
            finish(*pending.pop(0))
    finally:
        for _, fut in pending:
            fut.cancel()
        pool.shutdown(wait=True)
    stats.seconds = time.perf_counter() - started
    stats.peak_rss_mb = peak_rss_mb()
    return stats


def _runs(months: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs of sorted month indexes: [1, 2, 3, 7, 8] -> [(1, 3), (7, 8)]."""
    runs: list[tuple[int, int]] = []
    for m in months:
        if runs and runs[-1][1] == m - 1:
            runs[-1] = (runs[-1][0], m)
        else:
            runs.append((m, m))
    return runs


def _concat(parts: list[pa.RecordBatch], schema) -> pa.Table | None:
    if not parts:
        return None
    table = pa.Table.from_batches(parts)
    # drop the month index column: (key, month_idx, ts, values...) -> (key, ts, values...)
    return table.remove_column(1)
