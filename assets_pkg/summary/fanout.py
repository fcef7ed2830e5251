"""The account summary build split into units of work that fit any worker (no dagster import).

A fan-out run over months ``start..end`` is planned once (:func:`plan_fanout`), then runs
as independent steps, each reading its inputs from the data root and writing only its own
outputs, so a cluster executor may send them to different workers in any order:

- **bucket steps** (:func:`build_bucket`): the accounts whose key lies in bucket ``b``'s key
  range ``[bounds[b-1], bounds[b])``, months ``[a, c]`` of one chunk. The plan chooses the
  bounds from a sample of the source's records (:func:`bucket_bounds`) so that every bucket
  holds about the same number of records. The step is the one-step build
  (:func:`assets_pkg.summary.build.build_months`) over a source that keeps only the
  bucket's records (:class:`BucketSource`; the range terms reach DuckDB as bound values,
  which it pushes into the Parquet scan); it writes one staged file per month of its bucket
  (Arrow IPC, :func:`assets_pkg.summary.month_file.write_staged_file`) under the run's
  staging folder, then a done marker. Its memory is the history ring of its bucket's
  accounts (about ``accounts / B``), so ``SUMMARY_BUCKETS`` (or ``SUMMARY_STEP_MEMORY_MB``)
  bounds it whatever the number of accounts or months.
- **combine steps** (:func:`combine_group`): for each month of a group of
  ``SUMMARY_COMBINE_MONTHS`` months, once every bucket step holding it is done, the bucket
  files in bucket order (each is sorted by key, as the one-step build writes a month, and
  the buckets are consecutive key ranges, so their concatenation is the month in key order:
  no merge) into the one month file ``YYYY-MM.parquet``, published atomically (an empty
  month deletes the old file, as the one-step build does); then the month's checks, read
  back from the published file as the one-step build's are (the history_consistency pair
  with the month before reads that month's bucket files of this run, or the published file
  before the run's first month). Memory: one batch of one bucket file, one month's keys
  and row hashes, a bounded source query (``CHECK_ROWS_PER_QUERY``).
- :func:`finish` records the processed batches and removes the staging folder; the run's
  check results are :func:`run_outcomes` of the combine steps' (per month, as the one-step
  asset reports them).

Dependencies between chunks: none (``SUMMARY_CHUNK_MONTHS=0``, the default, makes one
chunk when there are 2 buckets or more). A chunk's step needs the history of the L-1 months
before its first month. It reads them from the bucket's staged file of the same run when
that month's step has already written it (the file carries the month's source
fingerprint, so :func:`build_months` seeds its ring from it), and otherwise aggregates them
from the source records. Chaining chunks (each waiting for the previous chunk's files)
would save that warm-up read but serialize the months of a bucket: with fixed warm-up cost
and no ordering, every (bucket, chunk) step can run at once on its own worker, and a
re-run of one step needs nothing but the source. The published month files are not used
for the warm-up: they hold every bucket's accounts, which would break the memory bound.

Every step works from the same snapshot: the plan pins the batch files (name, size,
mtime), their profile (no step scans the source again for it), the current month and the
bucket bounds; a step that sees a pinned batch changed or gone stops naming it, before
writing. Batches that arrive during the run are left for the next run.

Staging (``<warehouse>/summary/_staging/<run>/``, :func:`assets_pkg.layout.staging_dir`)
holds only hidden temps or complete bucket files; nothing there looks like a month file to
the IO manager, the checks or ``latest_summary``. A killed step leaves at most a temp.
"""

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
from pydantic import model_validator

from assets_pkg import layout
from assets_pkg.checking import CheckOutcome, outcome_from_dict, outcome_to_dict
from assets_pkg.duck import connect
from assets_pkg.io import WriteResult, atomic_write_json
from assets_pkg.io.locks import domain_lock
from assets_pkg.obs import log_event, peak_rss_mb
from assets_pkg.settings import SettingsModel, setting
from assets_pkg.storage import is_remote
from assets_pkg.storage.arrow import arrow_file
from assets_pkg.storage.objects import file_exists
from assets_pkg.summary import state as summary_state
from assets_pkg.summary.build import BuildStats, build_months
from assets_pkg.summary.config import SummarySettings
from assets_pkg.summary.month_file import (
    ARROW_TYPES,
    FINGERPRINT_KEY,
    key_arrow_type,
    STAGED_SUFFIX,
    output_schema,
    write_month_file,
    write_staged_file,
)
from assets_pkg.summary.month_scan import MonthScanner, scan_copies, scan_path
from assets_pkg.summary.months import add_months, current_month, month_index, month_range, month_str
from assets_pkg.summary.plan import reflected_files
from assets_pkg.summary.source import VIEW, BatchFile, Source, SourceProfile, list_batch_files
from assets_pkg.summary.validate import merge_outcomes, summary_outcomes

