"""One call that rebuilds a range of summary months from the inbox (no dagster import).

Used by the ``account_summary`` asset, the CLI, the bench and the tests:
list batches -> one DuckDB view over them -> profile (refuse bad input before writing
anything) -> build months in order -> write each month file atomically -> evaluate the
checks for the months written -> record which batches the summary now reflects.
"""

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from assets_pkg.checking import CheckOutcome
from assets_pkg.duck import connect
from assets_pkg.inbox import split_settled, waiting_note
from assets_pkg.io.locks import domain_lock
from assets_pkg.storage import is_remote
from assets_pkg.storage.arrow import read_table
from assets_pkg.storage.objects import BackgroundUploads, file_exists
from assets_pkg.summary import state as summary_state
from assets_pkg.summary.build import BuildStats, build_months
from assets_pkg.summary.config import SummarySettings
from assets_pkg.summary.month_file import FINGERPRINT_KEY, write_month_file
from assets_pkg.summary.month_scan import MonthPipeline, scan_copies, scan_path
from assets_pkg.summary.months import add_months, month_index, month_str
from assets_pkg.summary.plan import reflected_files
from assets_pkg.summary.ring import MonthRows
from assets_pkg.summary.record_filter import matching_accounts_sql, validate_filter
from assets_pkg.summary.source import VIEW, Source, SourceProfile, list_batch_files
from assets_pkg.summary.validate import summary_outcomes


@dataclass
class RebuildResult:
    start: str
    end: str
    stats: BuildStats
    profile: SourceProfile
    batches: int
    outcomes: list[CheckOutcome] = field(default_factory=list)
    newly_processed: list[str] = field(default_factory=list)
    skipped_batches: dict[str, str] = field(default_factory=dict)  # name -> error (skip_bad_batches)
    filter_accounts: int | None = None  # accounts a record filter matched (None: no filter)

    def metadata(self) -> dict:
        meta = self.stats.metadata()
        meta.update(
            {
                "range_start": self.start,
                "range_end": self.end,
                "batches": self.batches,
                "source_rows": self.profile.rows,
                "skipped_rows": self.profile.bad_rows,
                "newly_processed_batches": len(self.newly_processed),
                "skipped_batches": len(self.skipped_batches),
            }
        )
        if self.filter_accounts is not None:
            meta["backfill_filter_accounts"] = self.filter_accounts
        if self.skipped_batches:
            meta["skipped_batch_files"] = self.skipped_batches
        return meta


def parse_accounts(cfg: SummarySettings, accounts) -> list | None:
    if accounts is None:
        return None
    out = []
    for a in accounts:
        if cfg.key_type == "BIGINT":
            try:
                out.append(int(a))
            except (TypeError, ValueError):
                raise ValueError(f"account {a!r} is not an integer (summary key_type BIGINT)") from None
        else:
            out.append(str(a))
    return out


def rebuild_months(
    cfg: SummarySettings,
    start: str,
    end: str,
    month_path: Callable[[str], Path],
    accounts: list | None = None,
    con=None,
    logger=None,
    run_checks: bool = True,
    update_state: bool = True,
    now_month: str | None = None,
    state_file: Path | None = None,
    on_month: Callable[[str, int], None] | None = None,
    run_id: str | None = None,
    record_filter: str | None = None,
) -> RebuildResult:
    """Recompute months ``start..end`` (inclusive) from every batch in the inbox.

    ``accounts``: recompute only these accounts and merge them into the existing month
    files (other accounts' rows are kept as they are). With ``update_state`` it runs under
    the summary's domain lock (``run_id`` names the holder to a run that has to wait).

    ``record_filter`` (``--backfill-filter``): a predicate over the source columns
    (:func:`assets_pkg.summary.record_filter.validate_filter`). The backfill reads the
    records of ``start..end`` that pass it and rebuilds the accounts they belong to (within
    ``accounts`` if given), merged into the month files like ``accounts``. Those rows are
    computed from all of the account's records, so every month stays the pure function of
    the source its checks verify (the original's backfill patched the filtered records into
    the existing summary: the same result when the summary was current).
    """
    con = con or connect()
    accounts = parse_accounts(cfg, accounts)
    if record_filter is not None:
        record_filter = validate_filter(cfg, record_filter)
    # One writer at a time, from listing the source to saving the state: a run that waited
    # computes from the batches as they are now, never from a list taken before another
    # run's batch landed, and merges into the state that run saved. A build that records no
    # state (a reference build into its own folder) is not the domain's writer.
    folder = state_file.parent if state_file is not None else None
    lock = domain_lock("summary", run_id, logger=logger, folder=folder) if update_state else nullcontext()
    with lock:
        return _rebuild_locked(cfg, start, end, month_path, accounts, con, logger, run_checks, update_state,
                               now_month, state_file, on_month, record_filter)


