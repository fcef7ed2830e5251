"""Cache behaviour against a real HTTP log API on 127.0.0.1 (counting requests by range)."""

import json
import threading
from collections import Counter

import pyarrow.parquet as pq
import pytest

from assets_pkg.logs.fetch import fetch_window
from assets_pkg.logs.sources import HttpLogSource, LogSourceError
from assets_pkg.logs.store import SegmentStore, find_overlaps
from assets_pkg_tests.fake_log_api import Fault, FakeLogApi, make_events

FAR_FUTURE = 10**13
EVENTS = make_events("app", 0, 100_000, 10)  # 10_000 events, one every 10 ms


@pytest.fixture
def api():
    with FakeLogApi({"app": EVENTS, "web": make_events("web", 0, 100_000, 100)}) as server:
        yield server


def source(api, **kw):
    kw.setdefault("page_limit", 1000)
    kw.setdefault("backoff_seconds", 0.001)
    kw.setdefault("max_backoff_seconds", 0.05)
    kw.setdefault("timeout_seconds", 5)
    return HttpLogSource(api.url, **kw)


def fetch(api, start, end, src=None, **kw):
    kw.setdefault("now_ms", FAR_FUTURE)
    return fetch_window("app", start, end, src or source(api), **kw)


def expected(start, end, events=EVENTS):
    inside = [e for e in events if start <= e["timestamp"] < end]
    return {
        "row_count": len(inside),
        "timestamp_min": min((e["timestamp"] for e in inside), default=None),
        "timestamp_max": max((e["timestamp"] for e in inside), default=None),
        "counts_by_level": dict(sorted(Counter(e["level"] for e in inside).items())),
    }


def picked(summary):
    return {k: summary[k] for k in ("row_count", "timestamp_min", "timestamp_max", "counts_by_level")}


def store(data_root):
    return SegmentStore(data_root / "cache" / "logs")


def test_miss_then_full_hit_makes_zero_calls(data_root, api):
    first = fetch(api, 0, 50_000)
    assert first.decision == "miss" and first.rows_processed == 5000
    assert api.ranges_requested("app") == [(0, 50_000)]
    before = len(api.requests)
    again = fetch(api, 10_000, 40_000)
    assert again.decision == "hit"
    assert len(api.requests) == before  # zero HTTP calls
    assert again.rows_processed == 0 and again.segments_written == []
    assert picked(again.summary) == expected(10_000, 40_000)


def test_partial_fetches_only_the_gaps_one_fetch_each(data_root, api):
    fetch(api, 20_000, 30_000)
    fetch(api, 50_000, 60_000)
    api.requests.clear()
    result = fetch(api, 0, 100_000)
    assert result.decision == "partial"
    assert api.ranges_requested("app") == [(0, 20_000), (30_000, 50_000), (60_000, 100_000)]
    assert result.cache_missing_ranges == [[0, 20_000], [30_000, 50_000], [60_000, 100_000]]
    assert result.cache_cached_ranges == [[20_000, 30_000], [50_000, 60_000]]
    assert len(result.segments_used) == 2 and len(result.segments_written) == 3
    # multi-segment summary is exact
    assert result.summary["segments"] == 5
    assert picked(result.summary) == expected(0, 100_000)
    assert result.rows_processed == 8000
    segs = store(data_root).segments("app")
    assert [s.window for s in segs] == [(0, 20_000), (20_000, 30_000), (30_000, 50_000), (50_000, 60_000), (60_000, 100_000)]
    assert not find_overlaps(segs)


def test_summary_across_segments_filters_to_window(data_root, api):
    fetch(api, 0, 30_000)
    fetch(api, 30_000, 70_000)
    result = fetch(api, 12_345, 65_432)
    assert result.decision == "hit"
    assert picked(result.summary) == expected(12_345, 65_432)
    assert result.summary["columns"] == ["timestamp", "event_id", "level", "message", "attributes"]
    assert result.summary["schema"]["timestamp"] == "int64"
    on_disk = json.loads(open(result.summary_output).read())
    assert on_disk["row_count"] == result.summary["row_count"]
    manifest = json.loads(open(result.output_file).read())
    assert len(manifest["segments"]) == 2


