"""Summary checks. The runs compute them in-op (check_specs on the assets: a partitioned
@asset_check without partitions_def would load every partition, DESIGN 6); this module
evaluates the same pure checks against what is materialized now, for `assets-pkg check`."""

from assets_pkg import layout
from assets_pkg.checking import ERROR, CheckOutcome
from assets_pkg.duck import connect
from assets_pkg.storage.objects import file_exists
from assets_pkg.summary.config import load_summary_settings
from assets_pkg.summary.months import LATEST_ASSET_PATH
from assets_pkg.summary.plan import existing_month_files
from assets_pkg.summary.source import Source, list_batch_files
from assets_pkg.summary.validate import ASSET, check_one_row_per_account, summary_outcomes


def evaluate_materialized() -> list[CheckOutcome]:
    cfg = load_summary_settings()
    month_files = {p.stem: p for p in existing_month_files()}
    con = connect()
    latest = layout.asset_file(LATEST_ASSET_PATH)
    try:
        with Source(con, cfg, list_batch_files(cfg.source_path)) as source:
            source.profile()
            outcomes = summary_outcomes(con, cfg, month_files, source)
    except ValueError as exc:  # a bad inbox: report it instead of a check result
        outcomes = summary_outcomes(con, cfg, month_files, None)
        outcomes.append(CheckOutcome(ASSET, "history_matches_source", False, ERROR, f"source unreadable: {exc}"))
    outcomes.append(check_one_row_per_account(con, cfg, latest if file_exists(latest) else None, month_files))
    return outcomes
