"""Summary checks. The runs compute them in-op (check_specs on the assets: a partitioned
@asset_check without partitions_def would load every partition, DESIGN 6); this module
evaluates the same pure checks against what is materialized now, for `assets-pkg check`."""

import tempfile
from pathlib import Path

from pyarrow import ArrowException

from assets_pkg import layout
from assets_pkg.checking import ERROR, CheckOutcome
from assets_pkg.duck import connect
from assets_pkg.storage import is_remote, local_scratch
from assets_pkg.storage.arrow import fetch, parquet_file
from assets_pkg.storage.objects import file_exists
from assets_pkg.summary.config import load_summary_settings
from assets_pkg.summary.months import LATEST_ASSET_PATH
from assets_pkg.summary.plan import existing_month_files
from assets_pkg.summary.source import Source, list_batch_files
from assets_pkg.summary.validate import ASSET, check_one_row_per_account, summary_outcomes


def unreadable_files(paths) -> dict[str, str]:
    """{file: why} for files whose Parquet footer cannot be read (truncated or overwritten:
    a corrupt object in the store), so the other checks run on the readable ones."""
    bad = {}
    for path in paths:
        try:
            parquet_file(path).metadata
        except (OSError, ArrowException) as exc:
            bad[str(path)] = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return bad


def evaluate_materialized() -> list[CheckOutcome]:
    with tempfile.TemporaryDirectory(dir=local_scratch("summary-checks")) as folder:
        return _evaluate(Path(folder))


def _evaluate(folder: Path) -> list[CheckOutcome]:
    cfg = load_summary_settings()
    month_files = {p.stem: p for p in existing_month_files()}
    if month_files and is_remote(next(iter(month_files.values()))):
        # the checks scan every month several times: one download each (concurrent), then
        # local reads; a problem is reported with the object's name
        local = fetch({f"{m}.parquet": p for m, p in month_files.items()}, folder)
        names = {str(local[f"{m}.parquet"]): str(p) for m, p in month_files.items()}
        month_files = {m: local[f"{m}.parquet"] for m in month_files}
    else:
        names = {}
    unreadable = {names.get(p, p): why for p, why in unreadable_files(month_files.values()).items()}
    month_files = {m: p for m, p in month_files.items() if names.get(str(p), str(p)) not in unreadable}
    con = connect()
    latest = layout.asset_file(LATEST_ASSET_PATH)
    try:
        with Source(con, cfg, list_batch_files(cfg.source_path)) as source:
            source.profile()
            outcomes = summary_outcomes(con, cfg, month_files, source)
    except ValueError as exc:  # a bad inbox: report it instead of a check result
        outcomes = summary_outcomes(con, cfg, month_files, None)
        outcomes.append(CheckOutcome(ASSET, "history_matches_source", False, ERROR, f"source unreadable: {exc}"))
    if unreadable:
        listed = "; ".join(f"{path} ({why})" for path, why in sorted(unreadable.items()))
        outcomes.append(CheckOutcome(ASSET, "history_matches_source", False, ERROR,
                                     f"{len(unreadable)} unreadable month file(s): {listed}; re-materialize those months",
                                     {"unreadable_files": sorted(unreadable)}))
    outcomes.append(check_one_row_per_account(con, cfg, latest if file_exists(latest) else None, month_files))
    return outcomes
