"""`summary/account_summary` as a fan-out graph, for the cluster executors.

When ``ASSETS_PKG_EXECUTOR`` is not ``in_process`` (multiprocess, celery) a range run of
``account_summary`` is this graph instead of the one-step asset: a plan step, one step per
(account bucket, month chunk), one combine step per group of months (publishes each
month and runs its checks), then a finish step that reports the checks per month and for
the run and records the processed batches. The executor may send every step to another
worker: each reads its inputs from the data root and writes only its own outputs
(:mod:`assets_pkg.summary.fanout`). The embedded default keeps the one-step asset, which
is faster on one machine.
"""

import json

import dagster as dg

from assets_pkg.dagster_layer import per_partition_check
from assets_pkg.resources.duckdb import DuckDBResource
from assets_pkg.step_messages import step_messages_io_manager
from assets_pkg.summary import fanout
from assets_pkg.summary.assets import ACCOUNT_SUMMARY, _case_metadata, account_summary, monthly_partitions
from assets_pkg.summary.config import load_summary_settings
from assets_pkg.summary.plan import month_file

CHECK_SPECS = list(account_summary.check_specs)
CHECK_OUTS = {spec.get_python_identifier(): spec for spec in CHECK_SPECS}

STEPS_IO = "summary_fanout_steps_io"
MESSAGE = {"io_manager_key": STEPS_IO}


def _key(*parts: str) -> str:
    return "_".join(p.replace("-", "_") for p in parts)


@dg.op(out=dg.DynamicOut(str, **MESSAGE), tags={"summary/step": "plan"})
def summary_fanout_plan(context: dg.OpExecutionContext, duckdb: DuckDBResource):
    """Pin the batch files, cut the account keys into bucket ranges and split the run's
    months into (bucket, chunk) steps."""
    months = context.partition_keys
    plan = fanout.plan_fanout(load_summary_settings(), months[0], months[-1], context.run_id,
                              con=duckdb.connect(), logger=context.log)
    context.log.info(f"summary fan-out: {plan.buckets} bucket(s) x {len(plan.chunks)} chunk(s) of months "
                     f"{plan.start}..{plan.end}, {len(plan.groups)} combine step(s), about {plan.accounts} accounts")
    for bucket, lo, hi in plan.steps:
        step = {"plan": plan.to_json(), "bucket": bucket, "lo": lo, "hi": hi}
        yield dg.DynamicOutput(json.dumps(step), mapping_key=_key(f"b{bucket}", lo))


@dg.op(out=dg.Out(str, **MESSAGE), tags={"summary/step": "bucket"})
def summary_bucket_step(context: dg.OpExecutionContext, duckdb: DuckDBResource, step: str) -> str:
    """Build one account bucket's months of one chunk into the run's staging folder."""
    data = json.loads(step)
    plan = fanout.FanoutPlan.from_json(data["plan"])
    stats = fanout.build_bucket(load_summary_settings(), plan, data["bucket"], data["lo"], data["hi"],
                                con=duckdb.connect(), logger=context.log)
    context.add_output_metadata({"dagster/row_count": stats.rows, "peak_rss_mb": stats.peak_rss_mb,
                                 "seconds": round(stats.seconds, 3)})
    return data["plan"]


@dg.op(out=dg.DynamicOut(str, **MESSAGE), tags={"summary/step": "groups"})
def summary_fanout_groups(plans: list[str]):
    """Every bucket step is done: one combine step per group of months, the costliest
    handed out first."""
    plan = fanout.FanoutPlan.from_json(plans[0])
    for lo, hi in fanout.groups_costliest_first(plan, load_summary_settings().history_length):
        yield dg.DynamicOutput(json.dumps({"plan": plans[0], "lo": lo, "hi": hi}), mapping_key=_key(lo, hi))


@dg.op(out=dg.Out(dict, **MESSAGE), tags={"summary/step": "combine"})
def summary_combine_months(context: dg.OpExecutionContext, duckdb: DuckDBResource, group: str) -> dict:
    """Join the bucket files of each month of one group, in key order, into its month file
    (atomic) and run that month's checks."""
    data = json.loads(group)
    plan = fanout.FanoutPlan.from_json(data["plan"])
    return fanout.combine_group(load_summary_settings(), plan, data["lo"], data["hi"], month_file,
                                con=duckdb.connect(), logger=context.log)


@dg.op(out={"result": dg.Out(dg.Nothing), **{name: dg.Out(dg.Nothing) for name in CHECK_OUTS}},
       tags={"summary/step": "finish"})
def summary_fanout_finish(context: dg.OpExecutionContext, duckdb: DuckDBResource, plans: list[str],
                          combined: list[dict]):
    """The checks the combine steps computed, reported per month and for the run; the
    processed batches recorded; staging removed."""
    plan = fanout.FanoutPlan.from_json(plans[0])
    newly = fanout.finish(load_summary_settings(), plan, con=duckdb.connect(), run_id=context.run_id,
                          logger=context.log)
    rows = {m: n for part in combined for m, n in part["rows_per_month"].items()}
    for outcome in fanout.run_outcomes(combined):
        yield per_partition_check(context, outcome.by_partition, outcome)
    yield dg.Output(None, "result", metadata={
        "dagster/row_count": sum(rows.values()), "months": len(rows), "buckets": plan.buckets,
        "chunks": len(plan.chunks), "combine_steps": len(plan.groups), "newly_processed_batches": len(newly),
        "rows_per_month": dg.MetadataValue.json(rows), **_case_metadata(context.run.tags),
    })


# the same asset as the one-step account_summary (key, partitions, policy, group, owners,
# kinds, code version, checks): only how it is computed differs
_ONE_STEP = account_summary.specs_by_key[ACCOUNT_SUMMARY]


@dg.graph_asset(
    key=ACCOUNT_SUMMARY, partitions_def=monthly_partitions, backfill_policy=account_summary.backfill_policy,
    group_name=_ONE_STEP.group_name, kinds=_ONE_STEP.kinds, owners=_ONE_STEP.owners,
    code_version=_ONE_STEP.code_version, check_specs=CHECK_SPECS,
    resource_defs={STEPS_IO: step_messages_io_manager(fanout.DOMAIN)},
)
def account_summary_fanout():
    """One row per (account, month) with `<col>_history` arrays, as the one-step
    `account_summary`, built by steps that fit any worker: (account key range, month
    chunk) steps, then one combine per group of months that publishes and checks them
    (SUMMARY_BUCKETS, SUMMARY_STEP_MEMORY_MB, SUMMARY_CHUNK_MONTHS, SUMMARY_COMBINE_MONTHS)."""
    steps = summary_fanout_plan()
    plans = steps.map(summary_bucket_step).collect()
    combined = summary_fanout_groups(plans).map(summary_combine_months).collect()
    outs = summary_fanout_finish(plans, combined)
    return {"result": outs.result, **{name: getattr(outs, name) for name in CHECK_OUTS}}
