"""Time-series checks against what is materialized now (``assets-pkg check``).

The Dagster checks themselves are computed inside the asset ops (``check_specs`` on
``timeseries/merged`` and ``timeseries/export``, see :mod:`assets_pkg.timeseries.assets`):
a separate ``@asset_check`` on a daily-partitioned asset would load every partition.
:func:`evaluate_materialized` evaluates the same pure outcomes per materialized day from
the warehouse and export files, without materializing anything.
"""

from fnmatch import fnmatch
from pathlib import Path

import duckdb
from pyarrow import ArrowException

from assets_pkg import layout
from assets_pkg.checking import ERROR, CheckOutcome
from assets_pkg.duck import connect
from assets_pkg.storage import is_remote, objects
from assets_pkg.timeseries import analysis as ana
from assets_pkg.timeseries.catalog import CatalogError, catalog_path, load_catalog
from assets_pkg.timeseries.export import target_paths


def merged_folder() -> Path:
    return layout.asset_dir(["timeseries", "merged"])


def merged_days() -> list[Path]:
    """The materialized merged partitions (one object per day in an object store: listed now)."""
    folder = merged_folder()
    if is_remote(folder):
        return [folder / name for name in sorted(objects.list_objects(folder)) if fnmatch(name, "????-??-??.parquet")]
    return sorted(p for p in folder.glob("????-??-??.parquet")) if folder.is_dir() else []


def evaluate_materialized() -> list[CheckOutcome]:
    """unique_buckets, coverage and export_matches_merged for every materialized day."""
    days = merged_days()
    if not days:
        return []
    try:
        catalog = load_catalog(catalog_path())
    except CatalogError as exc:
        return [CheckOutcome(ana.MERGED_ASSET, "catalog", False, ERROR, str(exc))]
    out_dir = layout.exports_dir("timeseries")
    outcomes = []
    con = connect()
    try:
        for path in days:
            day = path.name.split(".")[0]
            try:
                outcomes.append(ana.unique_buckets_outcome(con, [path], day, catalog.key_columns))
                outcomes.append(ana.coverage_outcome(con, [path], catalog, day))
                merged_rows = ana.count_file_rows(path)
            except (OSError, ArrowException, duckdb.Error) as exc:  # a corrupt object: say which
                outcomes.append(CheckOutcome(ana.MERGED_ASSET, "unique_buckets", False, ERROR,
                                             f"{day}: {path} is unreadable ({_first_line(exc)})", {"day": day}))
                continue
            targets = target_paths(out_dir, day, catalog.export_formats, catalog.csv_compression)
            exported, unreadable = {}, []
            for p in targets.values():
                try:
                    exported[p] = ana.count_file_rows(p) if objects.file_exists(p) else -1
                except (OSError, ArrowException, EOFError, ValueError) as exc:
                    unreadable.append(f"{p} is unreadable ({_first_line(exc)})")
            outcome = ana.export_matches_outcome(merged_rows, exported, day)
            if unreadable:
                outcome = CheckOutcome(outcome.asset, outcome.name, False, ERROR,
                                       f"{day}: " + "; ".join(unreadable), outcome.metadata)
            outcomes.append(outcome)
    finally:
        con.close()
    return outcomes


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]
