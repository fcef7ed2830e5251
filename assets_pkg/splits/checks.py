"""Split checks for `assets-pkg check`: the same invariants the assets compute in-op.

In Dagster the checks are computed inside the ops (``check_specs``; DESIGN 6: a separate
``@asset_check`` on the partitioned split assets would load every partition): the pass-2
op reports no_customer_leakage / shard_mapping / row_accounting (ERROR, blocking, so
``splits/consolidated`` does not run after a failure), customer_allocation reports
split_ratio (WARN), consolidated reports consolidated_matches_shards.
"""

from assets_pkg import layout
from assets_pkg.checking import CheckOutcome
from assets_pkg.settings import get_settings
from assets_pkg.splits import invariants
from assets_pkg.splits.export import export_exists, export_root
from assets_pkg.splits.pipeline import manifest_file, read_json
from assets_pkg.storage import is_remote

CHECK_NAMES = ("no_customer_leakage", "shard_mapping", "row_accounting", "split_ratio",
               "consolidated_matches_shards")


def evaluate_materialized(params=None) -> list[CheckOutcome]:
    """Every split check against the files materialized now (nothing when never run)."""
    from assets_pkg.duck import connect
    from assets_pkg.splits.params import params_from_env

    params = params or params_from_env()
    settings = get_settings()
    warehouse = settings.warehouse
    manifest = read_json(manifest_file(warehouse))
    if manifest is None:
        return []
    con = connect()
    outcomes = invariants.global_outcomes(con, warehouse, layout.inbox_dir("transactions"), params)
    outcomes.append(invariants.split_ratio(manifest, params))
    if export_exists(settings.exports):
        outcomes.append(invariants.consolidated_matches(warehouse, settings.exports, params))
    return outcomes


def multi_object_folders() -> list:
    """The consolidated export set of an object-store root, committed or not, for
    `assets-pkg check` to verify and to report uncommitted uploads in (a first export killed
    before its commit leaves parts no reader sees); [] for a local root."""
    root = export_root(get_settings().exports)
    return [root] if is_remote(root) else []