DOMAIN = "summary"
# process baseline of a step (interpreter, pyarrow, the DuckDB query of up to
# max_rows_per_query rows, writer threads), measured by bench/summary_fanout.py (a 50k-account
# bucket peaks at ~780 MB); the rest of the budget is for the bucket's accounts
STEP_BASE_MB = 700
# bytes per account besides the ring: key index, a month's winners and its Arrow columns,
# the month tables queued for the writers (fitted: one 200k-account bucket peaks at ~1180 MB)
ACCOUNT_OVERHEAD_BYTES = 1200
# records the plan samples (whole accounts, picked by key hash) to choose the bucket bounds
# and each bucket's rows per month: enough for bounds within about 1% of a bucket's records
# (thousands of sampled accounts) and for months sized within a fifth (bench/NOTES.md)
BUCKET_SAMPLE_ROWS = 200_000
# standard deviations of margin on a bucket's sampled rows per month: the build sizes its
# history ring and its query chunks from them
SAMPLE_MARGIN_SIGMAS = 4
# source records per winners' query of a combine step's history_matches_source check (a month
# with more is digested in parts of its accounts): DuckDB cannot spill those aggregates, so
# this, not the accounts per month, bounds the check's memory
CHECK_ROWS_PER_QUERY = 500_000
# source records per winners' query of a bucket step (max_rows_per_query when lower): a
# bucket of 143k accounts x 60 months peaked at 1010 MB with 3M, 607 MB with 500k, for 5%
# more CPU (bench/NOTES.md)
BUCKET_QUERY_ROWS = 500_000
# months per bucket step when there is one bucket (SUMMARY_CHUNK_MONTHS=0): chunks are then
# the only steps that can run side by side
AUTO_CHUNK_MONTHS = 24


class FanoutError(RuntimeError):
    """A fan-out step cannot run on what it finds; the message names the file or setting."""


class FanoutSettings(SettingsModel):
    """How a summary range run splits into steps (the cluster executors' path)."""

    buckets: int = setting(
        0, env="SUMMARY_BUCKETS",
        description="Account buckets (key ranges of about equal records) of a fan-out summary run (one step per "
                    "bucket and month chunk); "
                    "0 = as many as SUMMARY_STEP_MEMORY_MB needs.")
    step_memory_mb: int = setting(
        1024, env="SUMMARY_STEP_MEMORY_MB",
        description="Memory budget of one summary bucket step, used to choose the bucket count when "
                    "SUMMARY_BUCKETS is 0.")
    chunk_months: int = setting(
        0, env="SUMMARY_CHUNK_MONTHS",
        description="Months per summary bucket step; each step also reads the history_length-1 months before its "
                    f"chunk. 0 = the whole range when there are 2 buckets or more, else {AUTO_CHUNK_MONTHS}.")
    combine_months: int = setting(
        12, env="SUMMARY_COMBINE_MONTHS",
        description="Months per summary combine step (joins each month's bucket files into the month file and "
                    "runs that month's checks).")

    @model_validator(mode="after")
    def _validate(self):
        if self.buckets < 0:
            raise ValueError("SUMMARY_BUCKETS must be >= 0")
        if self.step_memory_mb <= STEP_BASE_MB:
            raise ValueError(f"SUMMARY_STEP_MEMORY_MB must be more than the step's baseline of {STEP_BASE_MB} MB")
        if self.chunk_months < 0:
            raise ValueError("SUMMARY_CHUNK_MONTHS must be >= 0 (0: automatic)")
        if self.combine_months < 1:
            raise ValueError("SUMMARY_COMBINE_MONTHS must be >= 1")
        return self

    def chunk_months_for(self, buckets: int) -> int:
        """Months per bucket step: a chunk after the first re-reads the history_length-1
        months before it, so with buckets enough to run steps side by side one chunk."""
        if self.chunk_months:
            return self.chunk_months
        return 10**6 if buckets >= 2 else AUTO_CHUNK_MONTHS


