"""Temporal split assets: profile (pass 1) -> allocation -> train/val/oot (pass 2) -> consolidated.

Every shard asset is partitioned by ``splits_shards`` (one dynamic partition per input
shard, key = 5-digit shard number) with a single-run backfill policy, so the sensor's ONE
run covers all new shards. The work lives in ``assets_pkg.splits.pipeline`` (the steps) and
the pure modules it calls (``profile``, ``allocation``, ``pass2``, ``outputs``).
"""

import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pyarrow as pa

from assets_pkg import layout
from assets_pkg.dagster_layer import check_result, config_class, run_level
from assets_pkg.io.locks import domain_lock
from assets_pkg.io.parquet_io_manager import existing_partition_file
from assets_pkg.obs import stage
from assets_pkg.resources.duckdb import DuckDBResource
from assets_pkg.settings import get_settings
from assets_pkg.splits import invariants
from assets_pkg.splits.discovery import Discovery, Shard, discover
from assets_pkg.splits.params import SplitParams
from assets_pkg.splits.pipeline import (
    allocation_file,
    clear_failure,
    consolidate,
    failed_shards,
    in_flight,
    manifest_file,
    prune_stages,
    read_json,
    record_failure,
    rejects_file,
    split_and_write,
    stale_shards,
    staged_file,
    update_label_rates,
    write_allocation,
)
from assets_pkg.splits.profile import PROFILE_SCHEMA, profile_shard, profile_stats
from assets_pkg.splits.rows import SPLITS
from assets_pkg.splits.shard_pool import ShardFailure, ShardPool, isolated
from assets_pkg.storage import as_path

GROUP = "splits"
KINDS = {"duckdb", "parquet"}
OWNERS = ["team:ml-platform"]
PARTITIONS_NAME = "splits_shards"
shard_partitions = dg.DynamicPartitionsDefinition(name=PARTITIONS_NAME)

PROFILE_KEY = dg.AssetKey(["splits", "shard_profile"])
ALLOCATION_KEY = dg.AssetKey(["splits", "customer_allocation"])
SPLIT_KEYS = {name: dg.AssetKey(["splits", name]) for name in SPLITS}
CONSOLIDATED_KEY = dg.AssetKey(["splits", "consolidated"])


class SplitConfig(config_class(SplitParams, dg.ConfigurableResource)):
    """Settings of the temporal split (declared in ``splits/params.py``). Each field defaults
    from the original script's env var, read when the run starts.

    A resource (``split_config``; a ``dg.Config`` subclass) rather than per-op config, so one
    value set in the launchpad applies to every splits step of the run.
    """

    def params(self) -> SplitParams:
        return self.settings()


def inbox_dir() -> Path:
    return layout.inbox_dir("transactions")


