"""Daily schedule: the previous UTC day of every log_id."""

from datetime import timedelta

import dagster as dg

from assets_pkg.dagster_layer import schedule_status
from assets_pkg.logs.assets import log_events, log_summary
from assets_pkg.logs.partitions import LOG_PARTITIONS, log_ids, partition_key, start_date

logs_daily_job = dg.define_asset_job(
    "logs_daily_job",
    selection=dg.AssetSelection.assets(log_events, log_summary),
    partitions_def=LOG_PARTITIONS,
    description="log_events then log_summary for one (log_id, day).",
)


def previous_day_requests(scheduled_time) -> list[dg.RunRequest]:
    day = (scheduled_time - timedelta(days=1)).strftime("%Y-%m-%d")
    if day < start_date():
        return []
    return [
        dg.RunRequest(run_key=f"{log_id}|{day}", partition_key=partition_key(log_id, day), tags={"logs/day": day})
        for log_id in log_ids()
    ]


@dg.schedule(job=logs_daily_job, cron_schedule="20 0 * * *", execution_timezone="UTC",
             default_status=schedule_status())
def logs_daily_schedule(context: dg.ScheduleEvaluationContext):
    """At 00:20 UTC (past the 10-minute freshness horizon): yesterday for every log_id."""
    requests = previous_day_requests(context.scheduled_execution_time)
    if not requests:
        return dg.SkipReason(f"yesterday is before LOG_START_DATE={start_date()}")
    return requests