def bucket_bounds(keys: list, weights: list[int], buckets: int) -> list:
    """Key bounds cutting ``keys`` (distinct, ascending) into at most ``buckets`` consecutive
    ranges of about equal total weight: bucket ``b`` holds the keys ``k`` with
    ``bounds[b-1] <= k < bounds[b]`` (no lower bound for the first, no upper for the last).
    A bound is always a key of the list, so no bucket is empty; one heavy key makes fewer
    buckets, never an empty one."""
    total = sum(weights)
    bounds: list = []
    before = 0  # weight of the keys before the current one
    for key, weight in zip(keys, weights):
        if len(bounds) + 1 < buckets and before and before * buckets >= total * (len(bounds) + 1):
            bounds.append(key)
        before += weight
    return bounds


def bucket_of(bounds: list, keys: list) -> "np.ndarray":
    """The bucket of each key (the index of its range among ``bounds``)."""
    return np.searchsorted(np.asarray(bounds, dtype=object), np.asarray(keys, dtype=object), side="right")


def bucket_month_rows(buckets: int, bucket: "np.ndarray", months: "np.ndarray", every: int,
                      whole: dict[int, int]) -> list[dict[str, int]]:
    """Each bucket's expected records per month, from a sample of one account in ``every``
    (``bucket`` and ``months``: one entry per sampled record), with a margin of
    ``SAMPLE_MARGIN_SIGMAS`` standard deviations: the build sizes its history ring and its
    query chunks from them. A month the whole source has records for never comes out 0
    unless the sample is the whole source (``every`` 1): the build would take it for empty.
    Never more than the whole source's rows of the month."""
    pairs, found = np.unique(np.stack([np.asarray(bucket, np.int64), np.asarray(months, np.int64)]), axis=1,
                             return_counts=True)
    counts = {(int(b), int(m)): int(n) for (b, m), n in zip(pairs.T, found)}
    out: list[dict[str, int]] = []
    for b in range(buckets):
        rows = {}
        for month, total in whole.items():
            seen = counts.get((b, month), 0) * every
            margin = 0 if every == 1 else SAMPLE_MARGIN_SIGMAS * math.sqrt(every * max(seen, every))
            rows[str(month)] = min(total, math.ceil(seen + margin)) if total else 0
        out.append(rows)
    return out


