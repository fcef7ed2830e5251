"""Build monthly summary tables with history arrays (no dagster import).

Each output month M is a pure function of the source: the winning record of every account
at M, and for each history column C an array ``C_history`` of length L (36) whose ``[i]``
is the winning value at month M - i, NULL where the account has no record (or a NULL
value). Recomputing any set of months in any order gives the same files as a full rebuild.

How it stays fast and bounded: the winners are streamed from DuckDB ordered by month, a
chunk of months per query (bounded by ``max_rows_per_query``); a ring of month slots per
account (:class:`HistoryRing`, numpy values + validity per history column) holds the last
L months. Each month is handed to ``write_month`` as :class:`MonthRows` in a background
thread (at most ``writers`` queued), which gathers its history arrays from the ring one row
group at a time while encoding Parquet, so the main thread moves on to the next month.
Memory depends on the number of accounts and L, not on how many months are built.

A range that starts after the first month needs the L-1 months before it only to fill the
ring. Each month file carries a fingerprint of what decides its winners (the batch files
holding records of that month, by name, size and mtime, and the value settings); a month
whose file carries the current fingerprint is read back from that file (key + history
value columns, no list decoding) instead of aggregating the source again. A stale, foreign
or missing file falls back to the source, so the result is the same either way.
"""

import hashlib
import json
import threading
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


