"""The log cache's structured events: the names and exact fields alerts are built on, from real
fetches against a real HTTP log API (miss, partial, hit, fresh range, corrupt segment,
unwritable cache, failed summary); and the cache layout under LOG_INGESTION_CACHE_DIR/logs."""

import json
import logging
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from assets_pkg.logs.fetch import fetch_window, summary_path
from assets_pkg.logs.sources import HttpLogSource
from assets_pkg.logs.store import CacheWriteError, LegacyCacheLayoutError, SegmentStore, cache_root
from assets_pkg.logs.summary import SummaryError
from assets_pkg_tests.fake_log_api import FakeLogApi, make_events

FAR_FUTURE = 10**13
EVENTS = make_events("app", 0, 100_000, 10)  # one every 10 ms

WINDOW = {"log_id", "start_ms", "end_ms"}
SUBRANGE = {"log_id", "subrange"}
FIELDS = {
    "cache_scan_start": {"log_id", "cache_dir"},
    "cache_scan_complete": {"log_id", "cache_dir", "segment_count"},
    "cache_coverage_planned": WINDOW | {"decision", "missing_ranges", "cached_ranges", "uncached_ranges",
                                        "freshness_horizon_ms"},
    "cache_hit": WINDOW | {"missing_ms", "cached_ms", "segments_used"},
    "cache_partial": WINDOW | {"missing_ms", "cached_ms", "segments_used"},
    "cache_miss": WINDOW | {"missing_ms", "cached_ms", "segments_used"},
    "fetch_subrange_start": SUBRANGE | {"segment_dir"},
    "fetch_subrange_complete": SUBRANGE | {"duration_ms", "rows_fetched", "parts_written", "segment_dir"},
    "flush_start": SUBRANGE | {"part", "rows", "buffer_bytes"},
    "flush_complete": SUBRANGE | {"part", "rows", "bytes", "duration_ms", "path"},
    "parquet_summary_generated": WINDOW | {"summary_output", "row_count", "timestamp_min", "timestamp_max",
                                           "columns"},
    "cache_read_failed": {"log_id", "segment_dir", "error"},
    "cache_write_failed": SUBRANGE | {"segment_dir", "error"},
    "parquet_summary_failed": WINDOW | {"error"},
}
ERROR_EVENTS = {"cache_read_failed", "cache_write_failed", "parquet_summary_failed"}