class StepProgress:
    """Progress of a step over many shards in the Dagster log: one line at most every
    ``interval`` seconds (shards done / total, rows, rows/s, ETA) and one at the end.

    Each log line is an event written to the instance's event log (a sqlite commit on a
    default instance), so per-shard or per-reader-event lines cost more than they tell; the
    per-shard numbers go into the step's metadata instead. Also the streaming reader's
    progress callback (text shards): its events are folded into the same throttle.
    """

    def __init__(self, context, what: str, total: int, interval: float = 15.0):
        self.context, self.what, self.total, self.interval = context, what, total, interval
        self.started = self.last = time.perf_counter()
        self.done = 0
        self.rows = 0
        self.current = ""

    def __call__(self, event) -> None:  # StreamingReader progress_callback
        if not getattr(event, "done", False):
            self.current = f" (reading {as_path(event.path).name}: {event.percent:.0f}%)"
            self._log()

    def shard_done(self, rows: int) -> None:
        self.done += 1
        self.rows += int(rows)
        self.current = ""
        self._log(force=self.done >= self.total)

    def _log(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self.last < self.interval:
            return
        self.last = now
        elapsed = max(now - self.started, 1e-9)
        eta = f"{elapsed / self.done * (self.total - self.done):.0f} s" if self.done else "?"
        self.context.log.info(
            f"{self.what}: {self.done}/{self.total} shards, {self.rows:,} rows, {self.rows / elapsed:,.0f} rows/s, "
            f"ETA {eta}{self.current}"
        )


def shards_for(keys, found: Discovery) -> list[Shard]:
    """The inbox shards of the run's partition keys; a key without its file is an error."""
    by_key = found.by_key()
    missing = [k for k in keys if k not in by_key]
    if missing:
        refused = "; ".join(str(p) for p in found.problems) or "none"
        raise dg.Failure(
            f"no usable input shard for partition(s) {missing[:10]} in {inbox_dir()} (refused files: {refused})"
        )
    return [by_key[k] for k in keys]


def splits_lock(context: dg.AssetExecutionContext):
    """The splits' domain lock (allocation, manifest, shard state and outputs) for a step."""
    return domain_lock("splits", context.run_id, logger=context.log)


def current_profiles(instance: dg.DagsterInstance) -> list[Path]:
    """The profile file of every registered shard that has one (what the IO manager loads)."""
    keys = instance.get_dynamic_partitions(PARTITIONS_NAME)
    paths = (existing_partition_file(PROFILE_KEY.path, key, shard_partitions) for key in keys)
    return [p for p in paths if p is not None]


@dg.asset(
    key=PROFILE_KEY,
    partitions_def=shard_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name=GROUP,
    kinds=KINDS,
    owners=OWNERS,
    code_version="2",  # 2: one row per customer with pre/post counts (profile.PROFILE_SCHEMA)
)
def shard_profile(context: dg.AssetExecutionContext, split_config: SplitConfig, duckdb: DuckDBResource):
    """Pass 1 of the temporal split, one input shard: customers with pre-split rows, label
    values and row counts (rows in, null customers, bad dates, missing labels).

    A shard that cannot be read fails alone: it gets no profile (an old one is removed),
    its error is logged and recorded (warehouse/splits/_failed/), and the other shards go
    on. The step still succeeds so the others are allocated and split in this run; the
    pass-2 step then fails the run naming the file, and the shard's train/val/oot
    partitions are the failed ones."""
    params = split_config.params()
    found = discover(inbox_dir())
    shards = shards_for(context.partition_keys, found)
    progress = StepProgress(context, "splits/shard_profile", len(shards))

    warehouse = get_settings().warehouse

    def profile(cursor, shard: Shard) -> pa.Table:  # a text shard is staged for pass 2 on the way
        return profile_shard(cursor, shard, params, found.signature, progress,
                             rejects_path=rejects_file(warehouse, shard.key),
                             stage_path=staged_file(warehouse, shard.key))

    # Parquet shards are profiled two at a time (one DuckDB thread each), at most two ahead
    # of the IO manager that writes them (ShardPool), so memory stays bounded. Text shards go
    # one at a time: two streaming readers next to Dagster's own ~170 MB measured 500-525 MB
    # peak at 10M rows, at the 512 MB budget, for ~10% less time. Progress is logged for the
    # step (throttled), not per shard.
    pool = ShardPool(duckdb.connect(), shards, isolated(profile), one_thread_each=True, **in_flight(params))

    def lazy_profile(shard: Shard) -> pa.RecordBatchReader:
        def batches():  # computed (or picked up) when the IO manager writes this partition
            table = pool.take(shard)
            if isinstance(table, ShardFailure):  # no rows: the IO manager removes an old profile
                record_failure(warehouse, table)
                context.log.error(f"shard {shard.key} not profiled, it will not be split: {table.error}")
                progress.shard_done(0)
                return
            clear_failure(warehouse, shard.key)
            progress.shard_done(profile_stats(table)["rows_in"])
            yield from table.to_batches()

        return pa.RecordBatchReader.from_batches(PROFILE_SCHEMA, batches())

    return dg.Output(
        {shard.key: lazy_profile(shard) for shard in shards},
        metadata={"shards": len(shards), "inputs": dg.MetadataValue.json([s.name for s in shards])},
    )


@dg.asset(
    key=ALLOCATION_KEY,
    # a dep, not an input: it reads every registered shard's profile itself (current_profiles),
    # whichever step (or worker) wrote it
    deps=[PROFILE_KEY],
    group_name=GROUP,
    kinds=KINDS,
    owners=OWNERS,
    check_specs=[dg.AssetCheckSpec("split_ratio", asset=ALLOCATION_KEY,
                                   description="train share of known customers within 2 points of TRAIN_RATIO")],
    code_version="1",
)
def customer_allocation(context: dg.AssetExecutionContext, split_config: SplitConfig, duckdb: DuckDBResource):
    """Known customers -> train | val by the salted hash md5(f"{RANDOM_SEED}:{customer}") vs
    TRAIN_RATIO (stable: a customer never changes side as shards arrive), the global label
    map, and the split manifest (warehouse/splits/split_manifest.json); this asset writes
    warehouse/splits/customer_allocation.parquet itself, under the splits lock."""
    params = split_config.params()
    warehouse = get_settings().warehouse
    started = time.perf_counter()
    with splits_lock(context):
        # every shard's profile as it is now (the list loaded as input may predate another
        # run's shards); the allocation file and the manifest are published together under
        # the lock, so no run overwrites them with an allocation computed before its own
        failed = failed_shards(warehouse, discover(inbox_dir()))
        allocation, manifest = write_allocation(duckdb.connect(), current_profiles(context.instance), params,
                                                warehouse, failed)
    if failed:
        context.log.error(f"allocation built without {len(failed)} shard(s) that failed to profile: "
                          + "; ".join(f"{k}: {v['error']}" for k, v in sorted(failed.items())))
    ratio = invariants.split_ratio(manifest, params)
    rows = manifest["rows"]
    path = allocation_file(warehouse)
    return dg.MaterializeResult(
        check_results=[check_result(ratio, ALLOCATION_KEY)],
        metadata={
            "dagster/row_count": allocation.customers.num_rows,
            "bytes": path.stat().st_size if path.exists() else 0,
            "path": dg.MetadataValue.path(str(path)),
            "known_customers": manifest["customers"]["known"],
            "train_customers": manifest["customers"]["train"],
            "val_customers": manifest["customers"]["val"],
            "oot_customers": manifest["customers"]["oot"],
            "shards": len(manifest["shards"]),
            "labels": dg.MetadataValue.json(manifest["labels"]),
            "label_changed_rows": manifest["label_changed"],
            "expected_rows": dg.MetadataValue.json(rows),
            "changed_shards": dg.MetadataValue.json(manifest["changed_shards"]),
            "failed_shards": dg.MetadataValue.json(failed),
            "manifest": dg.MetadataValue.path(str(manifest_file(warehouse))),
            "seconds": round(time.perf_counter() - started, 3),
        },
    )


@dg.multi_asset(
    name="split_shards",
    specs=[
        dg.AssetSpec(
            SPLIT_KEYS[name],
            deps=[ALLOCATION_KEY, PROFILE_KEY],
            partitions_def=shard_partitions,
            group_name=GROUP,
            kinds=KINDS,
            owners=OWNERS,
            description=f"Pass 2: the {name} rows of each input shard, same shard number "
                        f"(splits/{name}/part-NNNNN.<OUTPUT_FORMAT>; an empty split has no file).",
        )
        for name in SPLITS
    ],
    check_specs=[
        dg.AssetCheckSpec("no_customer_leakage", asset=SPLIT_KEYS["oot"], blocking=True,
                          description="train ∩ oot = ∅, train ∩ val = ∅ (known ∩ oot = ∅ when strict), over all shards"),
        dg.AssetCheckSpec("shard_mapping", asset=SPLIT_KEYS["train"], blocking=True,
                          description="every output shard number exists in the input; outputs current"),
        dg.AssetCheckSpec("row_accounting", asset=SPLIT_KEYS["train"], blocking=True,
                          description="rows in = train + val + oot + dropped, per shard and in total"),
    ],
    partitions_def=shard_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    code_version="1",
)
def split_shards(context: dg.AssetExecutionContext, split_config: SplitConfig, duckdb: DuckDBResource):
    """Pass 2 of the temporal split: each shard joined with the allocation in DuckDB and
    written as train/val/oot shards with the input's number. Shards that an allocation
    change affects (a new customer became known, the label map changed) are re-split in
    the same run and recorded as materializations of their partitions. Under the splits
    lock: the manifest and allocation it reads are the ones published last."""
    with splits_lock(context):
        yield from _split_shards(context, split_config, duckdb)


def _split_shards(context: dg.AssetExecutionContext, split_config: SplitConfig, duckdb: DuckDBResource):
    params = split_config.params()
    warehouse = get_settings().warehouse
    scope = pass2_scope(context, warehouse)
    con = duckdb.connect()
    keys = scope.run_keys + scope.affected
    progress = StepProgress(context, "splits pass 2", len(keys))
    with stage("splits_pass2", context.log, shards=len(keys)) as stats:
        results = split_and_write(
            con, shards_for(keys, scope.found), params, warehouse, scope.manifest, scope.found.signature,
            customers=allocation_file(warehouse), progress_callback=progress,
            on_shard=lambda r: progress.shard_done(r.counts["rows_in"]),
        )
        stats["rows"] = sum(r.counts["rows_in"] for r in results)
    outcomes, metadata, failure = pass2_report(context, params, con, scope, results, stats["seconds"],
                                               stats["peak_rss_mb"])
    if failure is not None:
        yield from (check_result(o) for o in outcomes)
        raise failure
    for name in SPLITS:
        yield dg.MaterializeResult(
            asset_key=SPLIT_KEYS[name], metadata=metadata[name],
            check_results=[check_result(o) for o in outcomes if o.asset == f"splits/{name}"],
        )


@dataclass
class Pass2Scope:
    """What a pass 2 splits, read under the splits lock from the manifest published last:
    the run's shards (``run_keys``, without the ``failed`` ones) and the shards outside the
    run that the allocation made stale (``affected``)."""

    manifest: dict
    found: Discovery
    failed: dict
    run_keys: list[str]
    affected: list[str]


def pass2_scope(context, warehouse: Path) -> Pass2Scope:
    manifest = read_json(manifest_file(warehouse))
    if manifest is None:
        raise dg.Failure("splits/customer_allocation has not been materialized (no split manifest)")
    found = discover(inbox_dir())
    failed = {k: v for k, v in manifest.get("failed_shards", {}).items() if k in context.partition_keys}
    run_keys = [k for k in context.partition_keys if k not in failed]
    affected = [k for k in stale_shards(warehouse, manifest, exclude=context.partition_keys) if k in found.by_key()]
    if affected:
        context.log.info(f"re-splitting {len(affected)} shard(s) the new allocation affects: {affected}")
    return Pass2Scope(manifest, found, failed, run_keys, affected)


def pass2_report(context, params: SplitParams, con, scope: Pass2Scope, results, seconds: float,
                 peak_rss_mb: float) -> tuple[list, dict, dg.Failure | None]:
    """After pass 2 wrote ``results`` (every shard of ``scope``): the materializations of the
    shards outside the run, the label rates, the stages pruned, the global checks and each
    split's metadata (per partition, and the run's). With failed shards in the run: no
    metadata, and the failure naming them that the step raises after its check results."""
    warehouse = get_settings().warehouse
    failed, run_keys, affected = scope.failed, scope.run_keys, scope.affected
    by_key = {r.key: r for r in results}
    # partitions outside the run's range: record what was rewritten; with failed shards in
    # the run, the run's own good partitions too (one by one: an output of the step would
    # mark the failed partitions materialized)
    for key in affected + (run_keys if failed else []):
        r = by_key[key]
        for name in SPLITS:
            context.log_event(dg.AssetMaterialization(
                asset_key=SPLIT_KEYS[name], partition=key,
                metadata={"dagster/row_count": r.counts[name], "bytes": r.bytes[name],
                          "reason": "allocation change" if key in affected else "split",
                          "rows_in": r.counts["rows_in"]},
            ))
    rates = update_label_rates(con, warehouse, params)
    pruned = prune_stages(warehouse, scope.found)
    if pruned:
        context.log.info(f"removed the staged rows of {len(pruned)} shard(s) no longer in the inbox: {pruned[:10]}")
    outcomes = invariants.global_outcomes(con, warehouse, inbox_dir(), params)
    if failed:
        return outcomes, {}, dg.Failure(
            description=f"{len(failed)} shard(s) failed to profile and were not split (the other "
                        f"{len(run_keys)} were): " + "; ".join(v["error"] for _, v in sorted(failed.items())),
            metadata={"failed_shards": dg.MetadataValue.json(failed),
                      "split_shards": dg.MetadataValue.json(run_keys)},
        )
    run_results = [by_key[k] for k in run_keys]
    metadata = {}
    for name in SPLITS:
        rows = sum(r.counts[name] for r in run_results)
        for r in run_results:  # per partition, so the UI plots each shard's own row count
            context.add_asset_metadata(
                {"dagster/row_count": r.counts[name], "bytes": r.bytes[name]},
                asset_key=SPLIT_KEYS[name], partition_key=r.key,
            )
        meta = {
            "rows_in_run": rows,
            "rows_by_shard": dg.MetadataValue.json({r.key: r.counts[name] for r in run_results}),
            "bytes": sum(r.bytes[name] for r in run_results),
            "files_written": sum(1 for r in run_results if r.files[name] is not None),
            # as the original reports them: input shards that gave this split no row
            "empty_shards": sum(1 for r in run_results if not r.counts[name]),
            "shards": len(run_results),
            "format": params.output_format,
            "seconds": seconds,
            "peak_rss_mb": peak_rss_mb,
        }
        if params.labelled:
            meta["label_rate"] = dg.MetadataValue.json(rates.get(name, {}))
        if name == "train":
            meta.update(_accounting_metadata(run_results))
            meta["affected_shards_resplit"] = dg.MetadataValue.json(affected)
        if len(run_results) == 1:
            path = run_results[0].files[name]
            meta["path"] = dg.MetadataValue.path(str(path)) if path else "(empty split: no file)"
            meta["fingerprint"] = scope.manifest["shards"].get(run_results[0].key, {}).get("fingerprint", "")
        metadata[name] = run_level(meta, len(run_results))
    return outcomes, metadata, None


def _accounting_metadata(results) -> dict:
    keys = ("rows_in", *SPLITS, "dropped_policy", "dropped_label", "dropped_null_customer",
            "dropped_bad_date", "rejected_lines")
    return {f"rows_{k}" if not k.startswith("rows") else k: sum(r.counts.get(k, 0) for r in results) for k in keys}


@dg.asset(
    key=CONSOLIDATED_KEY,
    deps=[SPLIT_KEYS[n] for n in SPLITS],
    group_name=GROUP,
    kinds=KINDS,
    owners=OWNERS,
    check_specs=[dg.AssetCheckSpec("consolidated_matches_shards", asset=CONSOLIDATED_KEY,
                                   description="the export tree (chosen mode) has exactly its splits' shard rows")],
    code_version="2",  # 2: the original's tree (training_data/, oot_data/) in the chosen mode
)
def consolidated(context: dg.AssetExecutionContext, split_config: SplitConfig, duckdb: DuckDBResource):
    """The original scripts' export tree under exports/splits/, from the split shards (row
    counts equal the shards exactly), plus the split manifest. ENABLE_TRUE_STREAMING=false
    (default) or CONSOLIDATE_STREAMING_OUTPUT=true: single files
    training_data/{train,val,test}/<split>_processed_data.<ext> and oot_data/oot_data.<ext>
    (test and oot_data: the OOT rows; written even when empty); ENABLE_TRUE_STREAMING=true
    alone: 1:1 shards training_data/{train,val,test}/part-NNNNN.<ext>, oot_data/part-NNNNN.<ext>.
    The other mode's files are removed."""
    params = split_config.params()
    settings = get_settings()
    started = time.perf_counter()
    with splits_lock(context):  # shards and manifest of one moment, not half of another run's pass 2
        out = consolidate(duckdb.connect(), settings.warehouse, settings.exports, params)
        outcome = invariants.consolidated_matches(settings.warehouse, settings.exports, params)
    targets = {k: v for k, v in out.items() if k != "mode"}
    meta = {"dagster/row_count": sum(v["rows"] for k, v in targets.items() if k != "oot_data"),
            "bytes": sum(v["bytes"] for v in targets.values()),
            "mode": out["mode"],
            "seconds": round(time.perf_counter() - started, 3)}
    for name, v in targets.items():
        meta[f"rows_{name}"] = v["rows"]
        meta[f"files_{name}"] = len(v["files"])
    meta["path"] = dg.MetadataValue.path(str(layout.exports_dir("splits", settings.exports)))
    return dg.MaterializeResult(metadata=meta, check_results=[check_result(outcome, CONSOLIDATED_KEY)])


SPLIT_ASSETS = [shard_profile, customer_allocation, split_shards, consolidated]
