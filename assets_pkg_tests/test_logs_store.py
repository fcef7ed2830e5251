"""Segment store: log_id validation, listing, overlap/corruption/schema errors, unwritable cache."""


import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets_pkg.logs.fetch import fetch_window
from assets_pkg.logs.sources import HttpLogSource
from assets_pkg.logs.store import (
    PART_SCHEMA,
    CacheWriteError,
    CorruptSegmentError,
    InvalidLogIdError,
    OverlappingSegmentsError,
    SegmentStore,
    cache_root,
    segment_dir,
    validate_log_id,
    verify_segment,
)
from assets_pkg.logs.summary import SummaryError, scan_segments
from assets_pkg_tests.fake_log_api import FakeLogApi, make_events

FAR_FUTURE = 10**13


def write_segment(root, log_id, start, end, rows=3, schema=PART_SCHEMA):
    folder = segment_dir(root / log_id, start, end)
    folder.mkdir(parents=True)
    if schema is PART_SCHEMA:
        table = pa.table({"timestamp": pa.array(range(start, start + rows), pa.int64()),
                          "event_id": [f"e{i}" for i in range(start, start + rows)],
                          "level": ["INFO"] * rows, "message": ["m"] * rows, "attributes": ["{}"] * rows},
                         schema=PART_SCHEMA)
    else:
        table = pa.table({"ts": pa.array(range(rows), pa.int64()), "text": ["x"] * rows})
    pq.write_table(table, folder / "part-00000.parquet")
    return folder


@pytest.mark.parametrize("bad", ["../x", "a/b", "/etc", "", ".", "..", "a b", "x\x00", None, 5,
                                 ".hidden", "app..", "...", ".lock", "..x", "a..b", "x" * 129, "x" * 300])
def test_bad_log_ids_are_refused(bad, tmp_path):
    with pytest.raises(InvalidLogIdError):
        validate_log_id(bad)
    with pytest.raises(InvalidLogIdError):
        SegmentStore(tmp_path).log_dir(bad)


def test_good_log_ids_stay_under_root(tmp_path):
    store = SegmentStore(tmp_path)
    for good in ["app", "web-1", "a.b_c", "_x", "x" * 128]:
        assert store.log_dir(good).parent == tmp_path.resolve()


def test_cache_root_default_and_env(data_root, monkeypatch, tmp_path):
    assert cache_root() == data_root.resolve() / "cache" / "logs"
    monkeypatch.setenv("LOG_INGESTION_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert cache_root() == (tmp_path / "elsewhere").resolve() / "logs"  # the setting names the cache root


def test_listing_sorted_and_ignores_temp_folders(tmp_path):
    write_segment(tmp_path, "app", 100, 200)
    write_segment(tmp_path, "app", 0, 100)
    (tmp_path / "app" / "from=200" / ".to=300.tmp-abc").mkdir(parents=True)  # a dead run's leftover
    segs = SegmentStore(tmp_path).segments("app")
    assert [s.window for s in segs] == [(0, 100), (100, 200)]
    assert SegmentStore(tmp_path).segments("other") == []


def test_overlapping_segments_fail_loudly(tmp_path):
    write_segment(tmp_path, "app", 0, 100)
    write_segment(tmp_path, "app", 50, 150)
    with pytest.raises(OverlappingSegmentsError, match=r"from=0.*from=50"):
        SegmentStore(tmp_path).segments("app")


def test_overlap_blocks_fetch(data_root):
    root = data_root / "cache" / "logs"
    write_segment(root, "app", 0, 100)
    write_segment(root, "app", 90, 150)
    with FakeLogApi({"app": []}) as api:
        with pytest.raises(OverlappingSegmentsError):
            fetch_window("app", 0, 200, HttpLogSource(api.url), now_ms=FAR_FUTURE)
        assert api.requests == []


def test_corrupt_part_names_path_and_remedy(data_root, caplog):
    root = data_root / "cache" / "logs"
    folder = write_segment(root, "app", 0, 100)
    (folder / "part-00000.parquet").write_bytes(b"PAR1 this is not parquet")
    seg = SegmentStore(root).segments("app")[0]
    with pytest.raises(CorruptSegmentError) as err:
        verify_segment(seg)
    assert str(folder / "part-00000.parquet") in str(err.value)
    assert "BYPASS_CACHE" in str(err.value) and "delete" in str(err.value)
    caplog.set_level("INFO", logger="assets_pkg")
    with FakeLogApi({"app": []}) as api:
        with pytest.raises(CorruptSegmentError, match="part-00000.parquet"):
            fetch_window("app", 0, 100, HttpLogSource(api.url), now_ms=FAR_FUTURE)
        assert api.requests == []
    assert any('"cache_read_failed"' in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)
    with pytest.raises(SummaryError, match="BYPASS_CACHE"):
        scan_segments([seg], 0, 100)


def test_part_with_another_schema_is_refused(tmp_path):
    write_segment(tmp_path, "app", 0, 100, schema="other")
    seg = SegmentStore(tmp_path).segments("app")[0]
    with pytest.raises(CorruptSegmentError, match=r"has schema \(ts int64, text string\)"):
        verify_segment(seg)


def test_segment_without_parts_is_damaged(tmp_path):
    segment_dir(tmp_path / "app", 0, 100).mkdir(parents=True)
    with pytest.raises(CorruptSegmentError, match="no part files"):
        verify_segment(SegmentStore(tmp_path).segments("app")[0])


def test_stray_entry_in_log_folder_is_reported(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "junk.txt").write_text("x")
    with pytest.raises(CorruptSegmentError, match="junk.txt"):
        SegmentStore(tmp_path).segments("app")


def test_unwritable_cache_folder(data_root, monkeypatch):
    # We run as root, so chmod would not stop writes: put a *file* where the cache folder must be.
    blocker = data_root / "not-a-folder"
    blocker.write_text("I am a file")
    monkeypatch.setenv("LOG_INGESTION_CACHE_DIR", str(blocker))
    with FakeLogApi({"app": make_events("app", 0, 100, 10)}) as api:
        with pytest.raises(CacheWriteError, match="LOG_INGESTION_CACHE_DIR"):
            fetch_window("app", 0, 100, HttpLogSource(api.url), now_ms=FAR_FUTURE)
        # the same run with BYPASS_CACHE works and writes nothing
        result = fetch_window("app", 0, 100, HttpLogSource(api.url), now_ms=FAR_FUTURE, bypass_cache=True)
    assert result.summary["row_count"] == 10
    assert blocker.read_text() == "I am a file"


def test_write_failure_mid_segment_publishes_nothing(data_root, monkeypatch, caplog):
    # A disk error while writing a part (simulated ENOSPC) -> CacheWriteError, ERROR event, no segment.
    import errno

    import assets_pkg.logs.writer as writer_mod

    calls = {"n": 0}
    real = writer_mod.pq.write_table

    def failing(table, path, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(table, path, **kw)

    monkeypatch.setattr(writer_mod.pq, "write_table", failing)
    caplog.set_level("INFO", logger="assets_pkg")
    with FakeLogApi({"app": make_events("app", 0, 100, 1)}) as api:
        with pytest.raises(CacheWriteError, match="No space left"):
            fetch_window("app", 0, 100, HttpLogSource(api.url), flush_rows=30, now_ms=FAR_FUTURE)
    assert SegmentStore(data_root / "cache" / "logs").segments("app") == []
    assert any('"cache_write_failed"' in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)
