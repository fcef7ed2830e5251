"""Fetch a window through the cache: plan under the log's lock, fetch only the gaps, summarise.

:func:`fetch_window` is the one function behind the ``logs/log_events`` asset, the
``logs_fetch_window_job`` and ``assets-pkg logs fetch``.
"""

import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from assets_pkg import layout
from assets_pkg.io.atomic import DISK_FULL_ERRNOS, atomic_dir, atomic_write_json, is_temp_name
from assets_pkg.logs.planner import (
    CoveragePlan,
    ranges_json,
    plan_coverage,
    split_at_horizon,
    validate_window,
)
from assets_pkg.logs.sources import LogSource
from assets_pkg.logs.store import (
    CacheWriteError,
    LogCacheError,
    Segment,
    SegmentStore,
    find_overlaps,
    segment_dir,
    validate_log_id,
    verify_segment,
    write_segment_manifest,
)
from assets_pkg.logs.summary import SummaryAccumulator, summarize_window, segment_files
from assets_pkg.logs.writer import PartWriter, flush_bytes_setting, flush_rows_setting
from assets_pkg.obs import Stopwatch, log_event
from assets_pkg.settings import SettingError, env_bool, env_int
from assets_pkg.storage.lease import TTL_VAR, LeaseLost, lease_ttl_s

BYPASS = "bypass"


def freshness_minutes_setting(value: int | None = None) -> int:
    minutes = env_int("FRESHNESS_MINUTES", 10) if value is None else int(value)
    if minutes < 0:
        raise SettingError(f"FRESHNESS_MINUTES={minutes} must be >= 0")
    return minutes


def exports_dir() -> Path:
    return layout.exports_dir("logs")


def summary_path(log_id: str, start_ms: int, end_ms: int) -> Path:
    return exports_dir() / validate_log_id(log_id) / f"summary_{start_ms}_{end_ms}.json"


def manifest_path(log_id: str, start_ms: int, end_ms: int) -> Path:
    return exports_dir() / validate_log_id(log_id) / f"window_{start_ms}_{end_ms}.json"


