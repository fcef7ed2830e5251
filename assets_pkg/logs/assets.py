"""Logs assets: the cached events of a (log_id, day) and their summary.

``logs/log_events`` manages its own storage (the segment cache), so it returns a
``MaterializeResult`` and no IO manager is involved. ``logs/log_summary`` reads every
segment intersecting the day through DuckDB and writes the summary JSON.
"""

from typing import Optional

import dagster as dg
from pydantic import Field

from assets_pkg.dagster_layer import check_result
from assets_pkg.logs.fetch import fetch_window, publish_summary
from assets_pkg.logs.partitions import LOG_PARTITIONS, check_settings, split_key
from assets_pkg.logs.planner import plan_coverage, ranges_json
from assets_pkg.logs.quality import window_outcomes
from assets_pkg.logs.resources import LogSourceResource
from assets_pkg.logs.store import SegmentStore
from assets_pkg.logs.summary import summarize_window
from assets_pkg.obs import peak_rss_mb

EVENT_CHECKS = {
    "no_overlapping_segments": "ERROR when two cached segments of the log cover the same milliseconds.",
    "segments_readable": "ERROR when a segment part intersecting the day cannot be decoded (every page, checksums "
                         "verified), has another schema, or holds another window than its folder names.",
    "window_covered": "ERROR when some millisecond of the partition's day is not cached (freshness horizon aside).",
    "unique_event_ids": "WARN when an event_id appears more than once in the day's cached events.",
}


class LogFetchConfig(dg.Config):
    bypass_cache: Optional[bool] = Field(
        default=None, description="Read from the source and write nothing (default: env BYPASS_CACHE, else false)."
    )
    flush_rows: Optional[int] = Field(default=None, description="Rows per part file (default: env FLUSH_ROWS, else 100000).")
    flush_bytes: Optional[int] = Field(
        default=None, description="Buffered bytes that force a part file (default: env FLUSH_BYTES, else 64 MiB)."
    )
    freshness_minutes: Optional[int] = Field(
        default=None, description="The last N minutes before now are fetched but not cached (default: env FRESHNESS_MINUTES, else 10)."
    )


def _level_metadata(summary: dict) -> dict:
    return {f"level_{level}": count for level, count in summary.get("counts_by_level", {}).items()}


@dg.asset(
    key_prefix=["logs"],
    group_name="logs",
    partitions_def=LOG_PARTITIONS,
    kinds={"duckdb", "parquet"},
    owners=["team:data-eng"],
    code_version="1",
    check_specs=[
        dg.AssetCheckSpec(name, asset=dg.AssetKey(["logs", "log_events"]), description=description)
        for name, description in EVENT_CHECKS.items()
    ],
)
def log_events(context: dg.AssetExecutionContext, config: LogFetchConfig, log_source: LogSourceResource):
    """Events of one log for one UTC day, cached as Parquet segments under
    ``LOG_INGESTION_CACHE_DIR/logs/<log_id>/from=<ms>/to=<ms>/`` (default root ``data/cache``). Only the sub-ranges of the day that no
    segment covers are fetched from the log source (LOG_SOURCE); the decision (hit / partial
    / miss), the ranges and the segments used and written are recorded as metadata."""
    check_settings()
    log_id, day, start_ms, end_ms = split_key(context.partition_key)
    result = fetch_window(
        log_id, start_ms, end_ms, log_source.build(context.log),
        bypass_cache=config.bypass_cache, flush_rows=config.flush_rows, flush_bytes=config.flush_bytes,
        freshness_minutes=config.freshness_minutes, write_outputs=False, logger=context.log,
    )
    outcomes = window_outcomes(SegmentStore(), log_id, start_ms, end_ms)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": result.summary["row_count"],
            "decision": result.decision,
            "rows_fetched": result.rows_processed,
            "batches_fetched": result.batches_processed,
            "segments_used": len(result.segments_used),
            "segments_written": len(result.segments_written),
            "parts_written": result.parts_written,
            "bytes": result.bytes_written,
            "cache_missing_ranges": dg.MetadataValue.json(result.cache_missing_ranges),
            "cache_cached_ranges": dg.MetadataValue.json(result.cache_cached_ranges),
            "uncached_ranges": dg.MetadataValue.json(result.uncached_ranges),
            "segment_paths": dg.MetadataValue.json(result.segments_used + result.segments_written),
            "seconds": result.duration_seconds,
            "peak_rss_mb": peak_rss_mb(),
            **_level_metadata(result.summary),
        },
        check_results=[check_result(o) for o in outcomes],
    )


@dg.asset(
    key_prefix=["logs"],
    group_name="logs",
    partitions_def=LOG_PARTITIONS,
    deps=[log_events],
    kinds={"duckdb", "parquet"},
    owners=["team:data-eng"],
    code_version="1",
)
def log_summary(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """Summary of one log's day over every cached segment intersecting it, read as one
    DuckDB dataset: row_count, columns, schema, timestamp min/max and counts by level,
    written to ``data/exports/logs/<log_id>/summary_<start_ms>_<end_ms>.json`` (unless
    LOG_SUMMARY_JSON=false, then recorded as metadata only)."""
    check_settings()
    log_id, day, start_ms, end_ms = split_key(context.partition_key)
    store = SegmentStore()
    segments = store.intersecting(log_id, start_ms, end_ms)
    summary = summarize_window(log_id, start_ms, end_ms, segments, logger=context.log)
    missing = plan_coverage(start_ms, end_ms, [s.window for s in segments]).missing
    summary["window_covered"] = not missing
    path = publish_summary(summary, context.log)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": summary["row_count"],
            # LOG_SUMMARY_JSON=false: the summary is this metadata only, no file.
            **({"path": dg.MetadataValue.path(path)} if path else {}),
            "timestamp_min": summary["timestamp_min_iso"] or "",
            "timestamp_max": summary["timestamp_max_iso"] or "",
            "segments": summary["segments"],
            "parts": summary["parts"],
            "window_covered": summary["window_covered"],
            "missing_ranges": dg.MetadataValue.json(ranges_json(missing)),
            "schema": dg.MetadataValue.json(summary["schema"]),
            **_level_metadata(summary),
        }
    )
