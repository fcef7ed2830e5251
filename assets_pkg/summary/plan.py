"""Plan an incremental update: classify new records and find the months to rebuild.

Pure logic (no dagster import), used by the sensor, ``assets-pkg summary plan`` /
``summary run --mode incremental`` and the tests.

Cases per new record, against the account's latest summarized month (DESIGN 4.2):
Case I new account (no summarized month), Case II forward (month after it), Case III
backfill (month at or before it). Affected months: for each new record at month m, months
m .. m+L-1 up to the last month that exists in the source; also every month of a batch file
that disappeared or was replaced. The plan asks for one contiguous range covering them.
"""

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from assets_pkg import layout
from assets_pkg.duck import connect, quote_ident
from assets_pkg.inbox import split_settled, waiting_note
from assets_pkg.run_tags import RANGE_END_TAG, RANGE_START_TAG
from assets_pkg.storage import is_remote, objects
from assets_pkg.storage.arrow import dataset
from assets_pkg.summary import state as summary_state
from assets_pkg.summary.config import SummarySettings, load_summary_settings
from assets_pkg.summary.months import MONTHS_ASSET_PATH, month_index, month_index_sql, month_str
from assets_pkg.summary.source import BatchFile, Source, list_batch_files


@dataclass
class Plan:
    new_files: list[str] = field(default_factory=list)
    gone_files: list[str] = field(default_factory=list)
    records: int = 0
    case_new: int = 0  # Case I records (accounts never summarized)
    case_forward: int = 0  # Case II records
    case_backfill: int = 0  # Case III records
    accounts_new: int = 0
    accounts_forward: int = 0
    accounts_backfill: int = 0  # accounts with at least one backfill record
    older_than_newest: int = 0  # records whose base_ts is older than the newest summarized one
    skipped_rows: int = 0
    affected_months: list[str] = field(default_factory=list)
    file_months: dict[str, list[str]] = field(default_factory=dict)
    waiting_files: dict[str, float] = field(default_factory=dict)  # still being written: name -> age (s)

    @property
    def start(self) -> str | None:
        return self.affected_months[0] if self.affected_months else None

    @property
    def end(self) -> str | None:
        return self.affected_months[-1] if self.affected_months else None

    @property
    def range_months(self) -> int:
        if not self.affected_months:
            return 0
        return month_index(self.end) - month_index(self.start) + 1

    @property
    def empty(self) -> bool:
        return not self.affected_months

    def counts(self) -> dict[str, int]:
        return {
            "case_i_new": self.case_new,
            "case_ii_forward": self.case_forward,
            "case_iii_backfill": self.case_backfill,
            "accounts_new": self.accounts_new,
            "accounts_forward": self.accounts_forward,
            "accounts_backfill": self.accounts_backfill,
            "records": self.records,
            "older_than_newest": self.older_than_newest,
            "skipped_rows": self.skipped_rows,
        }

    def tags(self) -> dict[str, str]:
        tags = {f"summary/{k}": str(v) for k, v in self.counts().items()}
        tags["summary/batches"] = str(len(self.new_files))
        if self.affected_months:
            tags[RANGE_START_TAG] = self.start
            tags[RANGE_END_TAG] = self.end
        return tags

    def lines(self) -> list[str]:
        out = [
            f"new batch files: {len(self.new_files)} {self.new_files[:10]}"
            + (f" (+{len(self.new_files) - 10} more)" if len(self.new_files) > 10 else ""),
        ]
        if self.gone_files:
            out.append(f"removed or replaced batch files: {self.gone_files}")
        out += [
            f"records: {self.records} (skipped bad rows: {self.skipped_rows})",
            f"Case I   new accounts : {self.case_new} records, {self.accounts_new} accounts",
            f"Case II  forward      : {self.case_forward} records, {self.accounts_forward} accounts",
            f"Case III backfill     : {self.case_backfill} records, {self.accounts_backfill} accounts",
            f"records older than the newest summarized base_ts: {self.older_than_newest}",
        ]
        if self.affected_months:
            out.append(
                f"months to rebuild: {self.start}..{self.end} ({self.range_months} months in one run, "
                f"{len(self.affected_months)} affected)"
            )
        else:
            out.append("months to rebuild: none")
        return out