@dataclass
class FetchResult:
    log_id: str
    start_ms: int
    end_ms: int
    decision: str  # hit | partial | miss | bypass
    output_file: str | None
    rows_processed: int  # events fetched from the source by this run
    batches_processed: int  # batches received from the source by this run
    duration_seconds: float
    segments_used: list[str]  # segments already cached that intersect the window
    segments_written: list[str]  # segments published by this run
    cache_missing_ranges: list[list[int]]
    cache_cached_ranges: list[list[int]]
    uncached_ranges: list[list[int]]  # fetched but not cached (freshness horizon / bypass)
    parts_written: int
    bytes_written: int
    summary_output: str | None
    summary: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def fetch_window(
    log_id: str,
    start_ms: int,
    end_ms: int,
    source: LogSource,
    *,
    store: SegmentStore | None = None,
    bypass_cache: bool | None = None,
    flush_rows: int | None = None,
    flush_bytes: int | None = None,
    freshness_minutes: int | None = None,
    now_ms: int | None = None,
    write_outputs: bool = True,
    summarize: bool = True,
    logger=None,
) -> FetchResult:
    """Make ``[start_ms, end_ms)`` of ``log_id`` available, fetching only what is missing."""
    watch = Stopwatch()
    validate_log_id(log_id)
    start_ms, end_ms = validate_window(start_ms, end_ms)
    bypass = env_bool("BYPASS_CACHE", False) if bypass_cache is None else bool(bypass_cache)
    rows_cap = flush_rows_setting(flush_rows)
    bytes_cap = flush_bytes_setting(flush_bytes)
    now = int(time.time() * 1000) if now_ms is None else int(now_ms)
    horizon = now - freshness_minutes_setting(freshness_minutes) * 60_000
    base = {"log_id": log_id, "start_ms": start_ms, "end_ms": end_ms}

    if bypass:
        log_event("cache_bypassed", logger, **base, source=source.describe())
        acc, batches = _fetch_uncached(source, log_id, [(start_ms, end_ms)], logger)
        summary = summarize_window(log_id, start_ms, end_ms, [], extra=acc, logger=logger) if summarize else {}
        if summarize:
            publish_summary(summary, logger, write=False)
        return FetchResult(log_id, start_ms, end_ms, BYPASS, None, acc.rows, batches, watch.seconds, [], [],
                           [[start_ms, end_ms]], [], [[start_ms, end_ms]], 0, 0, None, summary)

    store = store or SegmentStore()
    written: list[Segment] = []
    parts = 0
    size = 0
    rows = 0
    batches = 0
    store.refuse_legacy_layout(log_id)
    try:
        store.ensure_log_dir(log_id)
    except CacheWriteError as exc:
        log_event("cache_write_failed", logger, level="error", log_id=log_id, subrange=[start_ms, end_ms],
                  segment_dir=str(store.root / log_id), error=str(exc)[:500])
        raise
    try:  # the lease of an object-store cache can be lost while held: say what that means here
        with store.lock(log_id) as log_dir:
            removed = store.remove_uncommitted(log_id) if store.remote else _remove_stale_temps(log_dir)
            if removed:
                log_event("cache_stale_temps_removed", logger, log_id=log_id, cache_dir=str(log_dir), removed=removed)
            log_event("cache_scan_start", logger, log_id=log_id, cache_dir=str(log_dir))
            segments = store.segments(log_id)
            used = [s for s in segments if s.intersects(start_ms, end_ms)]
            for seg in used:
                try:
                    verify_segment(seg)
                except Exception as exc:
                    log_event("cache_read_failed", logger, level="error", log_id=log_id, segment_dir=str(seg.path),
                              error=str(exc)[:500])
                    raise
            log_event("cache_scan_complete", logger, log_id=log_id, cache_dir=str(log_dir), segment_count=len(segments))
            plan = plan_coverage(start_ms, end_ms, [s.window for s in segments])
            cacheable, fresh = split_at_horizon(plan.missing, horizon)
            log_event("cache_coverage_planned", logger, **base, decision=plan.decision,
                      missing_ranges=ranges_json(plan.missing), cached_ranges=ranges_json(plan.cached),
                      uncached_ranges=ranges_json(fresh), freshness_horizon_ms=horizon)
            log_event(f"cache_{plan.decision}", logger, **base, missing_ms=plan.missing_ms, cached_ms=plan.cached_ms,
                      segments_used=len(used))
            for sub_start, sub_end in cacheable:
                seg, stats = _fetch_segment(source, log_dir, log_id, sub_start, sub_end, rows_cap, bytes_cap, logger)
                written.append(seg)
                parts += stats["parts"]
                size += stats["bytes"]
                rows += stats["rows"]
                batches += stats["batches"]
    except LeaseLost as exc:
        raise lease_lost_error(store, log_id, exc, written) from None
    # Fresh sub-ranges are fetched but never cached: a live log would be cached incomplete.
    acc, fresh_batches = _fetch_uncached(source, log_id, fresh, logger)
    rows += acc.rows
    batches += fresh_batches

    summary, summary_out, manifest = {}, None, None
    window_segments = sorted(used + written, key=lambda s: s.start_ms)
    if summarize:
        summary = summarize_window(log_id, start_ms, end_ms, window_segments, extra=acc, logger=logger)
    if summarize:
        summary_out = publish_summary(summary, logger, write=write_outputs)
    if write_outputs:
        manifest = str(write_manifest(log_id, start_ms, end_ms, window_segments, plan, ranges_json(fresh)))
    return FetchResult(
        log_id, start_ms, end_ms, plan.decision, manifest, rows, batches, watch.seconds,
        [str(s.path) for s in used], [str(s.path) for s in written],
        ranges_json(plan.missing), ranges_json(plan.cached), ranges_json(fresh), parts, size, summary_out, summary,
    )


class CacheLeaseLostError(LogCacheError):
    """The log's lease (object-store cache) was broken or taken over while a fetch held it."""


