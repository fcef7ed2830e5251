"""`summary_batch_sensor`: new batch files in the accounts inbox -> one range run.

A batch is new when its name+size+mtime is neither in the processed state (written by
account_summary runs) nor in this sensor's cursor (already requested). The pure planner
classifies its records (Case I/II/III) and finds the months to rebuild; the sensor asks for
ONE run over that range of account_summary, followed by latest_summary in the same run.
"""

import hashlib
import json

import dagster as dg

from assets_pkg.duck import connect
from assets_pkg.run_tags import RANGE_END_TAG, RANGE_START_TAG
from assets_pkg.summary import state as summary_state
from assets_pkg.summary.assets import account_summary, latest_summary, month_file, monthly_partitions
from assets_pkg.summary.config import load_summary_settings
from assets_pkg.summary.plan import Plan, plan_batches
from assets_pkg.summary.source import list_batch_files

GONE = "<gone>"


def existing_month_files() -> list:
    folder = month_file("2000-01").parent
    return sorted(p for p in folder.glob("*.parquet") if not p.name.startswith(".")) if folder.is_dir() else []


def plan_pending(cursor: dict | None = None, logger=None):
    """(plan, new files, gone entries) for what is not yet processed (nor in ``cursor``)."""
    cfg = load_summary_settings()
    files = list_batch_files(cfg.source_path)
    processed = summary_state.load_processed()
    new, gone = summary_state.pending_files(files, processed, also_seen=cursor or {})
    if not new and not gone:
        return Plan(), new, gone
    plan = plan_batches(connect(), cfg, new, files, existing_month_files(), gone, logger=logger)
    return plan, new, gone


@dg.sensor(
    name="summary_batch_sensor",
    target=[account_summary, latest_summary],
    minimum_interval_seconds=60,
    description="New account batch files -> one account_summary run over the affected months, then latest_summary.",
)
def summary_batch_sensor(context: dg.SensorEvaluationContext):
    cursor = json.loads(context.cursor) if context.cursor else {}
    plan, new, gone = plan_pending(cursor, logger=context.log)
    if not new and not gone:
        return dg.SkipReason("no new account batch files")
    next_cursor = dict(cursor)
    next_cursor.update({f.name: f.identity for f in new})
    next_cursor.update({name: GONE for name in gone})
    if plan.empty:
        summary_state.record_without_rebuild(new)
        return dg.SensorResult(
            skip_reason=f"{len(new)} new batch file(s) with no records; marked processed", cursor=json.dumps(next_cursor)
        )
    # clamp to the partitions that exist (the planner already limits to months with data)
    keys = monthly_partitions.get_partition_keys(dynamic_partitions_store=None)
    start, end = max(plan.start, keys[0]), min(plan.end, keys[-1])
    tags = {**plan.tags(), RANGE_START_TAG: start, RANGE_END_TAG: end}
    run_key = hashlib.sha1(json.dumps(sorted((f.name, f.identity) for f in new)).encode()).hexdigest()[:16]
    context.log.info(" | ".join(plan.lines()))
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(run_key=f"summary-{run_key}", asset_selection=[account_summary.key, latest_summary.key], tags=tags)
        ],
        cursor=json.dumps(next_cursor),
    )
