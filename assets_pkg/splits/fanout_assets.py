"""The splits' shard assets as fan-out graphs, for the cluster executors.

When ``ASSETS_PKG_EXECUTOR`` is not ``in_process`` (multiprocess, celery) a range run of the
splits is, instead of one step per asset: pass 1 (``splits/shard_profile``) as one step per
batch of ``SPLITS_SHARDS_PER_STEP`` shards, ``splits/customer_allocation`` once, pass 2
(``splits/train|val|oot``) as one step per batch, then a finish step with the checks, and
``splits/consolidated`` once. Each batch step reads its shards from the inbox and the
allocation from the warehouse and writes only its own partitions
(:mod:`assets_pkg.splits.fanout`), so it runs on any worker. Asset keys, partitions,
checks and metadata are the one-step assets'; the embedded default keeps those.

Locks: the plan and the finish of pass 2 hold the splits lock; its batch steps hold it
shared (:func:`~assets_pkg.io.locks.shared_domain_lock`), so they run side by side while no
other run publishes an allocation, and check the allocation they were planned on.
"""

import json
import warnings

import dagster as dg

from assets_pkg import layout
from assets_pkg.batching import batches
from assets_pkg.dagster_layer import add_partition_metadata, check_result
from assets_pkg.io import WriteResult
from assets_pkg.io.locks import shared_domain_lock
from assets_pkg.io.parquet_io_manager import ShardedParquetIOManager
from assets_pkg.obs import peak_rss_mb
from assets_pkg.resources.duckdb import DuckDBResource
from assets_pkg.settings import executor_kind, get_settings
from assets_pkg.splits import fanout
from assets_pkg.splits.assets import (
    ALLOCATION_KEY,
    PROFILE_KEY,
    SPLIT_KEYS,
    Pass2Scope,
    SplitConfig,
    StepProgress,
    inbox_dir,
    pass2_report,
    pass2_scope,
    shard_profile,
    shards_for,
    split_shards,
    splits_lock,
)
from assets_pkg.splits.discovery import discover
from assets_pkg.splits.pipeline import allocation_file, profile_all, shard_file, split_and_write
from assets_pkg.splits.rows import SPLITS
from assets_pkg.splits.shard_pool import ShardFailure, concurrent_scan
from assets_pkg.step_messages import step_messages_io_manager

# resource_defs on a graph asset is beta: its notice is noise here
warnings.filterwarnings("ignore", message=".*resource_defs.*", category=dg.BetaWarning)

STEPS_IO = "splits_fanout_steps_io"
MESSAGE = {"io_manager_key": STEPS_IO}
RESOURCES = {STEPS_IO: step_messages_io_manager(fanout.DOMAIN)}
CHECK_SPECS = list(split_shards.check_specs)
CHECK_OUTS = {spec.get_python_identifier(): spec for spec in CHECK_SPECS}


def fanout_enabled() -> bool:
    """Whether the splits fan out: any executor but the embedded ``in_process``."""
    return executor_kind() != "in_process"


def _batch_outputs(keys: list[str], message):
    for keys_of_step in batches(keys, fanout.SplitsFanoutSettings.from_env().shards_per_step):
        yield dg.DynamicOutput(json.dumps(message(keys_of_step)), mapping_key=f"{keys_of_step[0]}_{keys_of_step[-1]}")


# ---- pass 1 ---------------------------------------------------------------------------------
@dg.op(out=dg.DynamicOut(str, **MESSAGE), tags={"splits/step": "plan"})
def splits_profile_plan(context: dg.OpExecutionContext, split_config: SplitConfig):
    """The run's shards (each must have its input file) in batches of SPLITS_SHARDS_PER_STEP."""
    split_config.params()  # a bad setting fails here, before any step writes
    layout.remove_stale_staging(fanout.DOMAIN)
    keys = [s.key for s in shards_for(context.partition_keys, discover(inbox_dir()))]
    yield from _batch_outputs(keys, lambda batch: {"keys": batch})


