"""Logs checks.

In a run, ``logs/log_events`` evaluates its four checks in its own op (a partitioned asset
check would otherwise load every partition), through the pure functions of
:mod:`assets_pkg.logs.quality`. :func:`evaluate_materialized` evaluates the same checks on
what is cached now, for ``assets-pkg check``.
"""

from assets_pkg.checking import ERROR, CheckOutcome
from assets_pkg.logs.quality import (
    EVENTS_ASSET,
    no_overlapping_segments,
    segments_readable,
    unique_event_ids,
    window_covered,
)
from assets_pkg.logs.store import LogCacheError, SegmentStore


def evaluate_materialized(store: SegmentStore | None = None) -> list[CheckOutcome]:
    """Every cached log: no overlaps, readable segments, unique ids, and coverage of the span
    from its first to its last cached millisecond (a hole in between fails window_covered).
    A log folder that cannot be listed (a stray file, a malformed folder name) is one failed
    ``segments_readable`` naming the entry, and the other logs are still checked."""
    store = store or SegmentStore()
    outcomes: list[CheckOutcome] = []
    for log_id in store.log_ids():
        try:
            segments = store.segments(log_id, check_overlaps=False)
        except LogCacheError as exc:
            outcomes.append(CheckOutcome(EVENTS_ASSET, "segments_readable", False, ERROR, f"{log_id}: {exc}",
                                         {"log_id": log_id}))
            continue
        outcomes.append(no_overlapping_segments(store, log_id))
        if not segments:
            continue
        start_ms, end_ms = segments[0].start_ms, max(s.end_ms for s in segments)
        outcomes.append(segments_readable(store, log_id, start_ms, end_ms))
        outcomes.append(window_covered(store, log_id, start_ms, end_ms))
        outcomes.append(unique_event_ids(store, log_id, start_ms, end_ms))
    return outcomes



def multi_object_folders(store: SegmentStore | None = None) -> list:
    """Every segment folder (``from=/to=``) in an object-store cache, committed or not, for
    `assets-pkg check` to verify and to report uncommitted uploads in; [] for a local cache
    (a segment is published by one rename there)."""
    store = store or SegmentStore()
    if not store.remote:
        return []
    folders = []
    for log_id in store.log_ids():
        try:
            folders.extend(folder for folder, _ in store.remote_folders(log_id).values())
        except LogCacheError:
            continue  # a malformed entry: evaluate_materialized reports it by name
    return folders
