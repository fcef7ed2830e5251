"""``logs_fetch_window_job``: fetch any window of a log through the cache (ad hoc)."""

import datetime as dt
from typing import Optional

import dagster as dg
from pydantic import Field

from assets_pkg.logs.fetch import fetch_request
from assets_pkg.logs.partitions import log_ids
from assets_pkg.logs.planner import day_window
from assets_pkg.logs.resources import LogSourceResource

RESULT_IO_MANAGER = "logs_result_io_manager"


class FetchWindowConfig(dg.Config):
    """Every field has a default, so the launchpad's config runs as it is: yesterday (UTC)
    of the first log of LOG_IDS."""

    log_id: str = Field(default="", description="Log to fetch, e.g. 'app' ([A-Za-z0-9._-]+); empty: the first of "
                                                "LOG_IDS.")
    start: str = Field(default="", description="Window start, inclusive: ISO-8601 (naive = UTC) or epoch "
                                               "milliseconds; empty: yesterday 00:00 UTC.")
    end: str = Field(default="", description="Window end, exclusive: ISO-8601 (naive = UTC) or epoch milliseconds; "
                                             "empty: today 00:00 UTC.")

    def window(self, today: dt.date | None = None) -> tuple[str, str, str]:
        """(log_id, start, end) with the defaults filled in."""
        yesterday = (today or dt.datetime.now(dt.timezone.utc).date()) - dt.timedelta(days=1)
        start_ms, end_ms = day_window(yesterday)
        return (self.log_id or log_ids()[0], self.start or str(start_ms), self.end or str(end_ms))
    bypass_cache: Optional[bool] = Field(
        default=None, description="Read from the source and write nothing (default: env BYPASS_CACHE, else false)."
    )


@dg.op(out=dg.Out(dict, io_manager_key=RESULT_IO_MANAGER), tags={"kind": "logs"})
def fetch_log_window(context: dg.OpExecutionContext, config: FetchWindowConfig, log_source: LogSourceResource):
    """Fetch [start, end) of a log: only the missing sub-ranges come from the source; returns
    output_file, rows_processed, batches_processed, duration_seconds, segments_used,
    segments_written, cache_missing_ranges, cache_cached_ranges, summary_output, summary."""
    log_id, start, end = config.window()
    result = fetch_request(log_id, start, end, log_source.build(context.log),
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


@dg.job(description="Fetch any window of a log through the segment cache (run config: log_id, start, end, "
                    "bypass_cache; by default yesterday of the first log).")
def logs_fetch_window_job():
    fetch_log_window()
