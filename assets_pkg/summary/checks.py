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
from assets_pkg.storage.arrow import parquet_file
from assets_pkg.storage.objects import download, file_exists
from assets_pkg.summary.config import load_summary_settings
from assets_pkg.summary.month_scan import ListFacts, MonthScanner
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


def scan_remote_months(cfg, con, month_files: dict, folder: Path) -> ListFacts:
    """:func:`~assets_pkg.summary.month_scan.scan_months` of object-store months, each
    downloaded into ``folder`` just before its scan and deleted after it: one GET per month
    for the scan's two reads (Arrow, then DuckDB's digest), and local disk bounded by one
    month file however many months the summary has (the scan keeps what the next month's
    pair needs in memory, not the file)."""
    scanner = MonthScanner(cfg, con)
    for month in sorted(month_files):
        local = download(month_files[month], folder / f"{month}.parquet")
        try:
            scanner.add(month, local)
        finally:
            local.unlink(missing_ok=True)
    return scanner.facts


def _evaluate(folder: Path) -> list[CheckOutcome]:
    cfg = load_summary_settings()
    month_files = {p.stem: p for p in existing_month_files()}
    # a remote month is named by its object: footers and the reads below are ranged reads of it
    unreadable = unreadable_files(month_files.values())
    month_files = {m: p for m, p in month_files.items() if str(p) not in unreadable}
    con = connect()
    latest = layout.asset_file(LATEST_ASSET_PATH)
    facts = _facts(cfg, con, month_files, folder)
    try:
        with Source(con, cfg, list_batch_files(cfg.source_path)) as source:
            source.profile()
            outcomes = summary_outcomes(con, cfg, month_files, source, facts=facts)
    except ValueError as exc:  # a bad inbox: report it instead of a check result
        outcomes = summary_outcomes(con, cfg, month_files, None, facts=facts)
        outcomes.append(CheckOutcome(ASSET, "history_matches_source", False, ERROR, f"source unreadable: {exc}"))
    if unreadable:
        listed = "; ".join(f"{path} ({why})" for path, why in sorted(unreadable.items()))
        outcomes.append(CheckOutcome(ASSET, "history_matches_source", False, ERROR,
                                     f"{len(unreadable)} unreadable month file(s): {listed}; re-materialize those months",
                                     {"unreadable_files": sorted(unreadable)}))
    outcomes.append(check_one_row_per_account(con, cfg, latest if file_exists(latest) else None, month_files))
    return outcomes


def _facts(cfg, con, month_files: dict, folder: Path) -> ListFacts | None:
    """The month scan the checks share: through one-at-a-time local copies for an object-store
    root (:func:`scan_remote_months`), left to :func:`summary_outcomes` for a local one."""
    if not month_files or not is_remote(next(iter(month_files.values()))):
        return None
    return scan_remote_months(cfg, con, month_files, folder)
