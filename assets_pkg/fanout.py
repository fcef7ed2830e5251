"""Fan-out of a partitioned single-run asset into steps that fit any worker.

With ``ASSETS_PKG_EXECUTOR`` other than ``in_process`` a range run of such an asset (the
time-series days, the ingest files) is a graph: a plan step splits the run's partitions
into batches of ``FANOUT_BATCH_PARTITIONS``, one mapped step per batch computes and writes
only its own partitions (reading its inputs from the data root, so it runs on another
worker with an empty working directory), and a finish step records each partition's
metadata and the checks exactly as the one-step asset does. The embedded default keeps the
one-step asset, which is faster on one machine.

A domain gives two functions, which its one-step asset uses too (so both paths compute the
same thing): ``step(context, config, keys) -> {key: record}`` writes the partitions
``keys`` and returns a JSON record per partition (:func:`to_message` keeps metadata
values such as paths), and ``finish(context, config, records) -> (run metadata, check
results)`` turns every partition's record into what the asset reports.
"""

import json
import re
from collections.abc import Callable

import dagster as dg

from assets_pkg.batching import batches
from assets_pkg.settings import env_int, executor_kind
from assets_pkg.step_messages import remove_ended_runs_messages, remove_messages, step_messages_io_manager

BATCH_VAR = "FANOUT_BATCH_PARTITIONS"


def fanout_enabled() -> bool:
    """Whether range runs fan out: any executor but the embedded ``in_process``."""
    return executor_kind() != "in_process"


def batch_size() -> int:
    """Partitions per fan-out step (``FANOUT_BATCH_PARTITIONS``, default 1)."""
    size = env_int(BATCH_VAR, 1)
    if size < 1:
        raise dg.Failure(f"{BATCH_VAR}={size}: expected a number of partitions per step, at least 1")
    return size


def mapping_key(index: int, batch: list[str]) -> str:
    """A step's mapping key: its index (unique) and its first partition (readable)."""
    return f"{index}_{re.sub(r'[^A-Za-z0-9_]', '_', batch[0])}"[:100]


# metadata values that a step message carries, by how they are rebuilt in the finish step
_MESSAGE_VALUES = {"path": dg.MetadataValue.path, "json": dg.MetadataValue.json, "md": dg.MetadataValue.md}


def to_message(metadata: dict) -> dict:
    """Metadata as JSON for a step message (paths, JSON and markdown values kept)."""
    out = {}
    for key, value in metadata.items():
        if isinstance(value, dg.PathMetadataValue):
            value = {"__metadata__": "path", "value": str(value.path)}
        elif isinstance(value, dg.JsonMetadataValue):
            value = {"__metadata__": "json", "value": value.data}
        elif isinstance(value, dg.MarkdownMetadataValue):
            value = {"__metadata__": "md", "value": value.md_str}
        out[key] = value
    return out


def from_message(metadata: dict) -> dict:
    """The metadata :func:`to_message` carried, with its Dagster values back."""
    return {key: _MESSAGE_VALUES[value["__metadata__"]](value["value"])
            if isinstance(value, dict) and "__metadata__" in value else value
            for key, value in metadata.items()}


def fanout_asset(one_step: dg.AssetsDefinition, *, domain: str, step: Callable, finish: Callable,
                 config: type[dg.Config] | None = None, resource_keys: tuple[str, ...] = (),
                 upstream: dg.AssetKey | None = None) -> dg.AssetsDefinition:
    """``one_step`` (a partitioned asset with the single-run backfill policy) as a fan-out
    graph asset: same key, partitions, policy, group, owners, kinds, code version and
    checks; ``upstream``: the asset its steps read from the data root (a dependency only).
    Run config goes to the ``<name>_fanout_step`` and ``<name>_fanout_finish`` ops."""
    spec = one_step.specs_by_key[one_step.key]
    name = "__".join(one_step.key.path)
    check_specs = list(one_step.check_specs)
    check_outs = [s.get_python_identifier() for s in check_specs]
    io_key = f"{domain}_fanout_steps_io"
    schema = config.to_config_schema() if config else None
    resources = set(resource_keys)

    def _config(context):
        return config(**context.op_config) if config else None

    @dg.op(name=f"{name}_fanout_plan", ins={"upstream": dg.In(dg.Nothing)} if upstream else None,
           out=dg.DynamicOut(str, io_manager_key=io_key), tags={"fanout/step": "plan"})
    def plan(context: dg.OpExecutionContext):
        """Split the run's partitions into batches, one step each (and remove the messages
        of earlier runs that ended before their finish step)."""
        left = remove_ended_runs_messages(domain, context.instance)
        if left:
            context.log.info(f"{domain} fan-out: removed the step messages of ended run(s) {', '.join(left)}")
        keys = list(context.partition_keys)
        parts = batches(keys, batch_size())
        context.log.info(f"{name} fan-out: {len(keys)} partition(s) in {len(parts)} step(s)")
        for index, batch in enumerate(parts):
            yield dg.DynamicOutput(json.dumps(batch), mapping_key=mapping_key(index, batch))

    @dg.op(name=f"{name}_fanout_step", config_schema=schema, required_resource_keys=resources,
           out=dg.Out(dict, io_manager_key=io_key), tags={"fanout/step": "partitions"})
    def run_step(context: dg.OpExecutionContext, batch: str) -> dict:
        """Compute and write this step's partitions only; their records for the finish step."""
        return step(context, _config(context), json.loads(batch))

    @dg.op(name=f"{name}_fanout_finish", config_schema=schema, required_resource_keys=resources,
           out={"result": dg.Out(), **{out: dg.Out(dg.Nothing) for out in check_outs}},
           tags={"fanout/step": "finish"})
    def finish_step(context: dg.OpExecutionContext, records: list[dict]):
        """Every partition's metadata and the checks, as the one-step asset reports them."""
        by_key = {key: record for part in records for key, record in part.items()}
        ordered = {key: by_key[key] for key in context.partition_keys}
        # the asset's context: per-partition metadata goes on this step's output, the asset
        metadata, check_results = finish(dg.AssetExecutionContext(context), _config(context), ordered)
        yield from check_results
        remove_messages(domain, context.run_id, name)
        # the steps wrote every partition: nothing for the IO manager to write
        yield dg.Output(None, "result", metadata=metadata)

    def _wire(upstream_value=None):
        steps = plan(upstream_value) if upstream else plan()
        outs = finish_step(steps.map(run_step).collect())
        if not check_outs:  # one output: the handle itself
            return outs
        return {"result": outs.result, **{out: getattr(outs, out) for out in check_outs}}

    kwargs = dict(
        key=one_step.key,
        partitions_def=one_step.partitions_def, backfill_policy=one_step.backfill_policy,
        group_name=spec.group_name, kinds=spec.kinds, owners=spec.owners, code_version=spec.code_version,
        check_specs=check_specs, description=spec.description,
        resource_defs={io_key: step_messages_io_manager(domain)},
    )
    if upstream:
        @dg.graph_asset(ins={"upstream": dg.AssetIn(key=upstream, dagster_type=dg.Nothing)}, **kwargs)
        def _graph(upstream):
            return _wire(upstream)
    else:
        @dg.graph_asset(**kwargs)
        def _graph():
            return _wire()
    return _graph
