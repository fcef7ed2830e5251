"""The logs checks as pure functions returning :class:`CheckOutcome` (no dagster import)."""

import duckdb

from assets_pkg.checking import ERROR, WARN, CheckOutcome, limited
from assets_pkg.logs.planner import plan_coverage, ranges_json
from assets_pkg.logs.store import SegmentStore, find_overlaps, verify_segment
from assets_pkg.logs.summary import files_connection, segment_files

EVENTS_ASSET = "logs/log_events"


def no_overlapping_segments(store: SegmentStore, log_id: str) -> CheckOutcome:
    segments = store.segments(log_id, check_overlaps=False)
    pairs = find_overlaps(segments)
    return CheckOutcome(
        EVENTS_ASSET, "no_overlapping_segments", not pairs, ERROR,
        f"{len(pairs)} overlapping segment pair(s) in {len(segments)} segments of {log_id}" if pairs
        else f"{len(segments)} segments of {log_id}, none overlapping",
        {"segments": len(segments), "overlapping_pairs": len(pairs),
         "examples": limited(f"{a.path} <> {b.path}" for a, b in pairs)},
    )


def segments_readable(store: SegmentStore, log_id: str, start_ms: int, end_ms: int) -> CheckOutcome:
    segments = [s for s in store.segments(log_id, check_overlaps=False) if s.intersects(start_ms, end_ms)]
    bad, rows = [], 0
    for seg in segments:
        try:
            rows += verify_segment(seg, deep=True)
        except Exception as exc:
            bad.append(str(exc))
    return CheckOutcome(
        EVENTS_ASSET, "segments_readable", not bad, ERROR,
        f"{len(bad)} unreadable segment(s): {bad[0]}" if bad else f"{len(segments)} segment(s) readable, {rows} rows",
        {"segments": len(segments), "unreadable": len(bad), "errors": limited(bad, 5)},
    )


def window_covered(store: SegmentStore, log_id: str, start_ms: int, end_ms: int) -> CheckOutcome:
    segments = store.segments(log_id, check_overlaps=False)
    plan = plan_coverage(start_ms, end_ms, [s.window for s in segments])
    return CheckOutcome(
        EVENTS_ASSET, "window_covered", not plan.missing, ERROR,
        f"missing {ranges_json(plan.missing)} of [{start_ms}, {end_ms})" if plan.missing
        else f"[{start_ms}, {end_ms}) fully cached",
        {"missing_ranges": ranges_json(plan.missing), "missing_ms": plan.missing_ms},
    )


def unique_event_ids(store: SegmentStore, log_id: str, start_ms: int, end_ms: int,
                     con: duckdb.DuckDBPyConnection | None = None) -> CheckOutcome:
    segments = [s for s in store.segments(log_id, check_overlaps=False) if s.intersects(start_ms, end_ms)]
    files = segment_files(segments)
    rows = dup = nulls = 0
    examples: list = []
    if files:
        own = con is None
        con = files_connection(files, con)
        try:
            rows, distinct, nulls = con.execute(
                "SELECT count(*), count(DISTINCT event_id), count(*) FILTER (WHERE event_id IS NULL) "
                "FROM read_parquet(?) WHERE timestamp >= ? AND timestamp < ?",
                [files, start_ms, end_ms],
            ).fetchall()[0]
            dup = rows - nulls - distinct
            if dup:
                examples = [r[0] for r in con.execute(
                    "SELECT event_id FROM read_parquet(?) WHERE timestamp >= ? AND timestamp < ? "
                    "AND event_id IS NOT NULL GROUP BY event_id HAVING count(*) > 1 ORDER BY event_id LIMIT 20",
                    [files, start_ms, end_ms],
                ).fetchall()]
        except duckdb.Error as exc:
            return CheckOutcome(EVENTS_ASSET, "unique_event_ids", False, WARN,
                                f"cannot read the segments of {log_id}: {str(exc)[:300]}", {"files": len(files)})
        finally:
            if own:
                con.close()
    return CheckOutcome(
        EVENTS_ASSET, "unique_event_ids", dup == 0 and nulls == 0, WARN,
        f"{dup} duplicate and {nulls} missing event_id(s) in {rows} events" if dup or nulls
        else f"{rows} events, event_ids unique",
        {"rows": rows, "duplicates": dup, "missing_ids": nulls, "examples": limited(examples)},
    )


def window_outcomes(store: SegmentStore, log_id: str, start_ms: int, end_ms: int) -> list[CheckOutcome]:
    return [
        no_overlapping_segments(store, log_id),
        segments_readable(store, log_id, start_ms, end_ms),
        window_covered(store, log_id, start_ms, end_ms),
        unique_event_ids(store, log_id, start_ms, end_ms),
    ]