def lease_lost_error(store: SegmentStore, log_id: str, exc: LeaseLost, written: list[Segment]) -> CacheLeaseLostError:
    """The one-line error for a fetch whose lease was lost: the log id, the lease object,
    whether the cache is intact now (every segment this fetch wrote is published by its
    commit, so each is whole or absent, and only after the lease was confirmed, so a fetch
    that finds its lease lost publishes nothing more; the remaining risk is a stall between
    that confirmation and the commit, which the check of overlaps below reports),
    and what to do. The fetch stops before writing its summary and manifest."""
    what = (f"the lease {exc.path} on the log cache of {log_id!r} was broken or taken over while this fetch held it "
            f"(a lease not renewed for {lease_ttl_s():g} s, {TTL_VAR}, is broken by the next waiter: a stalled "
            f"process or an unreachable store)")
    ours = {str(seg.path) for seg in written}
    try:
        for seg in written:
            verify_segment(seg)
        pairs = find_overlaps(store.segments(log_id, check_overlaps=False))
    except LogCacheError as err:
        state = f"the cache is NOT intact: {err}"
    else:
        if pairs:
            a, b = pairs[0]
            mine = next((p for p in (str(a.path), str(b.path)) if p in ours), str(b.path))
            state = (f"the cache is NOT intact: segments {a.path} and {b.path} overlap ({len(pairs)} pair(s)); "
                     f"delete the folder {mine}")
        else:
            state = (f"the cache is intact: the {len(written)} segment(s) this fetch published are committed whole "
                     f"(each only after confirming the lease) and no cached segment of {log_id!r} overlaps another")
    return CacheLeaseLostError(
        f"{what}; {state}. Re-run the same fetch (it reads what is cached) and `assets-pkg check --group logs` "
        f"once no other fetch of {log_id!r} runs; if this recurs, raise {TTL_VAR}")


def _remove_stale_temps(log_dir: Path) -> int:
    """Under the lock, every temp folder is a dead run's leftover: remove it."""
    removed = 0
    if not log_dir.is_dir():
        return 0
    for from_dir in log_dir.iterdir():
        if not from_dir.is_dir():
            continue
        if is_temp_name(from_dir.name):
            shutil.rmtree(from_dir, ignore_errors=True)
            removed += 1
            continue
        for entry in from_dir.iterdir():
            if is_temp_name(entry.name):
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
                removed += 1
    return removed


def _fetch_segment(source, log_dir, log_id, start_ms, end_ms, rows_cap, bytes_cap, logger):
    final = segment_dir(log_dir, start_ms, end_ms)
    fields = {"log_id": log_id, "subrange": [start_ms, end_ms]}
    watch = Stopwatch()
    log_event("fetch_subrange_start", logger, **fields, segment_dir=str(final))
    batches = 0

    try:
        with atomic_dir(final) as tmp:
            writer = PartWriter(tmp, rows_cap, bytes_cap, logger, fields, published_folder=final)
            for batch in _source_batches(source, log_id, start_ms, end_ms):
                batches += 1
                writer.write(batch)
            writer.close()
            # What the segment holds, recorded before it is published: the checks compare the
            # folder's name and the data with it.
            write_segment_manifest(tmp, (start_ms, end_ms), writer.part_rows, writer.ts_min, writer.ts_max)
            SegmentStore.confirm_lock(log_dir)  # still ours? else nothing is published
    except _SourceFailure as failure:
        log_event("fetch_subrange_failed", logger, level="error", **fields, segment_dir=str(final),
                  error=str(failure.original)[:500])
        raise failure.original
    except OSError as exc:  # only the writer / the publishing rename get here
        log_event("cache_write_failed", logger, level="error", **fields, segment_dir=str(final), error=str(exc)[:500])
        if exc.errno in DISK_FULL_ERRNOS:
            remedy = (f"free space on the disk holding {log_dir.parent} (or point LOG_INGESTION_CACHE_DIR at "
                      "another disk), or set BYPASS_CACHE=true")
        else:
            remedy = f"make the cache folder ({log_dir.parent}, LOG_INGESTION_CACHE_DIR) writable, or set BYPASS_CACHE=true"
        raise CacheWriteError(f"cannot write the log segment {final}: {exc}; {remedy}") from exc
    stats = {"rows": writer.rows, "parts": len(writer.parts), "bytes": writer.bytes, "batches": batches}
    log_event("fetch_subrange_complete", logger, **fields, duration_ms=_ms(watch), rows_fetched=writer.rows,
              parts_written=len(writer.parts), segment_dir=str(final))
    return Segment(log_id, start_ms, end_ms, final), stats


