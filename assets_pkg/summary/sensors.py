"""`summary_batch_sensor`: new batch files in the accounts inbox -> one range run.

A batch is new when its name+size+mtime is neither in the processed state (written by
account_summary runs) nor in this sensor's cursor (already requested; a requested run that
fails or is canceled gives its batches back, :mod:`assets_pkg.sensor_runs`). A batch written
less than INBOX_SETTLE_SECONDS ago waits for a later tick (:mod:`assets_pkg.inbox`). The pure planner
classifies its records (Case I/II/III) and finds the months to rebuild; the sensor asks for
ONE run over that range of account_summary, followed by latest_summary in the same run.
"""

import dagster as dg

from assets_pkg.dagster_layer import sensor_status
from assets_pkg.inbox import waiting_note
from assets_pkg.io.locks import LockTimeout
from assets_pkg.run_tags import RANGE_END_TAG, RANGE_START_TAG
from assets_pkg.sensor_runs import TrackedCursor, work_key
from assets_pkg.summary import state as summary_state
from assets_pkg.summary.assets import account_summary, latest_summary, monthly_partitions
from assets_pkg.summary.jobs import summary_job
from assets_pkg.summary.plan import plan_pending

GONE = "<gone>"


SENSOR_NAME = "summary_batch_sensor"
# the sensor marks empty batches processed under the summary's lock; it does not wait for a run
SENSOR_LOCK_WAIT_S = 5.0


@dg.sensor(
    name=SENSOR_NAME,
    job=summary_job,
    minimum_interval_seconds=60,
    default_status=sensor_status(),
    description="New account batch files -> one account_summary run over the affected months, then latest_summary. "
                "A run that fails or is canceled is requested again (new run key).",
)
def summary_batch_sensor(context: dg.SensorEvaluationContext):
    cursor = TrackedCursor.load(SENSOR_NAME, context.cursor)
    # seen = batches in flight only: once a run has finished, the processed state says
    # what is done, and a failed run's batches are pending again
    cursor.settle(context, forget_on_success=True)
    plan, new, gone = plan_pending(cursor.seen, logger=context.log)
    if not new and not gone:
        reason = "no new account batch files"
        if plan.waiting_files:
            reason += f"; {waiting_note(plan.waiting_files)}"
        return dg.SensorResult(skip_reason=reason, cursor=cursor.dumps())
    items = {f.name: f.identity for f in new}
    items.update({name: GONE for name in gone})
    if plan.empty:
        try:
            summary_state.record_without_rebuild(new, timeout_s=SENSOR_LOCK_WAIT_S)
        except LockTimeout as exc:
            return dg.SensorResult(skip_reason=f"empty batch file(s) not marked yet: {exc}", cursor=cursor.dumps())
        cursor.seen.update(items)
        return dg.SensorResult(
            skip_reason=f"{len(new)} new batch file(s) with no records; marked processed", cursor=cursor.dumps()
        )
    # clamp to the partitions that exist (the planner already limits to months with data)
    keys = monthly_partitions.get_partition_keys(dynamic_partitions_store=None)
    start, end = max(plan.start, keys[0]), min(plan.end, keys[-1])
    tags = {**plan.tags(), RANGE_START_TAG: start, RANGE_END_TAG: end}
    context.log.info(" | ".join(plan.lines()))
    request = cursor.request(context, work_key("summary", items), items,
                             asset_selection=[account_summary.key, latest_summary.key], tags=tags)
    return dg.SensorResult(run_requests=[request] if request else [], cursor=cursor.dumps())
