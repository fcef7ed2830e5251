"""The time-series assets as fan-out graphs, for the cluster executors.

When ``ASSETS_PKG_EXECUTOR`` is not ``in_process`` a range run of the time-series chain is
four graphs (:func:`assets_pkg.fanout.fanout_asset`): for each asset one step per day (or
per ``FANOUT_BATCH_PARTITIONS`` days), which reads the upstream day from the data root and
writes only its own day, then a finish step with the asset's per-day metadata and checks.
Each step runs the same per-day functions as the one-step assets of
:mod:`assets_pkg.timeseries.assets` (which the embedded default keeps).
"""

import dataclasses
from contextlib import closing

import dagster as dg

from assets_pkg.checking import CheckOutcome
from assets_pkg.dagster_layer import add_partition_metadata, per_partition_check, run_level
from assets_pkg.fanout import fanout_asset, from_message, to_message
from assets_pkg.obs import peak_rss_mb
from assets_pkg.timeseries import assets as ts
from assets_pkg.timeseries.assets import DAILY, TimeseriesConfig

DOMAIN = "timeseries"
RESOURCES = ("duckdb", "io_manager")


def _upstream_file(context, asset: dg.AssetsDefinition, day: str) -> list:
    """The upstream asset's file of ``day`` in the warehouse (none when it has no rows)."""
    found = context.resources.io_manager.existing_file(asset.key.path, day, DAILY)
    return [found] if found is not None else []


def _outcome(data: dict) -> CheckOutcome:
    return CheckOutcome(**data)


def _report(context, records: dict, numbers) -> None:
    """Each day's own metadata on its materialization, as the one-step asset records it."""
    add_partition_metadata(context, {day: {**ts._plottable(numbers(r)), **from_message(r.get("written", {}))}
                                     for day, r in records.items()})


def _written_totals(records: dict) -> dict:
    written = [r["written"] for r in records.values()]
    return run_level({"dagster/row_count": sum(w["dagster/row_count"] for w in written),
                      "bytes": sum(w["bytes"] for w in written), "partitions": len(written),
                      "files_written": sum(1 for w in written if w["file_written"])}, len(written))


def _checks(context, records: dict, name: str) -> dg.AssetCheckResult:
    outcomes = {day: _outcome(r[name]) for day, r in records.items()}
    return per_partition_check(context, outcomes, ts._combine(list(outcomes.values())))


# -- resampled ---------------------------------------------------------------------------

def resampled_days(context, config: TimeseriesConfig, days: list[str]) -> dict:
    """Resample ``days`` and write each day's partition."""
    catalog, records = config.load(), {}
    with closing(context.resources.duckdb.connect()) as con:
        for day in days:
            table, st, rejects = ts._resample_one(context, con, catalog, day)
            written = context.resources.io_manager.write_partition(ts.resampled.key.path, day, DAILY, table)
            records[day] = {"numbers": st, "written": to_message(written), "rejects": rejects}
    return records


def resampled_report(context, config: TimeseriesConfig, records: dict):
    _report(context, records, lambda r: r["numbers"])
    meta = {**ts._datasets_metadata(config.load()), **_written_totals(records), "run/peak_rss_mb": peak_rss_mb()}
    samples = {name: rows for r in records.values() for name, rows in r["rejects"].items()}
    if samples:
        meta["rejects_sample"] = dg.MetadataValue.json(samples)
    return meta, []


# -- merged ------------------------------------------------------------------------------

def merged_days(context, config: TimeseriesConfig, days: list[str]) -> dict:
    """Merge ``days`` from their resampled files; write each day's partition."""
    catalog, records = config.load(), {}
    with closing(context.resources.duckdb.connect()) as con:
        for day in days:
            table, st, uniq, cov = ts._merge_one(context, con, catalog, config, day,
                                                 _upstream_file(context, ts.resampled, day))
            written = context.resources.io_manager.write_partition(ts.merged.key.path, day, DAILY, table)
            records[day] = {"numbers": ts._merged_numbers(st, cov), "written": to_message(written),
                            "unique_buckets": dataclasses.asdict(uniq), "coverage": dataclasses.asdict(cov)}
    return records


def merged_report(context, config: TimeseriesConfig, records: dict):
    _report(context, records, lambda r: r["numbers"])
    checks = [_checks(context, records, "unique_buckets"), _checks(context, records, "coverage")]
    return {**_written_totals(records), "run/peak_rss_mb": peak_rss_mb()}, checks


# -- export ------------------------------------------------------------------------------

def export_days(context, config: TimeseriesConfig, days: list[str]) -> dict:
    """Export ``days`` from their merged files (the user-facing files of those days only)."""
    catalog, records = config.load(), {}
    for day in days:
        st, outcome = ts._export_one(context, catalog, day, _upstream_file(context, ts.merged, day))
        records[day] = {"numbers": st, "export_matches_merged": dataclasses.asdict(outcome)}
    return records


def export_report(context, config: TimeseriesConfig, records: dict):
    _report(context, records, lambda r: r["numbers"])
    return ts._export_metadata([r["numbers"] for r in records.values()]), \
        [_checks(context, records, "export_matches_merged")]


# -- analysis ----------------------------------------------------------------------------

def analysis_days(context, config: TimeseriesConfig, days: list[str]) -> dict:
    """Analyse the exported files of ``days``; write each day's statistics file."""
    catalog, out_dir, records = config.load(), ts.exports_dir(), {}
    with closing(context.resources.duckdb.connect()) as con:
        for day in days:
            _, result, json_path, st = ts._analyse_day(context, catalog, con, out_dir, day)
            records[day] = {"numbers": ts._analysis_numbers(result, st), "st": st,
                            "written": to_message(ts._analysis_metadata(result, json_path))}
    return records


def analysis_report(context, config: TimeseriesConfig, records: dict):
    _report(context, records, lambda r: r["numbers"])
    return ts._analysis_run_metadata([r["st"] for r in records.values()]), []


def _fanned(one_step, step, finish, upstream=None) -> dg.AssetsDefinition:
    return fanout_asset(one_step, domain=DOMAIN, step=step, finish=finish, config=TimeseriesConfig,
                        resource_keys=RESOURCES, upstream=upstream)


ASSETS = [
    _fanned(ts.resampled, resampled_days, resampled_report),
    _fanned(ts.merged, merged_days, merged_report, upstream=ts.resampled.key),
    _fanned(ts.export, export_days, export_report, upstream=ts.merged.key),
    _fanned(ts.analysis, analysis_days, analysis_report, upstream=ts.export.key),
]
