"""`splits_shard_sensor`: register new input shards and request ONE run for them.

Choice (DESIGN 5, 6): every shard asset has a single-run backfill policy, and the run
covers the partition-key range first..last of the new or changed shards in the dynamic
partitions' insertion order (new keys are appended, so the range is normally exactly the
new shards; keys inside the range that did not change are re-split, which is idempotent).
Shards a changed allocation affects are re-split inside that same run by the pass-2 op.
When nothing is new but an output is stale (e.g. an earlier run failed), the sensor asks
for a pass-2 run over the stale shards. Refused files are logged and named in the skip
reason or the run's tags; the cursor remembers each shard's name, size and mtime, and the
runs it requested until they finish: a run that fails or is canceled gives its shards back
(they are requested again under a new run key, :mod:`assets_pkg.sensor_runs`). A shard written
less than INBOX_SETTLE_SECONDS ago is left to a later tick (:mod:`assets_pkg.inbox`).
"""


import dagster as dg

from assets_pkg.dagster_layer import sensor_status
from assets_pkg.inbox import split_settled, waiting_note
from assets_pkg.run_tags import RANGE_END_TAG, RANGE_START_TAG
from assets_pkg.sensor_runs import TrackedCursor, work_key
from assets_pkg.settings import get_settings
from assets_pkg.storage import check_reachable
from assets_pkg.splits.assets import (
    CONSOLIDATED_KEY,
    PARTITIONS_NAME,
    SPLIT_KEYS,
    inbox_dir,
    shard_partitions,
)
from assets_pkg.splits.discovery import discover
from assets_pkg.storage.objects import file_identity
from assets_pkg.splits.pipeline import manifest_file, read_json, stale_shards


def file_signature(shard) -> str:
    size, mtime_ns, etag = file_identity(shard.path)
    return f"{shard.name}|{size}|{mtime_ns}" + (f"|{etag}" if etag else "")


def range_tags(keys: list[str], order: list[str]) -> tuple[str | None, dict]:
    """(partition_key, tags) for one run over ``keys``: the range first..last in the
    partitions' order, also for a single key (start == end). A range is not checked
    against the instance's partitions while the tick is evaluated, so a key registered by
    this very tick is fine even where the sensor context has no instance to look it up."""
    ordered = sorted(keys, key=order.index)
    return None, {RANGE_START_TAG: ordered[0], RANGE_END_TAG: ordered[-1]}


SENSOR_NAME = "splits_shard_sensor"


def build_splits_sensor(job, consolidate: bool, check_settings):
    @dg.sensor(name=SENSOR_NAME, job=job, minimum_interval_seconds=30,
               default_status=sensor_status(),
               description="Registers one dynamic partition per inbox/transactions shard and requests "
                           "one run for all new or changed shards; a shard whose run fails is requested again.")
    def splits_shard_sensor(context: dg.SensorEvaluationContext):
        check_settings()  # a bad setting fails the tick naming it, rather than every run it would request
        check_reachable(get_settings().data_root)  # a missing bucket or refused keys: said once, in words
        found = discover(inbox_dir())
        for problem in found.problems:
            context.log.warning(f"refused: {problem}")
        refused = "; ".join(str(p) for p in found.problems)
        cursor = TrackedCursor.load(SENSOR_NAME, context.cursor, legacy_seen_key="files")
        cursor.settle(context)  # the shards of a failed or canceled run are changed again
        # a shard still being copied in is left out (and forgotten) until it settles
        settled, waiting = split_settled(found.shards, lambda s: s.path)
        if waiting:
            context.log.info(f"splits inbox: {waiting_note(waiting)}")
        current = {s.key: file_signature(s) for s in settled}
        existing = list(context.instance.get_dynamic_partitions(PARTITIONS_NAME))
        new_keys = sorted(k for k in current if k not in existing)
        changed = sorted(k for k, sig in current.items() if cursor.seen.get(k) != sig)
        order = existing + new_keys
        add = [shard_partitions.build_add_request(new_keys)] if new_keys else []
        requests = []
        if changed:
            partition_key, tags = range_tags(changed, order)
            tags["splits/shards"] = str(len(changed))
            if refused:
                tags["splits/refused_files"] = refused[:1000]
            items = {k: current[k] for k in changed}
            requests.append(cursor.request(context, work_key("splits", items), items, partition_key=partition_key,
                                           tags=tags))
            context.log.info(f"{len(changed)} new or changed shard(s): {changed}")
        else:
            manifest = read_json(manifest_file(get_settings().warehouse))
            stale = [k for k in stale_shards(get_settings().warehouse, manifest or {})
                     if k in current and k in existing]
            if stale:
                partition_key, tags = range_tags(stale, order)
                selection = [SPLIT_KEYS[n] for n in SPLIT_KEYS] + ([CONSOLIDATED_KEY] if consolidate else [])
                fingerprints = [manifest["shards"][k]["fingerprint"] for k in stale]
                requests.append(cursor.request(context, work_key("splits-stale", fingerprints), {},
                                               partition_key=partition_key, tags=tags, asset_selection=selection))
        cursor.seen = current  # every shard is unchanged or requested now; removed ones are forgotten
        requests = [r for r in requests if r is not None]
        if requests:
            return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=add, cursor=cursor.dumps())
        reason = f"no new shards ({len(current)} known)"
        if cursor.runs:
            reason += f"; {len(cursor.runs)} run(s) in flight"
        if refused:
            reason += f"; refused: {refused}"
        if waiting:
            reason += f"; {waiting_note(waiting)}"
        return dg.SensorResult(skip_reason=reason, dynamic_partitions_requests=add, cursor=cursor.dumps())

    return splits_shard_sensor