@dg.op(out=dg.Out(dict, **MESSAGE), tags={"splits/step": "profile"})
def splits_profile_batch(context: dg.OpExecutionContext, split_config: SplitConfig, duckdb: DuckDBResource,
                         batch: str) -> dict:
    """Pass 1 of one batch of shards: each profile written to its partition file (a shard that
    cannot be read: no profile, its error recorded, as in the one-step asset)."""
    params = split_config.params()
    warehouse = get_settings().warehouse
    found = discover(inbox_dir())
    shards = shards_for(json.loads(batch)["keys"], found)
    progress = StepProgress(context, "splits/shard_profile", len(shards))
    written = profile_all(duckdb.connect(), shards, params, warehouse, found.signature, isolate=True,
                          concurrent=concurrent_scan, progress_callback=progress)
    out = {}
    for key, result in written.items():
        if isinstance(result, ShardFailure):
            context.log.error(f"shard {key} not profiled, it will not be split: {result.error}")
            result = WriteResult(None, 0, 0)
        progress.shard_done(result.rows)
        out[key] = {"rows": result.rows, "bytes": result.bytes, "written": result.path is not None}
    return out


@dg.op(out={"result": dg.Out(dg.Nothing)}, tags={"splits/step": "profile_finish"})
def splits_profile_finish(context: dg.AssetExecutionContext, batches: list[dict]):
    """Every batch is profiled: each partition's metadata as the IO manager records it."""
    warehouse = get_settings().warehouse
    results = [(key, shard_file(warehouse, "shard_profile", key),
                WriteResult(shard_file(warehouse, "shard_profile", key) if r["written"] else None, r["rows"], r["bytes"]))
               for part in batches for key, r in part.items()]
    if len(results) > 1:
        add_partition_metadata(context, {key: ShardedParquetIOManager._metadata([(key, path, result)])
                                         for key, path, result in results}, asset_key=PROFILE_KEY)
    inputs = [s.name for s in shards_for([k for k, _, _ in results], discover(inbox_dir()))]
    yield dg.Output(None, "result", metadata={
        "shards": len(results), "inputs": dg.MetadataValue.json(inputs),
        **ShardedParquetIOManager._metadata(results)})


_PROFILE = shard_profile.specs_by_key[PROFILE_KEY]


@dg.graph_asset(
    key=PROFILE_KEY, partitions_def=_PROFILE.partitions_def, backfill_policy=shard_profile.backfill_policy,
    group_name=_PROFILE.group_name, kinds=_PROFILE.kinds, owners=_PROFILE.owners,
    code_version=_PROFILE.code_version, description=_PROFILE.description, resource_defs=RESOURCES,
)
def shard_profile_fanout():
    """Pass 1 of the temporal split, as the one-step `shard_profile` (customers with
    pre-split rows, label values, row counts per input shard), one step per batch of
    SPLITS_SHARDS_PER_STEP shards."""
    return splits_profile_finish(splits_profile_plan().map(splits_profile_batch).collect())


# ---- pass 2 ---------------------------------------------------------------------------------
def _scope(message: dict) -> Pass2Scope:
    return Pass2Scope(None, discover(inbox_dir()), message["failed"], message["run_keys"], message["affected"])


@dg.op(ins={"allocation": dg.In(dg.Nothing), "profile": dg.In(dg.Nothing)}, out=dg.DynamicOut(str, **MESSAGE),
       tags={"splits/step": "plan"})
def splits_split_plan(context: dg.OpExecutionContext):
    """Under the splits lock: the shards pass 2 splits (the run's, and those outside it the
    allocation made stale), the allocation pinned, in batches of SPLITS_SHARDS_PER_STEP."""
    with splits_lock(context):
        scope = pass2_scope(context, get_settings().warehouse)
    plan = {"pin": fanout.allocation_pin(scope.manifest), "failed": scope.failed, "run_keys": scope.run_keys,
            "affected": scope.affected}
    keys = scope.run_keys + scope.affected
    if not keys:  # every shard of the run failed to profile: the finish step reports them
        yield dg.DynamicOutput(json.dumps({**plan, "keys": []}), mapping_key="none")
        return
    yield from _batch_outputs(keys, lambda batch: {**plan, "keys": batch})


