"""Summaries of a window: DuckDB over every segment intersecting it, as one dataset.

``row_count``, ``columns``, ``schema``, ``timestamp_min``/``timestamp_max`` and counts by
level, filtered to ``[start_ms, end_ms)``. Events fetched but not cached (freshness horizon,
BYPASS_CACHE) are folded in by :class:`SummaryAccumulator`, which keeps only counters.
"""

from collections import Counter
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from assets_pkg.duck import connect
from assets_pkg.logs.planner import ms_to_iso
from assets_pkg.logs.store import PART_SCHEMA, LogCacheError, Segment
from assets_pkg.obs import log_event
from assets_pkg.storage import as_path, is_remote
from assets_pkg.storage.arrow import register_filesystem

NULL_LEVEL = "(none)"


class SummaryError(LogCacheError):
    pass


@dataclass
class SummaryAccumulator:
    rows: int = 0
    ts_min: int | None = None
    ts_max: int | None = None
    levels: Counter = field(default_factory=Counter)

    def add(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        ts = batch.column("timestamp")
        mm = pc.min_max(ts).as_py()
        self.rows += batch.num_rows
        self.ts_min = mm["min"] if self.ts_min is None else min(self.ts_min, mm["min"])
        self.ts_max = mm["max"] if self.ts_max is None else max(self.ts_max, mm["max"])
        for item in pc.value_counts(batch.column("level")).to_pylist():
            self.levels[item["values"] if item["values"] is not None else NULL_LEVEL] += item["counts"]

    def merge(self, other: "SummaryAccumulator") -> "SummaryAccumulator":
        out = SummaryAccumulator(self.rows + other.rows, self.ts_min, self.ts_max, Counter(self.levels))
        for value in (other.ts_min,):
            if value is not None:
                out.ts_min = value if out.ts_min is None else min(out.ts_min, value)
        for value in (other.ts_max,):
            if value is not None:
                out.ts_max = value if out.ts_max is None else max(out.ts_max, value)
        out.levels.update(other.levels)
        return out


def segment_files(segments: list[Segment]) -> list[str]:
    """The part files of ``segments`` as DuckDB locations (paths, or URLs: see :func:`files_connection`)."""
    return [str(p) for seg in segments for p in seg.parts]


def files_connection(files: list[str], con: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
    """``con`` (or a new connection) able to read ``files``: a cache in an object store
    (LOG_INGESTION_CACHE_DIR may be a URL while the data root is local) gets its filesystem
    registered."""
    con = con or connect()
    first = as_path(files[0]) if files else None
    if is_remote(first):
        register_filesystem(con, first)
        # DuckDB opens each part through fsspec, which trusts listings cached earlier in this
        # process: parts published since (by another process) must not look missing or short.
        first.fs.invalidate_cache()
    return con


_DECODE_ALL = "SELECT " + ", ".join(
    f"max({'length(' + f.name + ')' if f.type == pa.string() else f.name})" for f in PART_SCHEMA
) + " FROM read_parquet(?)"


def unreadable_file(con: duckdb.DuckDBPyConnection, files: list[str]) -> str | None:
    """The first of ``files`` DuckDB cannot scan (every column), after a query over all of
    them failed: DuckDB's own message often names no file ("don't know what type")."""
    for path in files:
        try:
            # An aggregate of every column, so each page is decoded (count(*) alone reads the footer).
            con.execute(_DECODE_ALL, [path]).fetchall()
        except duckdb.Error:
            return path
    return None


def scan_segments(
    segments: list[Segment], start_ms: int, end_ms: int, con: duckdb.DuckDBPyConnection | None = None
) -> SummaryAccumulator:
    """Aggregate every part of ``segments`` filtered to the window, in one DuckDB query."""
    files = segment_files(segments)
    acc = SummaryAccumulator()
    if not files:
        return acc
    own = con is None
    con = files_connection(files, con)
    try:
        rows = con.execute(
            "SELECT level, count(*), min(timestamp), max(timestamp) FROM read_parquet(?) "
            "WHERE timestamp >= ? AND timestamp < ? GROUP BY level",
            [files, start_ms, end_ms],
        ).fetchall()
    except duckdb.Error as exc:
        bad = unreadable_file(con, files) or f"one of {len(files)} part files under {as_path(files[0]).parent.parent.parent}"
        raise SummaryError(
            f"cannot read the cached segments of [{start_ms}, {end_ms}): {bad}: {exc}. "
            "Delete that segment folder (it is re-fetched) or set BYPASS_CACHE=true"
        ) from exc
    finally:
        if own:
            con.close()
    for level, count, lo, hi in rows:
        acc.rows += count
        acc.levels[level if level is not None else NULL_LEVEL] += count
        acc.ts_min = lo if acc.ts_min is None else min(acc.ts_min, lo)
        acc.ts_max = hi if acc.ts_max is None else max(acc.ts_max, hi)
    return acc


def build_summary(log_id: str, start_ms: int, end_ms: int, acc: SummaryAccumulator, segments: int, parts: int,
                  uncached_rows: int = 0) -> dict:
    return {
        "log_id": log_id,
        "start_ms": start_ms,
        "end_ms": end_ms,
        "start": ms_to_iso(start_ms),
        "end": ms_to_iso(end_ms),
        "row_count": acc.rows,
        "columns": list(PART_SCHEMA.names),
        "schema": {f.name: str(f.type) for f in PART_SCHEMA},
        "timestamp_min": acc.ts_min,
        "timestamp_max": acc.ts_max,
        "timestamp_min_iso": ms_to_iso(acc.ts_min) if acc.ts_min is not None else None,
        "timestamp_max_iso": ms_to_iso(acc.ts_max) if acc.ts_max is not None else None,
        "counts_by_level": dict(sorted(acc.levels.items())),
        "segments": segments,
        "parts": parts,
        "uncached_rows": uncached_rows,
    }


def summarize_window(
    log_id: str,
    start_ms: int,
    end_ms: int,
    segments: list[Segment],
    extra: SummaryAccumulator | None = None,
    logger=None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> dict:
    """Summary of a window over its segments (+ uncached events). ``fetch.publish_summary``
    writes it and logs ``parquet_summary_generated``; a failure here logs ``parquet_summary_failed``."""
    try:
        acc = scan_segments(segments, start_ms, end_ms, con)
    except SummaryError as exc:
        log_event("parquet_summary_failed", logger, level="error", log_id=log_id, start_ms=start_ms, end_ms=end_ms,
                  error=str(exc)[:500])
        raise
    if extra is not None:
        acc = acc.merge(extra)
    summary = build_summary(log_id, start_ms, end_ms, acc, len(segments), len(segment_files(segments)),
                            extra.rows if extra else 0)
    return summary
