"""Time-series assets: resampled -> merged -> export -> analysis, one partition per UTC day.

Thin Dagster layer over the pure modules of this package. Each asset runs over one day or,
with the single-run backfill policy, over a range of days in one run (looping day by day,
so memory stays one day's window). Checks are computed inside the ops (``check_specs``):
an ``@asset_check`` without partitions would load every partition.
"""

import functools
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path

import dagster as dg

from assets_pkg import layout
from assets_pkg.checking import CheckOutcome
from assets_pkg.dagster_layer import (
    add_partition_metadata,
    config_class,
    log_progress,
    per_partition_check,
    run_level,
)
from assets_pkg.io.atomic import atomic_write_json
from assets_pkg.obs import log_event, peak_rss_mb, stage
from assets_pkg.resources.duckdb import DuckDBResource
from assets_pkg.settings import at_load, env_value
from assets_pkg.storage import as_path
from assets_pkg.storage.objects import file_exists
from assets_pkg.timeseries import analysis as ana
from assets_pkg.timeseries.catalog import Catalog, catalog_path, load_catalog
from assets_pkg.timeseries.export import export_day
from assets_pkg.timeseries.merge import merge_day
from assets_pkg.timeseries.resample import resample_day
from assets_pkg.timeseries.settings import TimeseriesSettings

GROUP = "timeseries"
PREFIX = ["timeseries"]


def daily_partitions() -> dg.DailyPartitionsDefinition:
    """UTC days from ``TIMESERIES_START_DATE`` (default 2024-01-01, the demo's first day).
    A bad value does not stop the code location loading: the declared default is used and
    the domain's runs fail naming the variable."""
    start = at_load(lambda: TimeseriesSettings(start_date=env_value(TimeseriesSettings, "start_date")).start_date,
                    TimeseriesSettings.model_fields["start_date"].default, "timeseries")
    return dg.DailyPartitionsDefinition(start_date=start, timezone="UTC")


DAILY = daily_partitions()


class TimeseriesConfig(config_class(TimeseriesSettings, exclude=("start_date",))):
    """Where the catalog is, and the settings a run may override (declared in
    ``timeseries/settings.py``); env defaults are read when the run starts."""

    def load(self) -> Catalog:
        self.settings()  # every time-series setting valid (a bad one fails the run naming it)
        return load_catalog(as_path(self.catalog) if self.catalog else catalog_path())

    def threshold(self, catalog: Catalog) -> float:
        return catalog.coverage_threshold if self.coverage_threshold < 0 else self.coverage_threshold


def exports_dir() -> Path:
    return layout.exports_dir("timeseries")


def _day_of(path: Path) -> str:
    return as_path(path).name.split(".")[0]


def _by_day(paths) -> dict:
    return {_day_of(p): [p] for p in paths}


def _by_partition(outcomes: list[CheckOutcome]) -> dict:
    """Each day's outcome by its day (the partition it was evaluated on)."""
    return {o.metadata["day"]: o for o in outcomes}


def _combine(outcomes: list[CheckOutcome]) -> CheckOutcome:
    """One check result for a run over several days: passes when every day passes."""
    first = outcomes[0]
    failed = [o for o in outcomes if not o.passed]
    if len(outcomes) == 1:
        return first
    desc = "; ".join(o.description for o in failed[:5]) if failed else f"{len(outcomes)} days passed"
    meta = {"days": len(outcomes), "failed_days": [o.metadata.get("day") for o in failed]}
    meta["by_day"] = {o.metadata.get("day"): o.metadata for o in outcomes}
    return CheckOutcome(first.asset, first.name, not failed, first.severity, desc, meta)


def _numeric_sum(dicts: list[dict]) -> dict:
    out: dict = {}
    for d in dicts:
        for k, v in d.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[k] = out.get(k, 0) + v
    return out


# Every time-series asset: one UTC day per partition, a range of days in one run.
daily_asset = functools.partial(
    dg.asset,
    key_prefix=PREFIX,
    group_name=GROUP,
    owners=["team:analytics"],
    code_version="1",
    partitions_def=DAILY,
    backfill_policy=dg.BackfillPolicy.single_run(),
)