def test_many_flushes_make_many_parts_with_bounded_buffer(data_root, api, monkeypatch):
    import assets_pkg.logs.writer as writer_mod

    seen = []
    real_flush = writer_mod.PartWriter.flush

    def spy(self, allow_empty=False):
        seen.append(self._buffer_rows)
        return real_flush(self, allow_empty)

    monkeypatch.setattr(writer_mod.PartWriter, "flush", spy)
    result = fetch(api, 0, 100_000, flush_rows=333)
    parts = sorted((store(data_root).segments("app")[0].path).glob("part-*.parquet"))
    assert len(parts) == result.parts_written == 31  # ceil(10000 / 333)
    assert max(seen) <= 333
    assert [pq.ParquetFile(p).metadata.num_rows for p in parts[:-1]] == [333] * 30
    assert sum(pq.ParquetFile(p).metadata.num_rows for p in parts) == 10_000
    assert [p.name for p in parts[:2]] == ["part-00000.parquet", "part-00001.parquet"]


def test_flush_by_bytes(data_root, api):
    result = fetch(api, 0, 10_000, flush_rows=10**9, flush_bytes=5_000)
    assert result.parts_written > 3


def test_attributes_keep_other_fields_as_json(data_root, api):
    result = fetch(api, 0, 100)
    part = store(data_root).segments("app")[0].parts[0]
    row = pq.read_table(part).to_pylist()[1]
    assert row == {"timestamp": 10, "event_id": "app-10", "level": "WARN", "message": "event 1",
                   "attributes": "{\"host\":\"h1\"}"}
    assert result.summary["row_count"] == 10


def test_empty_window_is_cached_as_empty(data_root, api):
    result = fetch(api, 200_000, 300_000)
    assert result.summary["row_count"] == 0 and result.parts_written == 1
    api.requests.clear()
    assert fetch(api, 200_000, 300_000).decision == "hit" and api.requests == []


def test_bypass_reads_source_and_writes_nothing(data_root, api):
    result = fetch(api, 0, 50_000, bypass_cache=True)
    assert result.decision == "bypass"
    assert picked(result.summary) == expected(0, 50_000)
    assert result.segments_written == [] and result.output_file is None and result.summary_output is None
    assert not (data_root / "cache").exists() and not (data_root / "exports").exists()


def test_bypass_from_env(data_root, api, monkeypatch):
    monkeypatch.setenv("BYPASS_CACHE", "true")
    assert fetch(api, 0, 1000).decision == "bypass"
    assert not (data_root / "cache").exists()


def test_freshness_horizon_is_fetched_but_not_cached(data_root, api):
    now = 90_000 + 10 * 60_000  # horizon = 90_000 with the default 10 minutes
    result = fetch(api, 0, 100_000, now_ms=now)
    assert result.uncached_ranges == [[90_000, 100_000]]
    assert [s.window for s in store(data_root).segments("app")] == [(0, 90_000)]
    assert picked(result.summary) == expected(0, 100_000)  # the fresh events are in the summary
    again = fetch(api, 0, 100_000, now_ms=now + 10_000)  # horizon moved: only the gap is cached now
    assert again.decision == "partial"
    assert [s.window for s in store(data_root).segments("app")] == [(0, 90_000), (90_000, 100_000)]


def test_500_then_success(data_root, api):
    api.faults = [Fault(500), Fault(503)]
    result = fetch(api, 0, 5_000)
    assert result.summary["row_count"] == 500
    assert [r["status"] for r in api.requests[:3]] == [500, 503, 200]


def test_5xx_until_retries_run_out_fails_and_publishes_nothing(data_root, api):
    api.faults = [Fault(502)] * 3
    with pytest.raises(LogSourceError, match="giving up after 2 retries"):
        fetch(api, 0, 5_000, src=source(api, max_retries=2))
    assert store(data_root).segments("app") == []


def test_429_honours_retry_after(data_root, api):
    sleeps = []
    api.faults = [Fault(429, headers={"Retry-After": "0.2"})]
    src = source(api, sleep=sleeps.append, max_backoff_seconds=5)
    result = fetch(api, 0, 5_000, src=src)
    assert result.summary["row_count"] == 500
    assert sleeps == [0.2]  # the server's Retry-After, not the 1 ms backoff