def summarized_state(con: duckdb.DuckDBPyConnection, cfg: SummarySettings, month_files: list[Path]) -> dict:
    """Create temp table ``summary_latest(key, latest_idx)`` from the month files; return
    the newest base_ts and the last summarized month index."""
    key_sql = f"NULL::{cfg.key_type}" if cfg.key_type else "NULL"
    if not month_files:
        con.execute(f"CREATE OR REPLACE TEMP TABLE summary_latest AS SELECT {key_sql} AS key, NULL::INTEGER AS latest_idx WHERE false")
        return {"max_ts": None, "last_idx": None}
    q = quote_ident
    paths = [str(p) for p in month_files]
    month_idx = month_index_sql(q(cfg.month_column))
    scan, params = "read_parquet(?)", [paths]
    if is_remote(month_files[0]):
        # pyarrow's native S3 reads of three columns, ten times faster than fsspec calls
        con.register("summary_month_files", dataset(month_files))
        scan, params = "summary_month_files", []
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE summary_latest AS
            SELECT {q(cfg.key_column)} AS key, max({month_idx}) AS latest_idx, max({q(cfg.timestamp_column)}) AS max_ts
            FROM {scan} GROUP BY 1""",
        params,
    )
    max_ts, last_idx = con.execute("SELECT max(max_ts), max(latest_idx) FROM summary_latest").fetchall()[0]
    return {"max_ts": max_ts, "last_idx": last_idx}


def affected_months(months, length: int, first_idx: int, last_idx: int) -> set[int]:
    out: set[int] = set()
    for m in months:
        out.update(range(max(m, first_idx), min(m + length - 1, last_idx) + 1))
    return out


def plan_batches(
    con: duckdb.DuckDBPyConnection,
    cfg: SummarySettings,
    new_files: list[BatchFile],
    all_files: list[BatchFile],
    month_files: list[Path],
    gone: dict[str, dict] | None = None,
    now_month: str | None = None,
    logger=None,
) -> Plan:
    """Classify the records of ``new_files`` and find the months to rebuild.

    ``month_files`` are the materialized account_summary partitions (the summarized state);
    ``gone`` are processed batches that vanished or changed ({name: {"months": [...]}}).
    Raises SummarySourceError for bad batches (with ``bad_rows="error"``).
    """
    gone = gone or {}
    plan = Plan(new_files=[f.name for f in new_files], gone_files=sorted(gone))
    state = summarized_state(con, cfg, month_files)
    with Source(con, cfg, new_files, rank_names=[f.name for f in all_files], now_month=now_month, logger=logger) as src:
        prof = src.profile()
        plan.skipped_rows = prof.bad_rows
        plan.file_months = {name: [month_str(m) for m in sorted(ms)] for name, ms in prof.file_months.items()}
        rows = con.execute(
            f"""
            WITH r AS (SELECT key, month_idx, ts FROM ({src.records().sql_query()})),
                 c AS (SELECT r.key, r.month_idx, r.ts, l.latest_idx,
                              CASE WHEN l.latest_idx IS NULL THEN 1 WHEN r.month_idx > l.latest_idx THEN 2 ELSE 3 END AS kase
                       FROM r LEFT JOIN summary_latest l ON r.key = l.key),
                 a AS (SELECT key, max(kase) AS kase FROM c GROUP BY key)
            SELECT (SELECT count(*) FROM c),
                   (SELECT count(*) FROM c WHERE kase = 1),
                   (SELECT count(*) FROM c WHERE kase = 2),
                   (SELECT count(*) FROM c WHERE kase = 3),
                   (SELECT count(*) FROM a WHERE kase = 1),
                   (SELECT count(*) FROM a WHERE kase = 2),
                   (SELECT count(*) FROM a WHERE kase = 3),
                   (SELECT count(*) FROM c WHERE ? IS NOT NULL AND ts < ?)
            """,
            [state["max_ts"], state["max_ts"]],
        ).fetchall()[0]
        (plan.records, plan.case_new, plan.case_forward, plan.case_backfill,
         plan.accounts_new, plan.accounts_forward, plan.accounts_backfill, plan.older_than_newest) = rows
        new_months = set(prof.months)
    old_months = set()
    for entry in gone.values():
        old_months.update(month_index(m) for m in entry.get("months", []))
    candidates = [m for m in (state["last_idx"], *new_months, *old_months) if m is not None]
    if not candidates:
        return plan
    last_idx = max(candidates)
    months = affected_months(new_months | old_months, cfg.history_length, cfg.first_month_index, last_idx)
    plan.affected_months = [month_str(m) for m in sorted(months)]
    return plan


def reflected_files(
    files: list[BatchFile],
    processed: dict[str, dict],
    file_months: dict[str, set],
    start: str,
    end: str,
    cfg: SummarySettings,
    last_idx: int,
) -> dict[str, dict]:
    """The processed-state after a run over ``start..end`` that read ``files``.

    Files already processed with the same identity stay; a new or changed file becomes
    processed when every month it affects lies in the run's range; vanished files whose
    months are all covered are dropped.
    """
    s, e = month_index(start), month_index(end)
    out: dict[str, dict] = {}
    present = {f.name for f in files}
    for name, entry in processed.items():
        if name not in present:
            months = {month_index(m) for m in entry.get("months", [])}
            if not affected_months(months, cfg.history_length, cfg.first_month_index, last_idx) <= set(range(s, e + 1)):
                out[name] = entry  # still to be rebuilt: keep it so the plan sees it as gone
    for f in files:
        old = processed.get(f.name)
        months = file_months.get(f.name, set())
        entry = {"identity": f.identity, "months": [month_str(m) for m in sorted(months)]}
        if old and old.get("identity") == f.identity:
            out[f.name] = old
            continue
        need = affected_months(months, cfg.history_length, cfg.first_month_index, last_idx)
        old_need = affected_months(
            {month_index(m) for m in (old or {}).get("months", [])}, cfg.history_length, cfg.first_month_index, last_idx
        )
        if (need | old_need) <= set(range(s, e + 1)):
            out[f.name] = entry
        elif old:
            out[f.name] = old  # replaced but not yet rebuilt: keep the old entry (plan sees a change)
    return out


def month_file(month: str) -> Path:
    """The account_summary partition of ``month`` (``YYYY-MM``)."""
    return layout.partition_file(MONTHS_ASSET_PATH, layout.partition_stem(month, layout.MONTH))


def existing_month_files() -> list[Path]:
    """The materialized account_summary partitions (the summarized state); in an object
    store, one listing made now (each month file is one object, published by one PUT)."""
    folder = layout.asset_dir(MONTHS_ASSET_PATH)
    if not is_remote(folder):
        return layout.partition_files(MONTHS_ASSET_PATH)
    return [folder / name for name in sorted(objects.list_objects(folder))
            if "/" not in name and name.endswith(".parquet") and not name.startswith(".")]


def plan_pending(cursor: dict | None = None, logger=None, cfg=None):
    """(plan, new files, gone entries) for what is not yet processed (nor in ``cursor``):
    what the sensor requests, ``summary plan`` prints and the demo reports. ``cfg``:
    the settings (default: $SUMMARY_CONFIG)."""
    cfg = cfg or load_summary_settings()
    # a batch still being copied in (or replaced) waits for a later tick, as the run leaves it out
    files, waiting = split_settled(list_batch_files(cfg.source_path), lambda f: f.path)
    if waiting and logger is not None:
        logger.info(f"summary inbox: {waiting_note(waiting)}")
    processed = {name: e for name, e in summary_state.load_processed().items() if name not in waiting}
    new, gone = summary_state.pending_files(files, processed, also_seen=cursor or {})
    if not new and not gone:
        return Plan(waiting_files=waiting), new, gone
    plan = plan_batches(connect(), cfg, new, files, existing_month_files(), gone, logger=logger)
    plan.waiting_files = waiting
    return plan, new, gone