class KeyIndex:
    """Account key -> ring row, rows handed out in first-seen order.

    Integer keys keep a sorted copy of the keys with their rows, so a month's lookup is a
    ``searchsorted`` and new keys are merged in (``pc.index_in`` rebuilt a hash set of every
    key seen so far on each call: 5% of the build at 1M accounts). Other key types use
    ``index_in``.
    """

    def __init__(self):
        self.keys: pa.Array | None = None  # in row order
        self._sorted: np.ndarray | None = None
        self._rows: np.ndarray | None = None

    def __len__(self) -> int:
        return 0 if self.keys is None else len(self.keys)

    def lookup(self, keys: pa.Array) -> np.ndarray:
        """Row of each key; keys seen for the first time get the next rows."""
        if self.keys is not None and keys.type != self.keys.type:
            keys = keys.cast(self.keys.type)
        if pa.types.is_integer(keys.type):  # the same path for every call: they keep different state
            if keys.null_count:
                raise ValueError("account keys must not be null")
            return self._lookup_sorted(keys.to_numpy(zero_copy_only=False))
        if not len(self):
            idx = pa.nulls(len(keys), pa.int32())
        else:
            idx = pc.index_in(keys, value_set=self.keys)
        if idx.null_count:
            self._append(pc.unique(pc.filter(keys, pc.is_null(idx))))
            idx = pc.index_in(keys, value_set=self.keys)
        return idx.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)

    def _find(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._sorted is None or not len(self._sorted):
            return np.zeros(len(values), dtype=np.int64), np.zeros(len(values), dtype=bool)
        pos = np.searchsorted(self._sorted, values)
        found = self._sorted[np.minimum(pos, len(self._sorted) - 1)] == values
        return pos, found

    def _lookup_sorted(self, values: np.ndarray) -> np.ndarray:
        if not len(values):
            return np.zeros(0, dtype=np.int64)
        pos, found = self._find(values)
        if not found.all():
            new = np.unique(values[~found])
            first_row = len(self)
            self._append(pa.array(new, type=self.keys.type if self.keys is not None else None))
            new_rows = np.arange(first_row, first_row + len(new), dtype=np.int64)
            if self._sorted is None:
                self._sorted, self._rows = new, new_rows
            else:
                at = np.searchsorted(self._sorted, new)
                self._sorted = np.insert(self._sorted, at, new)
                self._rows = np.insert(self._rows, at, new_rows)
            pos, found = self._find(values)
        return self._rows[pos]

    def _append(self, new_keys: pa.Array) -> None:
        self.keys = new_keys if self.keys is None else pa.concat_arrays([self.keys, new_keys])


class HistoryRing:
    """The last L months of every account, plus ``lag`` months of slack.

    The ring has ``D = L + lag`` month slots; month M lives in slot ``p = (-M) mod D`` and
    again in ``p + D`` (``accounts x 2D`` values + validity per history column), so the
    window ``M, M-1, ..., M-L+1`` of an account is the contiguous slice ``[p, p + L)`` of
    its row, already in order ``[0] = M``: a month's history arrays are a row ``take`` and
    one slice copy, 3x faster than the row x column gather of an L-column ring (measured;
    that gather was a third of the build), for twice the memory.

    The slack lets month M's window be read while months M+1 .. M+lag are being stored
    (they use slots outside it), so a writer thread gathers M's arrays batch by batch as
    it encodes them instead of the main thread materializing whole months (that held
    ~0.4 GB per queued month at 1M accounts).
    """

    def __init__(self, length: int, dtypes: list, capacity: int = 1024, lag: int = 0):
        self.length = length
        self.depth = length + lag
        self.accounts = KeyIndex()
        self.values = [np.zeros((capacity, 2 * self.depth), dtype=t) for t in dtypes]
        self.valid = [np.zeros((capacity, 2 * self.depth), dtype=bool) for _ in dtypes]

    def _pos(self, month: int) -> int:
        return (-month) % self.depth

    def index(self, keys: pa.Array) -> np.ndarray:
        """Row index of each key, adding keys seen for the first time."""
        idx = self.accounts.lookup(keys)
        self._grow(len(self.accounts))
        return idx

    def _grow(self, need: int) -> None:
        """New, larger arrays (the old ones stay intact for windows still being read)."""
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
            valid[:, p + self.depth] = False

    def put(self, month: int, idx: np.ndarray, columns: list[pa.Array]) -> None:
        """Forget month ``month - D`` (same slot) and store this month's values."""
        self.clear(month)
        p = self._pos(month)
        for j, arr in enumerate(columns):
            values = pc.fill_null(arr, 0).to_numpy(zero_copy_only=False)
            valid = arr.is_valid().to_numpy(zero_copy_only=False)
            for slot in (p, p + self.depth):
                self.values[j][idx, slot] = values
                self.valid[j][idx, slot] = valid

    def window(self, month: int, idx: np.ndarray, arrow_types: list[pa.DataType]) -> "HistoryWindow":
        """Month ``month``'s history arrays for the accounts at rows ``idx``, gathered on
        demand; valid while fewer than ``lag`` later months have been stored."""
        return HistoryWindow(self.length, self._pos(month), idx, list(self.values), list(self.valid), arrow_types)


class HistoryWindow:
    """The history arrays of one month, cut from the ring's arrays (captured at creation)."""

    _scratch = threading.local()  # per writer thread: buffers reused batch after batch

    def __init__(self, length: int, pos: int, idx: np.ndarray, values: list, valid: list, types: list):
        self.length, self.pos, self.idx = length, pos, idx
        self.values, self.valid, self.types = values, valid, types

    def _array(self, name: str | None, shape: tuple, dtype) -> np.ndarray:
        """A buffer of ``shape``: fresh, or this thread's reusable one called ``name``
        (fresh pages for every batch cost the kernel more time zeroing than the copy)."""
        if name is None:
            return np.empty(shape, dtype=dtype)
        pool = self._scratch.__dict__
        size = int(np.prod(shape))
        buf = pool.get(name)
        if buf is None or buf.size < size or buf.dtype != dtype:
            buf = pool[name] = np.empty(size, dtype=dtype)
        return buf[:size].reshape(shape)

    def _take(self, ring: np.ndarray, rows: np.ndarray, reuse: str | None) -> np.ndarray:
        """``ring[rows, pos:pos + L]``, flattened: whole rows are taken (a memcpy each),
        then the window is cut out. Measured against ``ring[np.ix_(rows, cols)]`` (3x
        slower) and a take of fixed-size records over the strided window (numpy copies
        the whole ring to make it contiguous first, on every call)."""
        wide = self._array(reuse and reuse + "_rows", (len(rows), ring.shape[1]), ring.dtype)
        np.take(ring, rows, axis=0, out=wide, mode="clip")  # "raise" would copy through a temp
        out = self._array(reuse, (len(rows), self.length), ring.dtype)
        out[:] = wide[:, self.pos:self.pos + self.length]
        return out.reshape(-1)

    def lists(self, j: int, start: int, stop: int, reuse: bool = False) -> pa.ListArray:
        """Rows ``start:stop`` of history column ``j``. With ``reuse`` the values live in a
        per-thread buffer that the next call on this thread overwrites."""
        rows = self.idx[start:stop]
        n = len(rows)
        vals = self._take(self.values[j], rows, f"values{j}" if reuse else None)
        bitmap = np.packbits(self._take(self.valid[j], rows, f"valid{j}" if reuse else None), bitorder="little")
        flat = pa.Array.from_buffers(
            self.types[j], n * self.length, [pa.py_buffer(bitmap), pa.py_buffer(vals)], null_count=-1
        )
        offsets = pa.array(np.arange(0, (n + 1) * self.length, self.length, dtype=np.int32))
        return pa.ListArray.from_arrays(offsets, flat)


class MonthRows:
    """One month's summary rows: the scalar columns, and the history lists gathered from
    the ring batch by batch (``batches``) or all at once (``to_table``)."""

    def __init__(self, schema: pa.Schema, scalars: list[pa.Array], window: HistoryWindow | None):
        self.schema, self.scalars, self.window = schema, scalars, window
        self.num_rows = len(scalars[0]) if scalars else 0

    def _batch(self, start: int, stop: int, reuse: bool) -> pa.RecordBatch:
        arrays = [a.slice(start, stop - start) for a in self.scalars]
        arrays += [self.window.lists(j, start, stop, reuse) for j in range(len(self.window.types))]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def batches(self, rows: int):
        """Record batches of at most ``rows`` rows; each is valid until the next one is made
        on the same thread (write it, don't keep it)."""
        for start in range(0, self.num_rows, rows):
            yield self._batch(start, min(start + rows, self.num_rows), reuse=True)

    def to_table(self) -> pa.Table:
        if not self.num_rows:
            return self.schema.empty_table()
        return pa.Table.from_batches([self._batch(0, self.num_rows, reuse=False)], schema=self.schema)


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
# (Re-measured with uncompressed float lists only: -9% CPU for +37% bytes; not taken.)
SCALAR_COMPRESSION = "zstd"
HISTORY_COMPRESSION = "snappy"

# Rows per row group, written one batch at a time: the writer's level buffers for 64k rows
# are reused by the allocator, 256k-row ones were fresh (zeroed) pages every time: 256k ->
# 64k took the initial build's kernel time from 14 s to 8.5 s and its peak RSS from 3.1 GB
# to 2.3 GB (1M accounts).
ROW_GROUP_ROWS = 65_536


def write_month_file(rows: "pa.Table | MonthRows", path: Path) -> WriteResult:
    """Publish one month atomically (empty: delete the old file).

    Like :func:`assets_pkg.io.write_table`, but tuned for the history lists: no dictionary
    encoding of the lists (dictionary attempts on 36 values per row cost ~30% of the build
    time) nor of scalars that are unique or nearly so per month (key, timestamp, floats:
    the memo tables were 2% of the build), no column statistics of the lists (min/max of
    list leaves serve no reader) and ``HISTORY_COMPRESSION``. A :class:`MonthRows` is
    written one row group at a time, its lists gathered just before they are encoded.
    Schema metadata (the source fingerprint, see :func:`month_fingerprints`) is stored in
    the file.
    """
    path = Path(path)
    if rows.num_rows == 0:
        path.unlink(missing_ok=True)
        return WriteResult(path=None, rows=0, bytes=0)
    schema = rows.schema
    scalar = [f.name for f in schema if not pa.types.is_list(f.type)]
    key = schema.names[0]
    repetitive = [f.name for f in schema if f.name in scalar and f.name != key
                  and (pa.types.is_string(f.type) or pa.types.is_integer(f.type))]
    # per-column codecs are keyed by leaf path: "<name>.list.element" for the lists
    codecs = {f.name: SCALAR_COMPRESSION for f in schema if f.name in scalar}
    codecs.update({f"{f.name}.list.element": HISTORY_COMPRESSION for f in schema if f.name not in scalar})
    batches = rows.batches(ROW_GROUP_ROWS) if isinstance(rows, MonthRows) else rows.to_batches(ROW_GROUP_ROWS)
    with atomic_path(path) as tmp:
        with pq.ParquetWriter(tmp, schema, compression=codecs, use_dictionary=repetitive,
                              write_statistics=scalar) as writer:
            for batch in batches:
                writer.write_batch(batch, row_group_size=ROW_GROUP_ROWS)
    return WriteResult(path=path, rows=rows.num_rows, bytes=path.stat().st_size)


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

    ``write_month`` gets a :class:`MonthRows` (``write_month_file`` writes it; ``to_table()``
    materializes it) that is valid until ``write_month`` returns: its history arrays are
    read from the ring, which later months overwrite. It may return an object with
    ``rows`` and ``bytes`` (a ``WriteResult``).

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
    # at most `writers` months are queued or being written while the next one is stored;
    # every account of the fullest month gets a row, so start there (growing by doubling
    # from a small ring copied it ~10 times: 1 s of an incremental run at 1M accounts)
    fullest = max((n for m, n in profile.rows_per_month.items() if lo <= m <= end_i), default=0)
    if accounts is not None:
        fullest = min(fullest, len(accounts))
    ring = HistoryRing(L, [_NUMPY_TYPES[cfg.value_type(c)] for c in cfg.history_columns],
                       capacity=max(1024, fullest), lag=writers)
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

    def _assemble(columns: list[pa.Array], idx: np.ndarray, month_i: int, month: str) -> MonthRows:
        scalars = [
            columns[0].cast(schema.field(0).type),
            pa.array([month], type=pa.string()).take(np.zeros(len(idx), dtype=np.int32)),
            columns[1].cast(pa.timestamp("us")),
        ]
        for k in range(len(value_cols)):
            scalars.append(columns[2 + k].cast(schema.field(3 + k).type))
        fp = fingerprints.get(month_i)
        month_schema = schema.with_metadata({FINGERPRINT_KEY: fp.encode()}) if fp else schema
        return MonthRows(month_schema, scalars, ring.window(month_i, idx, hist_types))

    def emit(month_i: int, table: pa.Table | None) -> None:
        nonlocal last_progress
        month = month_str(month_i)
        if table is None or table.num_rows == 0:
            ring.clear(month_i)
            if month_i < start_i:
                return
            out = MonthRows(schema, [], None)
        else:
            columns = [c.combine_chunks() for c in table.columns]  # (key, ts, values...)
            idx = ring.index(columns[0])
            ring.put(month_i, idx, [columns[2 + p] for p in hist_pos])
            if month_i < start_i:
                return
            out = _assemble(columns, idx, month_i, month)
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
