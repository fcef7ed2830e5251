"""`ingest_file_sensor`: new or changed inbox files -> dynamic partitions and one run."""

import json

import dagster as dg

from assets_pkg.run_tags import RANGE_END_TAG, RANGE_START_TAG
from assets_pkg.ingest.assets import INGEST_KEY, inbox_dir, ingest_partitions
from assets_pkg.ingest.files import scan_inbox


@dg.sensor(
    name="ingest_file_sensor",
    asset_selection=[INGEST_KEY],
    minimum_interval_seconds=30,
    description="Registers one partition per new file in data/inbox/files/ and ingests all new "
    "files in one run; a changed file (size or mtime) is ingested again.",
)
def ingest_file_sensor(context: dg.SensorEvaluationContext):
    scan = scan_inbox(inbox_dir())
    for problem in scan.refused:
        context.log.warning(f"ingest inbox: refused {problem}")
    seen = json.loads(context.cursor) if context.cursor else {}
    registered = set(context.instance.get_dynamic_partitions(ingest_partitions.name))
    new_keys = [f.partition_key for f in scan.files if f.partition_key not in registered]
    changed = [
        f.partition_key
        for f in scan.files
        if f.partition_key in registered and seen.get(f.partition_key) != f.identity()
    ]
    cursor = json.dumps({f.partition_key: f.identity() for f in scan.files}, sort_keys=True)
    if not new_keys and not changed:
        reason = "no new or changed files"
        if scan.refused:
            reason += f"; refused: {'; '.join(scan.refused)}"
        return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=cursor)
    runs = []
    if new_keys:
        # Keys added in one request are contiguous in the dynamic partition order, so
        # one range run (single-run backfill policy) ingests them all.
        runs.append(
            dg.RunRequest(
                run_key=f"new:{cursor}",
                asset_selection=[INGEST_KEY],
                tags={RANGE_START_TAG: new_keys[0], RANGE_END_TAG: new_keys[-1]},
            )
        )
    for key in changed:
        runs.append(dg.RunRequest(run_key=f"changed:{key}:{cursor}", asset_selection=[INGEST_KEY], partition_key=key))
    return dg.SensorResult(
        run_requests=runs,
        dynamic_partitions_requests=[ingest_partitions.build_add_request(new_keys)] if new_keys else [],
        cursor=cursor,
    )