class JsonLines(logging.Handler):
    """Collects the JSON lines the package logs, with their level."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[str, str]] = []

    def emit(self, record):
        self.lines.append((record.levelname, record.getMessage()))

    def events(self, name=None) -> list[dict]:
        found = [json.loads(text) for _, text in self.lines]
        return [e for e in found if name is None or e["event"] == name]

    def level_of(self, name) -> set[str]:
        return {level for level, text in self.lines if json.loads(text)["event"] == name}


@pytest.fixture
def logs():
    handler = JsonLines()
    logger = logging.getLogger("assets_pkg")
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old_level)


@pytest.fixture
def api():
    with FakeLogApi({"app": EVENTS}) as server:
        yield server


def fetch(api, start, end, **kw):
    kw.setdefault("now_ms", FAR_FUTURE)
    return fetch_window("app", start, end, HttpLogSource(api.url, page_limit=1000), **kw)


def assert_fields(handler: JsonLines, name: str) -> list[dict]:
    found = handler.events(name)
    assert found, f"no {name} event"
    for event in found:
        assert set(event) == {"event"} | FIELDS[name], (name, sorted(event))
    return found


def test_every_event_of_miss_partial_hit_and_fresh_range_has_its_exact_fields(data_root, api, logs):
    seg_root = data_root / "cache" / "logs" / "app"
    miss = fetch(api, 0, 20_000, flush_rows=1000)
    partial = fetch(api, 10_000, 30_000)
    hit = fetch(api, 0, 30_000)
    # now - 1 minute = 35_000: [30_000, 35_000) is cached, [35_000, 40_000) fetched but not cached
    fresh = fetch(api, 30_000, 40_000, now_ms=95_000, freshness_minutes=1)
    assert (miss.decision, partial.decision, hit.decision, fresh.decision) == ("miss", "partial", "hit", "miss")

    for name in set(FIELDS) - ERROR_EVENTS:
        assert_fields(logs, name)
        assert logs.level_of(name) == {"INFO"}
    assert not any(e["event"] in ERROR_EVENTS for e in logs.events())

    scans = logs.events("cache_scan_complete")
    assert [e["segment_count"] for e in scans] == [0, 1, 2, 2]
    assert {e["cache_dir"] for e in scans} == {str(seg_root)}
    assert [e["event"] for e in logs.events() if e["event"] in ("cache_hit", "cache_partial", "cache_miss")] == [
        "cache_miss", "cache_partial", "cache_hit", "cache_miss"]

    done = logs.events("fetch_subrange_complete")
    assert [(e["subrange"], e["rows_fetched"], e["parts_written"]) for e in done] == [
        ([0, 20_000], 2000, 2), ([20_000, 30_000], 1000, 1), ([30_000, 35_000], 500, 1), ([35_000, 40_000], 500, 0)]
    assert done[0]["segment_dir"] == str(seg_root / "from=0" / "to=20000")
    assert done[-1]["segment_dir"] is None  # not cached: nothing written
    assert all(isinstance(e["duration_ms"], int) and e["duration_ms"] >= 0 for e in done)
    starts = logs.events("fetch_subrange_start")
    assert [e["segment_dir"] for e in starts] == [e["segment_dir"] for e in done]

    flushes = logs.events("flush_complete")
    assert [(f["subrange"], f["part"], f["rows"]) for f in flushes[:2]] == [([0, 20_000], 0, 1000), ([0, 20_000], 1, 1000)]
    assert flushes[0]["path"] == str(seg_root / "from=0" / "to=20000" / "part-00000.parquet")  # as published

    summaries = logs.events("parquet_summary_generated")
    assert [s["row_count"] for s in summaries] == [2000, 2000, 3000, 1000]
    first = summaries[0]
    assert first["summary_output"] == str(summary_path("app", 0, 20_000)) == miss.summary_output
    assert json.loads(Path(first["summary_output"]).read_text())["row_count"] == 2000
    assert (first["timestamp_min"], first["timestamp_max"]) == (0, 19_990)
    assert first["columns"] == ["timestamp", "event_id", "level", "message", "attributes"]

    text = "\n".join(line for _, line in logs.lines)
    assert "event 1" not in text and '"h1"' not in text  # no event payloads in the logs


def test_corrupt_segment_logs_cache_read_failed(data_root, api, logs):
    fetch(api, 0, 10_000)
    part = data_root / "cache" / "logs" / "app" / "from=0" / "to=10000" / "part-00000.parquet"
    part.write_bytes(b"PAR1 not parquet")
    with pytest.raises(Exception, match="part-00000.parquet"):
        fetch(api, 0, 10_000)
    (event,) = assert_fields(logs, "cache_read_failed")
    assert logs.level_of("cache_read_failed") == {"ERROR"}
    assert event["segment_dir"] == str(part.parent)


def test_unwritable_cache_logs_cache_write_failed(data_root, api, logs, monkeypatch):
    blocker = data_root / "not-a-folder"  # we run as root: a file where the folder must be
    blocker.write_text("x")
    monkeypatch.setenv("LOG_INGESTION_CACHE_DIR", str(blocker))
    with pytest.raises(CacheWriteError, match="LOG_INGESTION_CACHE_DIR"):
        fetch(api, 0, 10_000)
    (event,) = assert_fields(logs, "cache_write_failed")
    assert logs.level_of("cache_write_failed") == {"ERROR"}
    assert event["segment_dir"] == str(blocker / "logs" / "app") and event["subrange"] == [0, 10_000]
    assert api.requests == []


def test_write_failure_mid_segment_logs_cache_write_failed(data_root, api, logs, monkeypatch):
    import errno

    import assets_pkg.logs.writer as writer_mod

    real = writer_mod.pq.write_table
    calls = []

    def failing(table, path, **kw):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(table, path, **kw)

    monkeypatch.setattr(writer_mod.pq, "write_table", failing)
    with pytest.raises(CacheWriteError, match="No space left"):
        fetch(api, 0, 10_000, flush_rows=300)
    (event,) = assert_fields(logs, "cache_write_failed")
    assert event["segment_dir"].endswith("from=0/to=10000") and "No space left" in event["error"]


def test_unreadable_page_logs_parquet_summary_failed(data_root, api, logs):
    fetch(api, 0, 10_000)
    part = data_root / "cache" / "logs" / "app" / "from=0" / "to=10000" / "part-00000.parquet"
    meta = pq.ParquetFile(part).metadata.row_group(0)
    level = next(meta.column(i) for i in range(meta.num_columns) if meta.column(i).path_in_schema == "level")
    data = bytearray(part.read_bytes())
    for i in range(level.data_page_offset, level.data_page_offset + 4):
        data[i] ^= 0xFF  # the page header: the footer (and the cheap check) stay intact
    part.write_bytes(bytes(data))
    with pytest.raises(SummaryError):
        fetch(api, 0, 10_000)
    (event,) = assert_fields(logs, "parquet_summary_failed")
    assert logs.level_of("parquet_summary_failed") == {"ERROR"}
    assert str(part) in event["error"]


def test_unwritable_summary_file_logs_parquet_summary_failed(data_root, api, logs):
    blocked = summary_path("app", 0, 10_000).parent
    blocked.parent.mkdir(parents=True)
    blocked.write_text("a file where the log's exports folder must be")
    with pytest.raises(OSError):
        fetch(api, 0, 10_000)
    (event,) = assert_fields(logs, "parquet_summary_failed")
    assert (event["start_ms"], event["end_ms"]) == (0, 10_000)
    assert not logs.events("parquet_summary_generated")


# --- layout and settings ---------------------------------------------------------------


def test_default_layout_is_data_cache_logs(data_root, api):
    assert cache_root() == data_root.resolve() / "cache" / "logs"
    fetch(api, 0, 10_000)
    assert (data_root / "cache" / "logs" / "app" / "from=0" / "to=10000" / "part-00000.parquet").is_file()


def test_cache_dir_setting_is_the_root_holding_logs(data_root, api, monkeypatch, tmp_path):
    root = tmp_path / "cache-root"
    monkeypatch.setenv("LOG_INGESTION_CACHE_DIR", str(root))
    assert cache_root() == root.resolve() / "logs"
    fetch(api, 0, 10_000)
    assert (root / "logs" / "app" / "from=0" / "to=10000" / "part-00000.parquet").is_file()
    assert not (root / "app").exists()


def test_segments_at_the_old_place_are_refused_with_the_fix(data_root, api, monkeypatch, tmp_path, logs):
    old_root = tmp_path / "old-cache"
    monkeypatch.setenv("LOG_INGESTION_CACHE_DIR", str(old_root))
    fetch(api, 0, 10_000)
    # the layout before this change: the log ids directly under LOG_INGESTION_CACHE_DIR
    (old_root / "logs" / "app").rename(old_root / "app")
    (old_root / "logs").rmdir()
    requests = len(api.requests)
    with pytest.raises(LegacyCacheLayoutError) as err:
        fetch(api, 0, 10_000)
    message = str(err.value)
    assert str(old_root / "app") in message and str(old_root / "logs" / "app") in message and "mv " in message
    assert len(api.requests) == requests and not (old_root / "logs").exists()  # nothing fetched or written
    with pytest.raises(LegacyCacheLayoutError):
        SegmentStore().segments("app")  # the checks and the summary asset refuse it too

    (old_root / "logs").mkdir()
    (old_root / "app").rename(old_root / "logs" / "app")  # the fix the message gives
    assert fetch(api, 0, 10_000).decision == "hit" and len(api.requests) == requests


def test_summary_json_can_be_turned_off(data_root, api, monkeypatch, logs):
    monkeypatch.setenv("LOG_SUMMARY_JSON", "false")
    result = fetch(api, 0, 10_000)
    assert result.summary_output is None and result.summary["row_count"] == 1000
    assert not summary_path("app", 0, 10_000).exists()
    assert result.output_file and Path(result.output_file).is_file()  # the window manifest stays
    (event,) = assert_fields(logs, "parquet_summary_generated")
    assert event["summary_output"] is None and event["row_count"] == 1000


def test_old_default_spelled_out_gets_the_setting_fix(data_root, api, monkeypatch, logs):
    fetch(api, 0, 10_000)  # cached at the default place, data/cache/logs/app
    monkeypatch.setenv("LOG_INGESTION_CACHE_DIR", str(data_root / "cache" / "logs"))  # the old default, explicit
    with pytest.raises(LegacyCacheLayoutError, match=f"LOG_INGESTION_CACHE_DIR={data_root.resolve() / 'cache'},"):
        fetch(api, 0, 10_000)
    monkeypatch.setenv("LOG_INGESTION_CACHE_DIR", str(data_root / "cache"))
    assert fetch(api, 0, 10_000).decision == "hit"
