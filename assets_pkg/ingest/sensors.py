"""`ingest_file_sensor`: new or changed inbox files -> dynamic partitions and one run.

The cursor holds each file's identity and the runs requested until they finish: a run that
fails or is canceled gives its files back (requested again under a new run key,
:mod:`assets_pkg.sensor_runs`). A file written less than INBOX_SETTLE_SECONDS ago is left to a
later tick (:mod:`assets_pkg.inbox`).
"""


import dagster as dg

from assets_pkg.dagster_layer import sensor_status
from assets_pkg.run_tags import RANGE_END_TAG, RANGE_START_TAG
from assets_pkg.ingest.assets import INGEST_KEY, inbox_dir, ingest_partitions
from assets_pkg.ingest.files import scan_inbox
from assets_pkg.inbox import split_settled, waiting_note
from assets_pkg.ingest.jobs import ingest_job
from assets_pkg.sensor_runs import TrackedCursor, work_key
from assets_pkg.settings import get_settings
from assets_pkg.storage import check_reachable


SENSOR_NAME = "ingest_file_sensor"


@dg.sensor(
    name=SENSOR_NAME,
    job=ingest_job,
    minimum_interval_seconds=30,
    default_status=sensor_status(),
    description="Registers one partition per new file in data/inbox/files/ and ingests all new "
    "files in one run; a changed file (size or mtime), or one whose run failed, is ingested again.",
)
def ingest_file_sensor(context: dg.SensorEvaluationContext):
    check_reachable(get_settings().data_root)  # a missing bucket or refused keys: said once, in words
    scan = scan_inbox(inbox_dir())
    for problem in scan.refused:
        context.log.warning(f"ingest inbox: refused {problem}")
    cursor = TrackedCursor.load(SENSOR_NAME, context.cursor)
    cursor.settle(context)  # the files of a failed or canceled run count as changed again
    registered = set(context.instance.get_dynamic_partitions(ingest_partitions.name))
    # a file still being copied in is left out (and forgotten) until it settles
    settled, waiting = split_settled(scan.files, lambda f: f.path)
    if waiting:
        context.log.info(f"ingest inbox: {waiting_note(waiting)}")
    current = {f.partition_key: f.identity() for f in settled}
    new_keys = [key for key in current if key not in registered]
    changed = [key for key, identity in current.items() if key in registered and cursor.seen.get(key) != identity]
    runs = []
    if new_keys:
        # Keys added in one request are contiguous in the dynamic partition order, so
        # one range run (single-run backfill policy) ingests them all.
        items = {key: current[key] for key in new_keys}
        runs.append(cursor.request(context, work_key("ingest-new", items), items, asset_selection=[INGEST_KEY],
                                   tags={RANGE_START_TAG: new_keys[0], RANGE_END_TAG: new_keys[-1]}))
    for key in changed:
        runs.append(cursor.request(context, work_key("ingest-changed", [key, current[key]]), {key: current[key]},
                                   asset_selection=[INGEST_KEY], partition_key=key))
    cursor.seen = current  # every file is unchanged or requested now; removed ones are forgotten
    runs = [r for r in runs if r is not None]
    if not runs:
        reason = "no new or changed files"
        if scan.refused:
            reason += f"; refused: {'; '.join(scan.refused)}"
        if waiting:
            reason += f"; {waiting_note(waiting)}"
        return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=cursor.dumps())
    return dg.SensorResult(
        run_requests=runs,
        dynamic_partitions_requests=[ingest_partitions.build_add_request(new_keys)] if new_keys else [],
        cursor=cursor.dumps(),
    )