@daily_asset(
    kinds={"duckdb", "parquet"},
)
def resampled(context: dg.AssetExecutionContext, config: TimeseriesConfig, duckdb: DuckDBResource):
    """Every dataset of `datasets.yaml` at the target resolution, one UTC day per partition.

    Stacked layout: `dataset`, `ts` (UTC), the key columns and one `<dataset>__<column>`
    column per value (NULL outside its dataset). Down: aggregated per bucket; same:
    passthrough (duplicates aggregated); up: forward fill / linear / none within a limit.
    Only the day's rows (plus the fill margin) are kept: Parquet row groups outside the day
    are skipped, CSV is streamed and filtered. Rejects and duplicates are counted.
    """
    catalog = config.load()
    days, reject_samples = [], {}

    def one_day(day: str):
        table, st, rejects = _resample_one(context, con, catalog, day)
        reject_samples.update(rejects)
        days.append(st)
        _observe_day(context, day, st)
        return table

    with closing(duckdb.connect()) as con:
        value = _per_day(context.partition_keys, one_day)
        meta = _datasets_metadata(catalog)
        if days:  # one day: computed already, its numbers become the materialization's metadata
            meta.update(_numeric_sum(days), peak_rss_mb=peak_rss_mb())
        if reject_samples:
            meta["rejects_sample"] = dg.MetadataValue.json(reject_samples)
        yield dg.Output(value, metadata=meta)


def _resample_one(context, con, catalog: Catalog, day: str):
    """One day resampled: its table, its numbers, its reject samples (logged)."""
    with stage("timeseries_resampled", context.log, day=day) as st:
        table, results = resample_day(con, catalog, day, logger=context.log, progress_callback=log_progress(context))
        st.update(_resample_numbers(table, results))
    return table, st, _log_rejects(context, day, results)


def _datasets_metadata(catalog: Catalog) -> dict:
    return {"datasets": dg.MetadataValue.json(
        {spec.name: {"mode": spec.mode(catalog.target_resolution_us), "file": str(spec.file)}
         for spec in catalog.datasets})}


class _LazyDays(Mapping):
    """``{day: value}`` computed one day at a time as the IO manager writes it, so a run over
    many days holds one day in memory (a dict of every day's table would hold them all)."""

    def __init__(self, days, compute):
        self._days, self._compute = list(days), compute

    def __getitem__(self, day):
        if day not in self._days:
            raise KeyError(day)
        return self._compute(day)

    def __iter__(self):
        return iter(self._days)

    def __len__(self):
        return len(self._days)


def _observe_day(context, day: str, numbers: dict) -> None:
    """In a run over several days, each day's own numbers on that day's materialization
    (the range's output metadata is copied onto every day: its totals are labelled run/...)."""
    if len(context.partition_keys) > 1:
        add_partition_metadata(context, {day: _plottable(numbers)})


