"""The summary build loop: months ``start..end`` from the source, in month order (no dagster import).

Each output month M is a pure function of the source: the winning record of every account
at M, and for each history column C an array ``C_history`` of length L (36) whose ``[i]``
is the winning value at month M - i, NULL where the account has no record (or a NULL
value). Recomputing any set of months in any order gives the same files as a full rebuild.

How it stays fast and bounded: the winners are streamed from DuckDB ordered by month, a
chunk of months per query (bounded by ``max_rows_per_query``); the history ring
(:mod:`assets_pkg.summary.ring`) holds the last L months of every account. Each month is
handed to ``write_month`` as :class:`MonthRows` in a background thread (at most
``writers`` queued), which gathers its history arrays from the ring one row group at a
time while encoding Parquet (:mod:`assets_pkg.summary.month_file`), so the main thread
moves on to the next month.

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

from assets_pkg.obs import log_event, peak_rss_mb
from assets_pkg.storage import as_path
from assets_pkg.summary.month_file import (
    ARROW_TYPES,
    FINGERPRINT_KEY,
    file_fingerprint,
    key_arrow_type,
    output_schema,
    read_history_columns,
)
from assets_pkg.summary.months import contiguous_ranges, month_index, month_str
from assets_pkg.summary.ring import HistoryRing, MonthRows
from assets_pkg.summary.source import Source, month_chunks

_NUMPY_TYPES = {"DOUBLE": np.float64, "FLOAT": np.float32, "BIGINT": np.int64, "INTEGER": np.int32}


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
    hist_types = [ARROW_TYPES[cfg.value_type(c)] for c in cfg.history_columns]
    # at most `writers` months are queued or being written while the next one is stored;
    # every account of the fullest month gets a row, so start there (growing by doubling
    # from a small ring would copy it again and again)
    fullest = max((n for m, n in profile.rows_per_month.items() if lo <= m <= end_i), default=0)
    if accounts is not None:
        fullest = min(fullest, len(accounts))
    ring = HistoryRing(L, [_NUMPY_TYPES[cfg.value_type(c)] for c in cfg.history_columns],
                       capacity=max(1024, fullest), lag=writers)
    schema = output_schema(cfg, key_arrow_type(cfg))
    total_out_months = end_i - start_i + 1
    pool = ThreadPoolExecutor(max_workers=writers, thread_name_prefix="summary-write")
    pending: list[tuple[str, Future]] = []
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
        path = as_path(month_path(month_str(month_i)))
        fp = fingerprints.get(month_i)
        if fp is None or file_fingerprint(path) != fp:  # no file: no fingerprint
            return False
        table = read_history_columns(path, cfg)
        if table is None:
            return False
        idx = ring.index(table.column(0).combine_chunks())
        ring.put(month_i, idx, [table.column(1 + j).combine_chunks() for j in range(len(hist_pos))])
        stats.seeded_months += 1
        return True

    try:
        source_months = [m for m in range(lo, start_i) if not seed(m)] + list(range(start_i, end_i + 1))
        chunks = []
        for r_lo, r_hi in contiguous_ranges(map(month_str, source_months)):
            chunks += month_chunks(profile.rows_per_month, month_index(r_lo), month_index(r_hi), cfg.max_rows_per_query)
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


def _concat(parts: list[pa.RecordBatch], schema) -> pa.Table | None:
    if not parts:
        return None
    table = pa.Table.from_batches(parts)
    # drop the month index column: (key, month_idx, ts, values...) -> (key, ts, values...)
    return table.remove_column(1)