def _ms(watch: Stopwatch) -> int:
    return round(watch.seconds * 1000)


class _SourceFailure(Exception):
    """Carries a source's exception past the cache-write handler (a ConnectionError is an OSError)."""

    def __init__(self, original: BaseException):
        super().__init__(str(original))
        self.original = original


def _source_batches(source, log_id, start_ms, end_ms):
    iterator = iter(source.fetch(log_id, start_ms, end_ms))
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except Exception as exc:
            raise _SourceFailure(exc) from exc
        yield batch


def _fetch_uncached(source, log_id, ranges, logger) -> tuple[SummaryAccumulator, int]:
    """Fetch ranges that are not cached (freshness horizon, BYPASS_CACHE): ``segment_dir`` is
    null and nothing is written."""
    acc = SummaryAccumulator()
    batches = 0
    for start_ms, end_ms in ranges:
        fields = {"log_id": log_id, "subrange": [start_ms, end_ms]}
        watch = Stopwatch()
        log_event("fetch_subrange_start", logger, **fields, segment_dir=None)
        before = acc.rows
        try:
            for batch in source.fetch(log_id, start_ms, end_ms):
                batches += 1
                acc.add(batch)
        except Exception as exc:
            log_event("fetch_subrange_failed", logger, level="error", **fields, segment_dir=None, error=str(exc)[:500])
            raise
        log_event("fetch_subrange_complete", logger, **fields, duration_ms=_ms(watch),
                  rows_fetched=acc.rows - before, parts_written=0, segment_dir=None)
    return acc, batches


def summary_json_setting(value: bool | None = None) -> bool:
    """LOG_SUMMARY_JSON: whether a fetch writes the summary JSON (the summary is computed anyway)."""
    return env_bool("LOG_SUMMARY_JSON", True) if value is None else bool(value)


def publish_summary(summary: dict, logger=None, write: bool = True) -> str | None:
    """Write the summary JSON (unless LOG_SUMMARY_JSON=false or ``write`` is off) and log
    ``parquet_summary_generated``; returns the file written, if any."""
    output = None
    if write and summary_json_setting():
        try:
            output = str(write_summary(summary))
        except OSError as exc:
            log_event("parquet_summary_failed", logger, level="error", log_id=summary["log_id"],
                      start_ms=summary["start_ms"], end_ms=summary["end_ms"], error=str(exc)[:500])
            raise
    log_event("parquet_summary_generated", logger, log_id=summary["log_id"], start_ms=summary["start_ms"],
              end_ms=summary["end_ms"], summary_output=output,
              row_count=summary["row_count"], timestamp_min=summary["timestamp_min"],
              timestamp_max=summary["timestamp_max"], columns=summary["columns"])
    return output


def write_summary(summary: dict) -> Path:
    return atomic_write_json(summary_path(summary["log_id"], summary["start_ms"], summary["end_ms"]), summary)


def write_manifest(log_id, start_ms, end_ms, segments: list[Segment], plan: CoveragePlan, uncached) -> Path:
    """A small JSON naming every part file of the window: the window as one dataset."""
    files = segment_files(segments)
    doc = {
        "log_id": log_id,
        "start_ms": start_ms,
        "end_ms": end_ms,
        "decision": plan.decision,
        "segments": [s.as_dict() for s in segments],
        "files": files,
        "uncached_ranges": uncached,
        "duckdb_sql": "SELECT * FROM read_parquet($files) WHERE timestamp >= $start_ms AND timestamp < $end_ms",
    }
    return atomic_write_json(manifest_path(log_id, start_ms, end_ms), doc)


def fetch_request(log_id: str, start, end, source: LogSource, bypass_cache: bool | None = None,
                  logger=None, **kwargs) -> dict:
    """The job's and the CLI's entry point: ISO (or epoch-ms) bounds -> the result as a dict."""
    from assets_pkg.logs.planner import parse_time_ms

    result = fetch_window(log_id, parse_time_ms(start), parse_time_ms(end), source,
                          bypass_cache=bypass_cache, logger=logger, **kwargs)
    return result.to_dict()
