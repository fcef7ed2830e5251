"""``logs_fetch_window_job``: fetch any window of a log through the cache (ad hoc)."""

from typing import Optional

import dagster as dg
from pydantic import Field

from assets_pkg.logs.fetch import fetch_request
from assets_pkg.logs.resources import LogSourceResource

RESULT_IO_MANAGER = "logs_result_io_manager"


class FetchWindowConfig(dg.Config):
    log_id: str = Field(description="Log to fetch, e.g. 'app' ([A-Za-z0-9._-]+).")
    start: str = Field(description="Window start, inclusive: ISO-8601 (naive = UTC) or epoch milliseconds.")
    end: str = Field(description="Window end, exclusive: ISO-8601 (naive = UTC) or epoch milliseconds.")
    bypass_cache: Optional[bool] = Field(
        default=None, description="Read from the source and write nothing (default: env BYPASS_CACHE, else false)."
    )


@dg.op(out=dg.Out(dict, io_manager_key=RESULT_IO_MANAGER), tags={"kind": "logs"})
def fetch_log_window(context: dg.OpExecutionContext, config: FetchWindowConfig, log_source: LogSourceResource):
    """Fetch [start, end) of a log: only the missing sub-ranges come from the source; returns
    output_file, rows_processed, batches_processed, duration_seconds, segments_used,
    segments_written, cache_missing_ranges, cache_cached_ranges, summary_output, summary."""
    result = fetch_request(config.log_id, config.start, config.end, log_source.build(context.log),
                           bypass_cache=config.bypass_cache, logger=context.log)
    return dg.Output(
        result,
        metadata={
            "decision": result["decision"],
            "dagster/row_count": result["summary"]["row_count"],
            "rows_processed": result["rows_processed"],
            "batches_processed": result["batches_processed"],
            "segments_used": len(result["segments_used"]),
            "segments_written": len(result["segments_written"]),
            "cache_missing_ranges": dg.MetadataValue.json(result["cache_missing_ranges"]),
            "cache_cached_ranges": dg.MetadataValue.json(result["cache_cached_ranges"]),
            "output_file": result["output_file"] or "",
            "summary_output": result["summary_output"] or "",
            "seconds": result["duration_seconds"],
        },
    )


@dg.job(description="Fetch any window of a log through the segment cache (run config: log_id, start, end, bypass_cache).")
def logs_fetch_window_job():
    fetch_log_window()