def _rebuild_locked(cfg, start, end, month_path, accounts, con, logger, run_checks, update_state, now_month,
                    state_file, on_month, record_filter) -> RebuildResult:
    # a batch still being copied in is left out: the state keeps it to do, so the sensor's
    # next tick requests it whole
    files, waiting = split_settled(list_batch_files(cfg.source_path), lambda f: f.path)
    if waiting and logger is not None:
        logger.warning(f"summary inbox: {waiting_note(waiting)}")
    # an object-store root: the month scan of the checks reads the months this run wrote
    # from local copies of what it uploaded (hard links to the temps), each deleted once
    # scanned, and the month before from one download; the checks' other reads (only the
    # months whose digests differ) go to the store
    with (Source(con, cfg, files, now_month=now_month, logger=logger) as source,
          scan_copies(run_checks and is_remote(month_path(start))) as copies):
        profile = source.profile()  # raises on bad input: nothing written yet
        if record_filter is not None:
            sql = matching_accounts_sql(cfg, VIEW, source.good_rows_sql(), record_filter)
            matched = [r[0] for r in con.execute(sql, {"lo": month_index(start), "hi": month_index(end)}).fetchall()]
            accounts = matched if accounts is None else [a for a in accounts if a in set(matched)]
            if logger is not None:
                logger.info(f"--backfill-filter {record_filter!r}: {len(matched)} account(s) with matching records "
                            f"in {start}..{end}")

        before = add_months(start, -1)
        previous = {before: month_path(before)} if run_checks and file_exists(month_path(before)) else {}
        # the checks read each month file back as soon as it is written, while later months build
        checking = (MonthPipeline(cfg, con, start, end, scan_path(previous[before], copies) if previous else None,
                                  discard_scanned=copies is not None)
                    if run_checks else None)

        def write(month: str, rows: MonthRows):
            path = month_path(month)
            if accounts is not None:
                rows = _merge_accounts(rows.to_table(), path, cfg, accounts)
            result = write_month_file(rows, path, keep=copies / f"{month}.parquet" if copies else None,
                                      uploads=uploads)
            if on_month is not None:
                on_month(month, result.rows)
            if checking is not None:
                checking.ready(month, copies / f"{month}.parquet" if copies is not None and result.path else result.path)
            return result

        # an object-store root: each month's PUT overlaps the next months' build; every
        # upload is done (or the run fails) when the block ends, before the state is saved
        uploads = BackgroundUploads() if is_remote(month_path(start)) else None
        try:
            with uploads if uploads is not None else nullcontext():
                stats = build_months(source, start, end, write, accounts=accounts, logger=logger,
                                     month_path=month_path)
            facts = checking.finish() if checking is not None else None
        finally:
            if checking is not None:
                checking.close()
        outcomes: list[CheckOutcome] = []
        if run_checks:
            months = [month_str(i) for i in range(month_index(start), month_index(end) + 1)]
            if copies is None:
                existing = {m: month_path(m) for m in months if file_exists(month_path(m))}
            else:
                existing = {m: month_path(m) for m in stats.months_written}
            outcomes = summary_outcomes(con, cfg, existing, source, previous, facts)
    newly: list[str] = []
    if update_state and accounts is None:
        processed = summary_state.load_processed(state_file)
        last_idx = max(profile.months) if profile.months else month_index(end)
        # a batch left out is not reflected: it stays to do (or, replaced, as it was)
        read = [f for f in files if f.name not in source.skipped]
        updated = reflected_files(read, processed, profile.file_months, start, end, cfg, last_idx)
        for name in waiting:
            if name in processed:  # being replaced: its old entry stays, so the plan sees the change
                updated[name] = processed[name]
        newly = sorted(n for n, e in updated.items() if processed.get(n) != e)
        if updated != processed:
            summary_state.save_processed(updated, state_file)
    return RebuildResult(start, end, stats, profile, len(files), outcomes, newly, dict(source.skipped),
                         None if record_filter is None else len(accounts))


def _merge_accounts(table: pa.Table, path: Path, cfg: SummarySettings, accounts: list) -> pa.Table:
    if not file_exists(path):
        # only these accounts' rows: not the whole month the fingerprint vouches for
        return table.replace_schema_metadata(None)
    old = read_table(path)
    key = cfg.key_column
    keep = pc.invert(pc.is_in(old.column(key), value_set=pa.array(accounts, type=old.schema.field(key).type)))
    merged = pa.concat_tables([old.filter(keep), table.cast(old.schema)]).sort_by(key)
    # the merged file is current only if the rows kept were current (same source fingerprint)
    old_fp = (old.schema.metadata or {}).get(FINGERPRINT_KEY)
    new_fp = (table.schema.metadata or {}).get(FINGERPRINT_KEY)
    meta = dict(old.schema.metadata or {})
    meta.pop(FINGERPRINT_KEY, None)
    if old_fp is not None and old_fp == new_fp:
        meta[FINGERPRINT_KEY] = new_fp
    return merged.replace_schema_metadata(meta or None)


def source_months(cfg: SummarySettings, con=None, now_month: str | None = None) -> list[str]:
    """Months that hold good records in the inbox (profiles every batch)."""
    con = con or connect()
    files = list_batch_files(cfg.source_path)
    with Source(con, cfg, files, now_month=now_month) as source:
        return [month_str(m) for m in source.profile().months]