@dg.op(out=dg.Out(dict, **MESSAGE), tags={"splits/step": "split"})
def splits_split_batch(context: dg.OpExecutionContext, split_config: SplitConfig, duckdb: DuckDBResource,
                       batch: str) -> dict:
    """Pass 2 of one batch of shards: train/val/oot partitions and each shard's state, from
    the allocation the run planned on (checked), while holding the splits lock shared."""
    message = json.loads(batch)
    params = split_config.params()
    warehouse = get_settings().warehouse
    with shared_domain_lock(fanout.DOMAIN, context.run_id, logger=context.log):
        manifest = fanout.pinned_manifest(warehouse, message["pin"])
        found = discover(inbox_dir())
        shards = shards_for(message["keys"], found)
        progress = StepProgress(context, "splits pass 2", len(shards))
        results = split_and_write(duckdb.connect(), shards, params, warehouse, manifest, found.signature,
                                  customers=allocation_file(warehouse), progress_callback=progress,
                                  on_shard=lambda r: progress.shard_done(r.counts["rows_in"]))
    return {**message, "results": [fanout.encode_result(r) for r in results], "peak_rss_mb": peak_rss_mb()}


@dg.op(out={**{name: dg.Out(dg.Nothing) for name in SPLITS}, **{name: dg.Out(dg.Nothing) for name in CHECK_OUTS}},
       tags={"splits/step": "split_finish"})
def splits_split_finish(context: dg.AssetExecutionContext, split_config: SplitConfig, duckdb: DuckDBResource,
                        batches: list[dict]):
    """Every batch is split: label rates, stages pruned, the checks over all shards and each
    split's metadata, as the one-step `split_shards`, under the splits lock; the run's
    staging folder removed."""
    params = split_config.params()
    warehouse = get_settings().warehouse
    results = [fanout.decode_result(r) for part in batches for r in part["results"]]
    seconds = round(sum(r.seconds for r in results), 3)
    peak = max(part["peak_rss_mb"] for part in batches)
    with splits_lock(context):
        scope = _scope(batches[0])
        scope.manifest = fanout.pinned_manifest(warehouse, batches[0]["pin"])
        outcomes, metadata, failure = pass2_report(context, params, duckdb.connect(), scope, results, seconds, peak)
    layout.remove_tree(layout.staging_dir(fanout.DOMAIN, context.run_id))
    for outcome in outcomes:
        yield check_result(outcome)
    if failure is not None:
        raise failure
    for name in SPLITS:
        yield dg.Output(None, name, metadata=metadata[name])


_SPLITS_ONE_STEP = {name: split_shards.specs_by_key[SPLIT_KEYS[name]] for name in SPLITS}


@dg.graph_multi_asset(
    name="split_shards",
    outs={name: dg.AssetOut(key=spec.key, description=spec.description, group_name=spec.group_name,
                            kinds=spec.kinds, owners=spec.owners, code_version=spec.code_version)
          for name, spec in _SPLITS_ONE_STEP.items()},
    ins={"allocation": dg.AssetIn(key=ALLOCATION_KEY, dagster_type=dg.Nothing),
         "profile": dg.AssetIn(key=PROFILE_KEY, dagster_type=dg.Nothing)},
    partitions_def=_PROFILE.partitions_def, backfill_policy=split_shards.backfill_policy,
    check_specs=CHECK_SPECS, resource_defs=RESOURCES,
)
def split_shards_fanout(allocation, profile):
    """Pass 2 of the temporal split, as the one-step `split_shards`: one step per batch of
    SPLITS_SHARDS_PER_STEP shards, then the checks over all shards."""
    batches = splits_split_plan(allocation=allocation, profile=profile).map(splits_split_batch).collect()
    outs = splits_split_finish(batches)
    return {**{name: getattr(outs, name) for name in SPLITS}, **{name: getattr(outs, name) for name in CHECK_OUTS}}