def _plottable(numbers: dict) -> dict:
    plottable = {k: v for k, v in numbers.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if "rows" in plottable:
        plottable.setdefault("dagster/row_count", plottable["rows"])
    return plottable


def _per_day(partition_keys, compute):
    """One day: its value now. Several: a lazy ``{day: value}`` for the IO manager."""
    if len(partition_keys) == 1:
        return compute(partition_keys[0])
    return _LazyDays(partition_keys, compute)


def _resample_numbers(table, results) -> dict:
    numbers = {"rows": table.num_rows, "rejects": sum(r.load.total_rejects for r in results),
               "duplicates_aggregated": sum(r.load.duplicates for r in results)}
    for r in results:
        for k, v in r.as_metadata().items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                numbers[f"{k}/{r.spec.name}"] = v
    return numbers


def _log_rejects(context, day: str, results) -> dict:
    samples = {}
    for r in results:
        if r.load.total_rejects:
            samples[r.spec.name] = r.load.rejects_table().slice(0, 20).to_pylist()
            log_event("timeseries_rejects", context.log, level="warning", day=day, dataset=r.spec.name,
                      rejects=r.load.total_rejects, first=samples[r.spec.name][:5])
    return samples


@daily_asset(
    kinds={"duckdb", "parquet"},
    ins={"resampled": dg.AssetIn(key=dg.AssetKey([*PREFIX, "resampled"]), metadata={"load_as": "paths"})},
    check_specs=[
        dg.AssetCheckSpec("unique_buckets", asset=dg.AssetKey([*PREFIX, "merged"]), partitions_def=DAILY,
                          description="One row per (bucket, key)."),
        dg.AssetCheckSpec("coverage", asset=dg.AssetKey([*PREFIX, "merged"]), partitions_def=DAILY,
                          description="Share of the day's buckets each dataset filled (WARN below the threshold)."),
    ],
)
def merged(context: dg.AssetExecutionContext, config: TimeseriesConfig, duckdb: DuckDBResource, resampled):
    """All datasets of a day on one time axis: one row per `bucket` (and key), one column per
    dataset value named `<dataset>__<column>`, rows aligned to the nearest bucket within the
    tolerance; outer (default) or inner join. Returns data: the IO manager keeps it in the
    warehouse; no user-facing file (that is `timeseries/export`)."""
    catalog = config.load()
    sources = _by_day(resampled)
    days, uniq, cov = [], [], []

    def one_day(day: str):
        table, st, day_uniq, day_cov = _merge_one(context, con, catalog, config, day, sources.get(day, []))
        uniq.append(day_uniq)
        cov.append(day_cov)
        days.append(st)
        _observe_day(context, day, _merged_numbers(st, day_cov))
        return table

    with closing(duckdb.connect()) as con:
        value = _per_day(context.partition_keys, one_day)
        meta = {}
        if days:  # one day: computed already, its numbers become the materialization's metadata
            meta.update(_numeric_sum(days), peak_rss_mb=peak_rss_mb())
            meta.pop("dagster/row_count", None)  # the IO manager reports what it wrote
            meta.update({k: v for k, v in cov[0].metadata.items() if k.startswith("coverage/")})
        yield dg.Output(value, metadata=meta)  # a range run computes each day while it is stored
    yield per_partition_check(context, _by_partition(uniq), _combine(uniq))
    yield per_partition_check(context, _by_partition(cov), _combine(cov))


def _merge_one(context, con, catalog: Catalog, config: TimeseriesConfig, day: str, sources: list):
    """One day merged: its table, its numbers and its two check outcomes (on the merged
    rows, before they are stored)."""
    with stage("timeseries_merged", context.log, day=day) as st:
        table, stats = merge_day(con, catalog, sources, day)
        st.update(stats.as_metadata())
    uniq = ana.unique_buckets_outcome(con, table, day, catalog.key_columns)
    cov = ana.coverage_outcome(con, table, catalog, day, config.threshold(catalog))
    return table, st, uniq, cov


def _merged_numbers(st: dict, cov: CheckOutcome) -> dict:
    return {**st, **{k: v for k, v in cov.metadata.items() if k.startswith("coverage/")}}


@daily_asset(
    kinds={"duckdb", "parquet", "csv"},
    ins={"merged": dg.AssetIn(key=dg.AssetKey([*PREFIX, "merged"]), metadata={"load_as": "paths"})},
    check_specs=[
        dg.AssetCheckSpec("export_matches_merged", asset=dg.AssetKey([*PREFIX, "export"]), blocking=True,
                          partitions_def=DAILY,
                          description="Every exported file has the merged row count (blocks analysis)."),
    ],
)
def export(context: dg.AssetExecutionContext, config: TimeseriesConfig, merged):
    """The only writer of user-facing time-series files: `data/exports/timeseries/<day>.parquet`
    (zstd) and `<day>.csv.gz` (or `.csv`), streamed in chunks with progress and ETA, published
    atomically. A day without merged rows writes nothing and removes that day's old files; the
    day's old `<day>.analysis.json` is removed too (analysis writes it for the new files)."""
    catalog = config.load()
    sources = _by_day(merged)
    checks, meta_days = [], []
    for day in context.partition_keys:
        st, outcome = _export_one(context, catalog, day, sources.get(day, []))
        checks.append(outcome)
        meta_days.append(st)
        _observe_day(context, day, st)
    return dg.MaterializeResult(metadata=_export_metadata(meta_days),
                                check_results=[per_partition_check(context, _by_partition(checks), _combine(checks))])


def _export_one(context, catalog: Catalog, day: str, sources: list):
    """One day's files exported from its merged files: its numbers and its check outcome."""
    out_dir = exports_dir()
    # the day's statistics describe the old files from now on: analysis writes them anew
    (out_dir / f"{day}.analysis.json").unlink(missing_ok=True)
    with stage("timeseries_export", context.log, day=day) as st:
        files = export_day(sources, out_dir, day, catalog.export_formats, catalog.csv_compression, logger=context.log)
        merged_rows = sum(ana.count_file_rows(p) for p in sources)
        st["rows"] = merged_rows
        for f in files:
            st[f"seconds/{f.format}"] = f.seconds
            st[f"rows_per_second/{f.format}"] = f.rows_per_second
            st[f"bytes/{f.format}"] = f.bytes
        st["bytes"] = sum(f.bytes for f in files)
    exported = {f.path: ana.count_file_rows(f.path) for f in files}
    return st, ana.export_matches_outcome(merged_rows, exported, day)


def _export_metadata(meta_days: list[dict]) -> dict:
    meta = _numeric_sum(meta_days)
    meta["dagster/row_count"] = meta.get("rows", 0)
    meta["peak_rss_mb"] = peak_rss_mb()
    meta["folder"] = dg.MetadataValue.path(str(exports_dir()))
    return run_level(meta, len(meta_days))


@daily_asset(
    kinds={"duckdb", "parquet"},
    deps=[export],
)
def analysis(context: dg.AssetExecutionContext, config: TimeseriesConfig, duckdb: DuckDBResource):
    """Statistics of the exported day: per column count, null share, mean, std, min, max;
    correlations between value columns; per dataset the share of buckets it filled. Written
    as `<day>.analysis.json` beside the export; a markdown table and plottable numbers in
    the metadata."""
    catalog = config.load()
    out_dir = exports_dir()
    with closing(duckdb.connect()) as con:
        results = [_analyse_day(context, catalog, con, out_dir, day) for day in context.partition_keys]
    for day, result, _, st in results:
        _observe_day(context, day, _analysis_numbers(result, st))
    meta = _analysis_run_metadata([st for *_, st in results])
    if len(results) == 1:
        _, result, json_path, _ = results[0]
        meta.update(_analysis_metadata(result, json_path))
    else:  # each day its own table and statistics
        add_partition_metadata(context, {day: _analysis_metadata(result, json_path)
                                         for day, result, json_path, _ in results})
    return dg.MaterializeResult(metadata=meta)


def _analysis_run_metadata(days: list[dict]) -> dict:
    return run_level({"days": len(days), "rows": sum(st["rows"] for st in days), "peak_rss_mb": peak_rss_mb(),
                      "seconds": round(sum(st["seconds"] for st in days), 3)}, len(days))


def _analysis_numbers(result, st: dict) -> dict:
    numbers = dict(st)
    if result:
        numbers.update({f"fill_share/{ds}": v for ds, v in result["fill_share"].items() if v is not None})
    return numbers


def _analysis_metadata(result, json_path: Path) -> dict:
    """A day's analysis as metadata: the markdown table, the JSON file, plottable statistics."""
    if not result:
        return {}
    meta = {"analysis": dg.MetadataValue.md(ana.markdown_table(result)), "json": dg.MetadataValue.path(str(json_path))}
    for col, stats in result["columns"].items():
        for stat in ("mean", "std", "min", "max", "null_share"):
            if stats[stat] is not None:
                meta[f"{stat}/{col}"] = stats[stat]
    for ds, share in result["fill_share"].items():
        if share is not None:
            meta[f"fill_share/{ds}"] = share
    return meta


def _analyse_day(context, catalog: Catalog, con, out_dir: Path, day: str):
    json_path = out_dir / f"{day}.analysis.json"
    with stage("timeseries_analysis", context.log, day=day) as st:
        source = out_dir / f"{day}.parquet"
        result = ana.analyse(con, source, day, catalog.key_columns) if file_exists(source) else None
        if result is None or result["rows"] == 0:
            json_path.unlink(missing_ok=True)  # an empty day keeps no stale statistics
            st["rows"] = 0
            if "parquet" not in catalog.export_formats:
                log_event("timeseries_analysis_skipped", context.log, level="warning", day=day,
                          reason="analysis reads the Parquet export; add parquet to export.formats")
        else:
            atomic_write_json(json_path, result)
            st["rows"] = result["rows"]
    return day, result, json_path, st


ASSETS = [resampled, merged, export, analysis]