def bytes_per_account(cfg: SummarySettings, lag: int = 2) -> int:
    """Memory one account costs a bucket step: the history ring holds 2 x (L + lag) slots
    of value + validity per history column (:class:`assets_pkg.summary.ring.HistoryRing`)."""
    ring = sum(2 * (cfg.history_length + lag) * (ARROW_TYPES[cfg.value_type(c)].bit_width // 8 + 1)
               for c in cfg.history_columns)
    return ring + ACCOUNT_OVERHEAD_BYTES


def choose_buckets(cfg: SummarySettings, accounts: int, settings: FanoutSettings) -> int:
    """``SUMMARY_BUCKETS`` when set, else the fewest buckets whose accounts fit the step
    budget ``SUMMARY_STEP_MEMORY_MB``."""
    if settings.buckets:
        return settings.buckets
    room = (settings.step_memory_mb - STEP_BASE_MB) * 2**20
    return max(1, math.ceil(accounts * bytes_per_account(cfg) / room))


def month_chunks(start: str, end: str, months: int) -> list[tuple[str, str]]:
    """``start..end`` in consecutive chunks of at most ``months`` months."""
    out = []
    for lo in range(month_index(start), month_index(end) + 1, months):
        out.append((month_str(lo), month_str(min(lo + months - 1, month_index(end)))))
    return out


@dataclass(frozen=True)
class FanoutPlan:
    """What every step of one fan-out run agrees on (JSON-serializable: a step's input)."""

    run: str  # names the staging folder
    start: str
    end: str
    buckets: int
    chunks: list[tuple[str, str]]
    files: dict[str, str]  # pinned batch files: name -> identity (size:mtime)
    now_month: str
    accounts: int = 0  # estimated distinct accounts (chose the bucket count)
    steps_memory_mb: int = 0
    groups: list[tuple[str, str]] = field(default_factory=list)  # months of each combine step
    # the source profile of the pinned files (SourceProfile.to_dict): no step scans them again for it
    profile: dict = field(default_factory=dict)
    # key bounds of the buckets (bucket_bounds) and each bucket's expected records per month
    # (month index as text -> rows, bucket_month_rows); empty with one bucket
    bounds: list = field(default_factory=list)
    bucket_rows: list[dict[str, int]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "FanoutPlan":
        data = json.loads(text)
        data["chunks"] = [tuple(c) for c in data["chunks"]]
        data["groups"] = [tuple(c) for c in data.get("groups", [])]
        return cls(**data)

    @property
    def source_profile(self) -> "SourceProfile | None":
        """The profile of the pinned files the plan step made, if it made one."""
        return SourceProfile.from_dict(self.profile) if self.profile else None

    @property
    def steps(self) -> list[tuple[int, str, str]]:
        """Every (bucket, chunk start, chunk end)."""
        return [(b, lo, hi) for lo, hi in self.chunks for b in range(self.buckets)]

    def chunk_of(self, month: str) -> tuple[str, str]:
        for lo, hi in self.chunks:
            if month_index(lo) <= month_index(month) <= month_index(hi):
                return lo, hi
        raise ValueError(f"month {month} is not in the run's range {self.start}..{self.end}")


# ---- layout of a run's staging folder ------------------------------------------------------
def staging_dir(plan: FanoutPlan) -> Path:
    return layout.staging_dir(DOMAIN, plan.run)


def staged_file(plan: FanoutPlan, month: str, bucket: int) -> Path:
    """Bucket ``bucket``'s rows of ``month`` (a folder per month: the combine lists one)."""
    return staging_dir(plan) / month / f"bucket-{bucket:05d}{STAGED_SUFFIX}"


def done_marker(plan: FanoutPlan, bucket: int, lo: str, hi: str) -> Path:
    return staging_dir(plan) / "_done" / f"{lo}_{hi}" / f"bucket-{bucket:05d}.json"


def combined_marker(plan: FanoutPlan, lo: str, hi: str) -> Path:
    """Written by the combine step of months ``lo..hi`` once they are published and
    checked: its rows and check outcomes (a re-run of the step returns them)."""
    return staging_dir(plan) / "_combined" / f"{lo}_{hi}.json"


# ---- the source, pinned and cut to a bucket ------------------------------------------------
class BucketSource(Source):
    """The source restricted to the accounts of one bucket (a key range of the plan).

    Every query that picks the records the summary uses filters with
    :meth:`good_rows_sql`, so the range terms there restrict the winners. The bounds are
    DuckDB variables of the connection, not SQL text: a key may hold any character, and
    DuckDB folds ``getvariable`` into a constant it pushes into the Parquet scan. The
    profile (problems, months, fingerprints) stays that of the whole source, except the
    rows per month: the bucket's share the plan estimated, which sizes the history ring and
    the query chunks to the bucket."""

    LOWER, UPPER = "summary_bucket_lower", "summary_bucket_upper"

    def __init__(self, con, cfg, files, bucket: int, plan: "FanoutPlan", **kwargs):
        self._lower = plan.bounds[bucket - 1] if bucket > 0 else None
        self._upper = plan.bounds[bucket] if bucket < len(plan.bounds) else None
        self._rows = plan.bucket_rows[bucket] if plan.bucket_rows else None
        self._share: SourceProfile | None = None
        for name, value in ((self.LOWER, self._lower), (self.UPPER, self._upper)):
            if value is not None:
                con.execute(f"SET VARIABLE {name} = ?", [value])
        super().__init__(con, cfg, files, **kwargs)

    def good_rows_sql(self) -> str:
        terms = [super().good_rows_sql()]
        key_type = self.cfg.key_type
        if self._lower is not None:
            terms.append(f"key >= CAST(getvariable('{self.LOWER}') AS {key_type})")
        if self._upper is not None:
            terms.append(f"key < CAST(getvariable('{self.UPPER}') AS {key_type})")
        return " AND ".join(terms)

    def profile(self) -> SourceProfile:
        if self._share is None:
            whole = super().profile()
            rows = whole.rows_per_month if self._rows is None else {int(m): n for m, n in self._rows.items()}
            self._share = replace(whole, rows_per_month=rows)
        return self._share


def pinned_files(cfg: SummarySettings, plan: FanoutPlan) -> list[BatchFile]:
    """The plan's batch files as they are now; a pinned file changed or gone stops the step."""
    found = {f.name: f for f in list_batch_files(cfg.source_path)}
    changed = []
    for name, identity in sorted(plan.files.items()):
        f = found.get(name)
        if f is None or f.identity != identity:
            changed.append(f"{name} ({identity} -> {f.identity if f else 'gone'})")
    if changed:
        raise FanoutError(f"{cfg.source_path}: batch files changed since summary run {plan.run} was planned: "
                          f"{changed}; start a new run")
    return [found[name] for name in sorted(plan.files)]


def open_source(con, cfg, plan: FanoutPlan, bucket: int | None = None, logger=None) -> Source:
    files = pinned_files(cfg, plan)
    profile = plan.source_profile
    if bucket is None:
        return Source(con, cfg, files, now_month=plan.now_month, logger=logger, profile=profile)
    return BucketSource(con, cfg, files, bucket, plan, now_month=plan.now_month, logger=logger, profile=profile)


# ---- plan ----------------------------------------------------------------------------------
def plan_fanout(cfg: SummarySettings, start: str, end: str, run: str, settings: FanoutSettings | None = None,
                con=None, now_month: str | None = None, logger=None) -> FanoutPlan:
    """Pin the batch files, profile them (bad input is refused here, before any step writes)
    and choose the bucket count and the month chunks."""
    settings = settings or FanoutSettings.from_env()
    con = con or connect()
    if month_index(end) < month_index(start):
        raise ValueError(f"summary run {run}: range end {end} is before its start {start}")
    layout.remove_stale_staging(DOMAIN)
    files = list_batch_files(cfg.source_path)
    with Source(con, cfg, files, now_month=now_month or current_month(), logger=logger) as source:
        lo, hi = max(month_index(start) - (cfg.history_length - 1), cfg.first_month_index), month_index(end)
        with source.whole_scan():  # both queries read every batch
            profile = source.profile()  # raises on bad input: nothing written yet
            sample = AccountSample.take(con, source, lo, hi)
        bounds, bucket_rows = sample.buckets(choose_buckets(cfg, sample.accounts, settings))
        buckets = len(bounds) + 1
        return FanoutPlan(
            run=run, start=start, end=end, buckets=buckets,
            chunks=month_chunks(start, end, settings.chunk_months_for(buckets)),
            files={f.name: f.identity for f in files},
            now_month=source.now_month, accounts=sample.accounts,
            steps_memory_mb=settings.step_memory_mb,
            groups=month_chunks(start, end, settings.combine_months),
            profile=profile.to_dict(), bounds=bounds, bucket_rows=bucket_rows,
        )


@dataclass(frozen=True)
class AccountSample:
    """The records (key, month) of one account in ``every`` over a run's months, picked by
    key hash so that an account's records are all in or all out: the plan's one query for
    the account count, the bucket bounds and each bucket's records per month."""

    keys: np.ndarray
    months: np.ndarray
    every: int
    whole: dict[int, int]  # the whole source's records per month of the window

    @classmethod
    def take(cls, con, source: Source, lo: int, hi: int) -> "AccountSample":
        """Sample months ``lo..hi`` (indexes) for about ``BUCKET_SAMPLE_ROWS`` records."""
        whole = {m: n for m, n in source.profile().rows_per_month.items() if lo <= m <= hi}
        every = max(1, sum(whole.values()) // BUCKET_SAMPLE_ROWS)
        # ``every`` is written into the SQL (an int), not bound: DuckDB then pushes the term
        # into the Parquet scan; bound, the query took 22 CPU-s instead of 9 at 1M accounts
        sample = con.sql(
            f"SELECT key, month_idx FROM {VIEW} WHERE {source.good_rows_sql()} AND month_idx BETWEEN ? AND ? "
            f"AND hash(key) % {int(every)} = 0", params=[lo, hi]).to_arrow_table()
        return cls(sample.column(0).to_numpy(zero_copy_only=False), sample.column(1).to_numpy(zero_copy_only=False),
                   every, whole)

    @property
    def accounts(self) -> int:
        """Estimated distinct accounts (exact when ``every`` is 1)."""
        return len(np.unique(self.keys)) * self.every

    def buckets(self, buckets: int) -> tuple[list, list[dict[str, int]]]:
        """Bounds of up to ``buckets`` key ranges of about equal records
        (:func:`bucket_bounds`) and each range's expected records per month
        (:func:`bucket_month_rows`); none with one bucket."""
        if buckets < 2:
            return [], []
        distinct, weights = np.unique(self.keys, return_counts=True)
        bounds = bucket_bounds(distinct.tolist(), weights.tolist(), buckets)
        return bounds, bucket_month_rows(len(bounds) + 1, bucket_of(bounds, self.keys), self.months, self.every,
                                         self.whole)


def groups_costliest_first(plan: FanoutPlan, history_length: int) -> list[tuple[str, str]]:
    """The plan's combine groups, the costliest first. A combine step's time follows the
    history cells it merges and writes: for each of its months, the source rows of that month
    and of the ``history_length - 1`` before it (a 12-month group of the first year of data
    measured 25 s, one of the fifth year 84-89 s). Handed out costliest first, the last
    steps to start are the short ones, so the workers finish together (longest processing
    time first); ties keep the plan's order."""
    profile = plan.source_profile
    rows = profile.rows_per_month if profile else {}

    def cost(group: tuple[str, str]) -> int:
        months = range(month_index(group[0]), month_index(group[1]) + 1)
        return sum(rows.get(m - back, 0) for m in months for back in range(history_length))

    return sorted(plan.groups, key=cost, reverse=True)


# ---- bucket step ---------------------------------------------------------------------------
def build_bucket(cfg: SummarySettings, plan: FanoutPlan, bucket: int, lo: str, hi: str, con=None,
                 logger=None) -> BuildStats:
    """Build months ``lo..hi`` of the accounts in ``bucket`` into the run's staging folder."""
    if not 0 <= bucket < plan.buckets:
        raise ValueError(f"bucket {bucket} is not in 0..{plan.buckets - 1}")
    con = con or connect()
    # the month fingerprints leave max_rows_per_query out: the staged files carry the same ones
    cfg = cfg.model_copy(update={"max_rows_per_query": min(cfg.max_rows_per_query, BUCKET_QUERY_ROWS)})

    def write(month: str, rows) -> WriteResult:
        return write_staged_file(rows, staged_file(plan, month, bucket))

    with open_source(con, cfg, plan, bucket, logger) as source:
        stats = build_months(source, lo, hi, write, logger=logger,
                             month_path=lambda m: staged_file(plan, m, bucket))
    atomic_write_json(done_marker(plan, bucket, lo, hi), {"rows_per_month": stats.rows_per_month})
    log_event("summary_bucket_built", logger, run=plan.run, bucket=bucket, buckets=plan.buckets, start=lo, end=hi,
              rows=stats.rows, seeded_months=stats.seeded_months, seconds=round(stats.seconds, 3),
              peak_rss_mb=stats.peak_rss_mb)
    return stats


# ---- combine -------------------------------------------------------------------------------
class StagedMonth:
    """One month's rows: its bucket files one after another, in bucket order (the
    ``num_rows`` / ``schema`` / ``to_batches`` a :func:`write_month_file` writer reads).

    The buckets are consecutive key ranges and each file is sorted by key, so this is the
    month in key order; a file whose first key is not above the previous file's last (a
    bucket file of another plan) stops the combine naming it rather than publish a month
    out of order."""

    def __init__(self, files: list[tuple[Path, ipc.RecordBatchFileReader]], schema: pa.Schema, num_rows: int):
        self.files, self.schema, self.num_rows = files, schema, num_rows  # (path, opened file) in bucket order

    def _batches(self) -> Iterator[pa.RecordBatch]:
        plain = self.schema.remove_metadata()
        last = None
        for path, staged in self.files:
            for batch in (staged.get_batch(i) for i in range(staged.num_record_batches)):
                if not batch.num_rows:
                    continue
                first = batch.column(0)[0].as_py()
                if last is not None and not first > last:
                    raise FanoutError(f"{path}: its first key {first!r} is not above the previous bucket's "
                                      f"last key {last!r}; the staged files do not belong to one plan")
                last = batch.column(0)[-1].as_py()
                yield batch.cast(plain)

    def to_batches(self, max_chunksize: int) -> Iterator[pa.RecordBatch]:
        """Batches of exactly ``max_chunksize`` rows (the last may be shorter): the writer
        makes a row group of each, across the bucket files' boundaries."""
        buffered: list[pa.RecordBatch] = []
        count = 0
        for batch in self._batches():
            buffered.append(batch)
            count += batch.num_rows
            if count < max_chunksize:
                continue
            table = pa.Table.from_batches(buffered).combine_chunks()
            whole = count - count % max_chunksize
            yield from table.slice(0, whole).to_batches(max_chunksize)
            rest = table.slice(whole)
            buffered, count = (rest.to_batches(), rest.num_rows) if rest.num_rows else ([], 0)
        if count:
            yield from pa.Table.from_batches(buffered).combine_chunks().to_batches()


def _check_done(plan: FanoutPlan, lo: str, hi: str) -> None:
    """Every bucket step of every chunk holding a month of ``lo..hi`` has finished."""
    missing = [(b, c_lo, c_hi) for c_lo, c_hi in plan.chunks
               if month_index(c_lo) <= month_index(hi) and month_index(c_hi) >= month_index(lo)
               for b in range(plan.buckets) if not done_marker(plan, b, c_lo, c_hi).is_file()]
    if missing:
        b, c_lo, c_hi = missing[0]
        raise FanoutError(f"summary run {plan.run}: months {lo}..{hi} cannot be combined, bucket step(s) "
                          f"{sorted({m[0] for m in missing})[:10]} of {plan.buckets} have not finished "
                          f"(no {done_marker(plan, b, c_lo, c_hi)})")


def staged_month(cfg: SummarySettings, plan: FanoutPlan, month: str) -> "StagedMonth | pa.Table":
    """The month's rows from its bucket files (an empty table when no bucket has any)."""
    paths = [staged_file(plan, month, b) for b in range(plan.buckets)]
    paths = [p for p in paths if p.is_file()]
    if not paths:
        return output_schema(cfg, key_arrow_type(cfg)).empty_table()
    files = [(p, arrow_file(p)) for p in paths]  # opened once: schema, row count and batches
    prints = {(f.schema.metadata or {}).get(FINGERPRINT_KEY) for _, f in files}
    if len(prints) != 1:
        raise FanoutError(f"summary run {plan.run}: the bucket files of {month} under {staging_dir(plan)} were "
                          "built from different sources; start a new run")
    schema = files[0][1].schema
    fp = prints.pop()
    schema = schema.with_metadata({FINGERPRINT_KEY: fp}) if fp else schema.remove_metadata()
    return StagedMonth(files, schema, sum(f.count_rows() for _, f in files))


def combine_group(cfg: SummarySettings, plan: FanoutPlan, lo: str, hi: str, month_path: Callable[[str], Path],
                  con=None, logger=None, run_checks: bool = True) -> dict:
    """Publish months ``lo..hi`` from the bucket files once every bucket step holding them
    is done, and check each month as the one-step build does (the month before ``lo`` is
    read for the history_consistency pair: the published file before the run's first
    month, else that month's bucket files of this run). Returns ``{"rows_per_month",
    "outcomes"}`` (outcomes as :func:`assets_pkg.checking.outcome_to_dict`; the run's are
    :func:`assets_pkg.summary.validate.merge_outcomes` of every group's in month order).

    Re-running a combine that finished returns what it recorded. Its staged months are
    removed after, except ``hi`` (the next group's neighbour): :func:`finish` removes it."""
    marker = combined_marker(plan, lo, hi)
    if marker.is_file():
        return json.loads(marker.read_text(encoding="utf-8"))
    before = add_months(lo, -1)
    _check_done(plan, before if lo != plan.start else lo, hi)
    con = con or connect()
    # an object-store root: the checks read local copies of the months uploaded (hard links)
    with scan_copies(run_checks and is_remote(month_path(lo))) as copies:
        scanner = MonthScanner(cfg, con) if run_checks else None
        if scanner is not None and lo != plan.start:
            neighbour = staged_month(cfg, plan, before)
            scanner.add(before, None, report=False, rows=neighbour if neighbour.num_rows else None)
        elif scanner is not None and file_exists(month_path(before)):
            scanner.add(before, scan_path(month_path(before), copies), report=False)
        rows, checked = {}, {}
        for month in month_range(lo, hi):
            keep = copies / f"{month}.parquet" if copies is not None else None
            result = write_month_file(staged_month(cfg, plan, month), month_path(month), keep=keep)
            rows[month] = result.rows
            if result.path is not None:
                checked[month] = keep or result.path
            if scanner is not None:
                scanner.add(month, checked.get(month))
        outcomes = []
        if scanner is not None:
            with open_source(con, cfg, plan, logger=logger) as source:
                outcomes = summary_outcomes(con, cfg, checked, source, facts=scanner.facts,
                                            rows_per_query=CHECK_ROWS_PER_QUERY)
    done = {"rows_per_month": rows, "outcomes": [outcome_to_dict(o) for o in outcomes]}
    atomic_write_json(marker, done)
    for month in month_range(lo, hi):
        if month != hi or hi == plan.end:
            layout.remove_tree(staging_dir(plan) / month)
    log_event("summary_months_combined", logger, run=plan.run, start=lo, end=hi, rows=sum(rows.values()),
              failed_checks=sorted({o.name for o in outcomes if not o.passed}), peak_rss_mb=peak_rss_mb())
    return done


# ---- finish --------------------------------------------------------------------------------
def finish(cfg: SummarySettings, plan: FanoutPlan, state_file: Path | None = None, con=None, run_id=None,
           logger=None, update_state: bool = True) -> list[str]:
    """After every month group is combined: record the batches the summary now reflects
    (as the one-step build does) and remove the run's staging folder. Returns the newly
    processed batch names."""
    missing = [f"{lo}..{hi}" for lo, hi in plan.groups if not combined_marker(plan, lo, hi).is_file()]
    if missing:
        raise FanoutError(f"summary run {plan.run}: months {missing[:10]} were not combined yet")
    newly: list[str] = []
    if update_state:
        con = con or connect()
        folder = state_file.parent if state_file is not None else None
        with domain_lock(DOMAIN, run_id, logger=logger, folder=folder), open_source(con, cfg, plan) as source:
            profile = source.profile()
            processed = summary_state.load_processed(state_file)
            last_idx = max(profile.months) if profile.months else month_index(plan.end)
            read = [f for f in source.files if f.name not in source.skipped]
            updated = reflected_files(read, processed, profile.file_months, plan.start, plan.end, cfg, last_idx)
            newly = sorted(n for n, e in updated.items() if processed.get(n) != e)
            if updated != processed:
                summary_state.save_processed(updated, state_file)
    layout.remove_tree(staging_dir(plan))
    return newly


def run_outcomes(combined: list[dict]) -> list[CheckOutcome]:
    """The run's checks from its combine steps' results (any order)."""
    ordered = sorted(combined, key=lambda part: min(part["rows_per_month"], default=""))
    return merge_outcomes([[outcome_from_dict(o) for o in part["outcomes"]] for part in ordered])


@dataclass
class FanoutResult:
    plan: FanoutPlan
    rows_per_month: dict[str, int] = field(default_factory=dict)
    step_peak_rss_mb: float = 0.0
    newly_processed: list[str] = field(default_factory=list)
    outcomes: list[CheckOutcome] = field(default_factory=list)


def run_fanout(cfg: SummarySettings, start: str, end: str, month_path: Callable[[str], Path], run: str,
               settings: FanoutSettings | None = None, con=None, now_month: str | None = None, logger=None,
               state_file: Path | None = None, update_state: bool = True,
               step_order: Callable[[list], list] | None = None, run_checks: bool = True) -> FanoutResult:
    """Every step of a fan-out run in this process, one after another (tests, bench, CLI);
    ``step_order`` may shuffle the bucket steps (any order gives the same files)."""
    con = con or connect()
    plan = plan_fanout(cfg, start, end, run, settings, con=con, now_month=now_month, logger=logger)
    steps = plan.steps if step_order is None else step_order(plan.steps)
    result = FanoutResult(plan)
    for bucket, lo, hi in steps:
        stats = build_bucket(cfg, plan, bucket, lo, hi, con=con, logger=logger)
        result.step_peak_rss_mb = max(result.step_peak_rss_mb, stats.peak_rss_mb)
    combined = [combine_group(cfg, plan, lo, hi, month_path, con=con, logger=logger, run_checks=run_checks)
                for lo, hi in plan.groups]
    for part in combined:
        result.rows_per_month.update(part["rows_per_month"])
    result.outcomes = run_outcomes(combined) if run_checks else []
    result.newly_processed = finish(cfg, plan, state_file, con=con, logger=logger, update_state=update_state)
    return result
