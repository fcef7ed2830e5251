"""`splits_shard_sensor`: register new input shards and request ONE run for them.

Choice (DESIGN 5, 6): every shard asset has a single-run backfill policy, and the run
covers the partition-key range first..last of the new or changed shards in the dynamic
partitions' insertion order (new keys are appended, so the range is normally exactly the
new shards; keys inside the range that did not change are re-split, which is idempotent).
Shards a changed allocation affects are re-split inside that same run by the pass-2 op.
When nothing is new but an output is stale (e.g. an earlier run failed), the sensor asks
for a pass-2 run over the stale shards. Refused files are logged and named in the skip
reason or the run's tags; the cursor remembers each shard's name, size and mtime.
"""

import hashlib
import json

import dagster as dg

from assets_pkg.run_tags import RANGE_END_TAG, RANGE_START_TAG
from assets_pkg.settings import get_settings
from assets_pkg.splits.assets import (
    CONSOLIDATED_KEY,
    PARTITIONS_NAME,
    SPLIT_KEYS,
    inbox_dir,
    shard_partitions,
)
from assets_pkg.splits.discovery import discover
from assets_pkg.splits.pipeline import manifest_file, read_json, stale_shards


def file_signature(shard) -> str:
    st = shard.path.stat()
    return f"{shard.name}|{st.st_size}|{st.st_mtime_ns}"


def range_tags(keys: list[str], order: list[str]) -> tuple[str | None, dict]:
    """(partition_key, tags) for one run over ``keys``: the range first..last in the
    partitions' order, also for a single key (start == end). A range is not checked
    against the instance's partitions while the tick is evaluated, so a key registered by
    this very tick is fine even where the sensor context has no instance to look it up."""
    ordered = sorted(keys, key=order.index)
    return None, {RANGE_START_TAG: ordered[0], RANGE_END_TAG: ordered[-1]}


def build_splits_sensor(job, consolidate: bool):
    @dg.sensor(name="splits_shard_sensor", job=job, minimum_interval_seconds=30,
               description="Registers one dynamic partition per inbox/transactions shard and requests "
                           "one run for all new or changed shards.")
    def splits_shard_sensor(context: dg.SensorEvaluationContext):
        found = discover(inbox_dir())
        for problem in found.problems:
            context.log.warning(f"refused: {problem}")
        refused = "; ".join(str(p) for p in found.problems)
        cursor = json.loads(context.cursor) if context.cursor else {}
        seen = cursor.get("files", {})
        current = {s.key: file_signature(s) for s in found.shards}
        existing = list(context.instance.get_dynamic_partitions(PARTITIONS_NAME))
        new_keys = sorted(k for k in current if k not in existing)
        changed = sorted(k for k, sig in current.items() if seen.get(k) != sig)
        order = existing + new_keys
        next_cursor = json.dumps({"files": current}, sort_keys=True)
        add = [shard_partitions.build_add_request(new_keys)] if new_keys else []
        if changed:
            partition_key, tags = range_tags(changed, order)
            tags["splits/shards"] = str(len(changed))
            if refused:
                tags["splits/refused_files"] = refused[:1000]
            digest = hashlib.md5(json.dumps({k: current[k] for k in changed}, sort_keys=True).encode()).hexdigest()
            request = dg.RunRequest(run_key=f"splits-{digest}", partition_key=partition_key, tags=tags)
            context.log.info(f"{len(changed)} new or changed shard(s): {changed}")
            return dg.SensorResult(run_requests=[request], dynamic_partitions_requests=add, cursor=next_cursor)
        manifest = read_json(manifest_file(get_settings().warehouse))
        stale = [k for k in stale_shards(get_settings().warehouse, manifest or {}) if k in current and k in existing]
        if stale:
            partition_key, tags = range_tags(stale, order)
            selection = [SPLIT_KEYS[n] for n in SPLIT_KEYS] + ([CONSOLIDATED_KEY] if consolidate else [])
            fingerprints = [manifest["shards"][k]["fingerprint"] for k in stale]
            digest = hashlib.md5(json.dumps(fingerprints).encode()).hexdigest()
            return dg.SensorResult(
                run_requests=[dg.RunRequest(run_key=f"splits-stale-{digest}", partition_key=partition_key,
                                            tags=tags, asset_selection=selection)],
                dynamic_partitions_requests=add, cursor=next_cursor,
            )
        reason = f"no new shards ({len(current)} known)"
        if refused:
            reason += f"; refused: {refused}"
        return dg.SensorResult(skip_reason=reason, dynamic_partitions_requests=add, cursor=next_cursor)

    return splits_shard_sensor