def test_timeout_is_retried_then_fails(data_root, api):
    api.faults = [Fault(200, delay_seconds=0.6)]
    result = fetch(api, 0, 1_000, src=source(api, timeout_seconds=0.2))
    assert result.summary["row_count"] == 100
    api.faults = [Fault(200, delay_seconds=0.6)] * 2
    with pytest.raises(LogSourceError, match="timeout"):
        fetch(api, 5_000, 6_000, src=source(api, timeout_seconds=0.2, max_retries=1))


def test_repeated_token_is_refused(data_root, api):
    api.repeat_token = True
    with pytest.raises(LogSourceError, match="twice"):
        fetch(api, 0, 1_000)
    assert len(api.requests) == 2
    assert store(data_root).segments("app") == []


def test_empty_pages_with_token_keep_paging(data_root, api):
    api.empty_pages = True
    result = fetch(api, 0, 30_000)
    assert picked(result.summary) == expected(0, 30_000)
    assert sum(1 for r in api.requests if r["page_token"] and r["page_token"].startswith("e")) >= 2


def test_401_fails_with_a_clear_message_and_bearer_is_sent(data_root, api):
    api.token = "s3cret"
    with pytest.raises(LogSourceError, match="401.*LOG_API_TOKEN"):
        fetch(api, 0, 1_000)
    assert len(api.requests) == 1  # not retried
    result = fetch(api, 0, 1_000, src=source(api, token="s3cret"))
    assert result.summary["row_count"] == 100
    assert api.requests[-1]["authorization"] == "Bearer s3cret"


def test_other_4xx_is_not_retried(data_root, api):
    api.faults = [Fault(404)]
    with pytest.raises(LogSourceError, match="HTTP 404"):
        fetch(api, 0, 1_000)
    assert len(api.requests) == 1


def test_duplicate_event_ids_are_dropped(data_root):
    events = make_events("app", 0, 1000, 10)
    dupes = events + [dict(e, message="again") for e in events[:20]]
    with FakeLogApi({"app": dupes}, max_limit=7) as server:
        result = fetch_window("app", 0, 1000, source(server, page_limit=7), now_ms=FAR_FUTURE)
    assert result.summary["row_count"] == 100


def test_duplicates_across_page_boundaries_with_equal_timestamps(data_root):
    # several events share a timestamp; the page boundary falls between repeats of them
    events = [{"timestamp": 100 + i // 4, "event_id": f"e{i}", "level": "INFO", "message": "m"} for i in range(40)]
    repeats = [dict(e) for e in events[3:9]]
    with FakeLogApi({"app": events + repeats}, max_limit=5) as server:
        result = fetch_window("app", 0, 1000, source(server, page_limit=5), now_ms=FAR_FUTURE)
    assert result.summary["row_count"] == 40


def test_events_out_of_order_fail_loudly(data_root):
    events = make_events("app", 0, 1000, 10)
    events[10], events[20] = events[20], events[10]
    with FakeLogApi({"app": events}, keep_order=True) as server:
        with pytest.raises(LogSourceError, match="out of order"):
            fetch_window("app", 0, 1000, source(server), now_ms=FAR_FUTURE)
    assert store(data_root).segments("app") == []


def test_two_concurrent_runs_on_overlapping_windows(data_root, api):
    results, errors = {}, []

    def run(name, start, end):
        try:
            results[name] = fetch(api, start, end)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=("a", 0, 60_000)), threading.Thread(target=run, args=("b", 30_000, 100_000))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    segs = store(data_root).segments("app")  # raises on overlap
    assert not find_overlaps(segs)
    windows = [s.window for s in segs]
    assert windows in ([(0, 60_000), (60_000, 100_000)], [(0, 30_000), (30_000, 100_000)])
    decisions = sorted(r.decision for r in results.values())
    assert decisions == ["miss", "partial"]  # the second re-planned under the lock
    # every event fetched exactly once in total
    assert sum(r.rows_processed for r in results.values()) == 10_000
    assert picked(results["a"].summary) == expected(0, 60_000)
    assert picked(results["b"].summary) == expected(30_000, 100_000)


def test_error_events_for_source_failures(data_root, api, caplog):
    caplog.set_level("INFO", logger="assets_pkg")
    api.faults = [Fault(500)] * 2
    with pytest.raises(LogSourceError):
        fetch(api, 0, 1_000, src=source(api, max_retries=1))
    errors = [json.loads(r.getMessage())["event"] for r in caplog.records if r.levelname == "ERROR"]
    assert "fetch_failed" in errors and "fetch_subrange_failed" in errors
