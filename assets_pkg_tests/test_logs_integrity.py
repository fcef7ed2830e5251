"""Cache integrity (issue 14): checks that decode every page, segments that prove their
window, a full disk that names the path, stray files and bad log ids."""

import os
import subprocess
import sys
import textwrap

import pyarrow.parquet as pq
import pytest

from assets_pkg.cli import main as cli_main
from assets_pkg.logs.checks import evaluate_materialized
from assets_pkg.logs.fetch import fetch_window
from assets_pkg.logs.quality import segments_readable
from assets_pkg.logs.sources import HttpLogSource
from assets_pkg.logs.store import (
    MANIFEST_NAME,
    CacheWriteError,
    CorruptSegmentError,
    SegmentStore,
    read_segment_manifest,
    segment_dir,
    verify_segment,
)
from assets_pkg.logs.summary import SummaryError
from assets_pkg_tests.fake_log_api import FakeLogApi, make_events

FAR_FUTURE = 10**13
EVENTS = make_events("app", 0, 3_000_000, 100)  # 30_000 events


@pytest.fixture
def api():
    with FakeLogApi({"app": EVENTS, "web": make_events("web", 0, 3_000_000, 1000)}) as server:
        yield server


def fetch(api, start, end, log_id="app", **kw):
    kw.setdefault("now_ms", FAR_FUTURE)
    return fetch_window(log_id, start, end, HttpLogSource(api.url, page_limit=1000), **kw)


def cache(data_root) -> SegmentStore:
    return SegmentStore(data_root / "cache" / "logs")


def flip(part, offset, count=4):
    data = bytearray(part.read_bytes())
    for i in range(offset, offset + count):
        data[i] ^= 0xFF
    part.write_bytes(bytes(data))


def column_pages(part, name):
    """Offset and size of a column chunk's pages (data, never the footer)."""
    row_group = pq.ParquetFile(part).metadata.row_group(0)
    col = next(row_group.column(i) for i in range(row_group.num_columns) if row_group.column(i).path_in_schema == name)
    return col.data_page_offset, col.total_compressed_size


def test_flipped_page_header_fails_the_check_and_the_fetch_naming_the_part(data_root, api, capsys):
    fetch(api, 0, 3_000_000)
    part = cache(data_root).segments("app")[0].parts[0]
    start, _ = column_pages(part, "level")
    flip(part, start)  # the data page's header: what DuckDB reports as "don't know what type"
    assert pq.ParquetFile(part).metadata.num_rows == 30_000  # the footer is intact

    outcome = segments_readable(cache(data_root), "app", 0, 3_000_000)
    assert not outcome.passed and str(part) in outcome.description
    assert cli_main(["check", "--group", "logs"]) == 1
    assert str(part) in capsys.readouterr().out

    with pytest.raises(SummaryError) as err:
        fetch(api, 0, 3_000_000)  # a hit: the summary scan reads the damaged page
    assert str(part) in str(err.value)


def test_flipped_bytes_inside_a_data_page_fail_the_deep_check(data_root, api):
    fetch(api, 0, 3_000_000)
    part = cache(data_root).segments("app")[0].parts[0]
    start, size = column_pages(part, "message")
    flip(part, start + size // 2)  # compressed payload: only the page checksum tells
    seg = cache(data_root).segments("app")[0]
    assert verify_segment(seg) == 30_000  # the cheap check (footers, manifest) cannot see it
    with pytest.raises(CorruptSegmentError, match="CRC") as err:
        verify_segment(seg, deep=True)
    assert str(part) in str(err.value)
    outcome = segments_readable(cache(data_root), "app", 0, 3_000_000)
    assert not outcome.passed and str(part) in outcome.description


def test_segment_records_its_window_rows_and_bounds(data_root, api):
    fetch(api, 1_000, 50_000, flush_rows=100)
    seg = cache(data_root).segments("app")[0]
    manifest = read_segment_manifest(seg)
    assert (manifest["start_ms"], manifest["end_ms"]) == (1_000, 50_000)
    assert manifest["rows"] == 490 and manifest["timestamp_min"] == 1_000 and manifest["timestamp_max"] == 49_900
    assert sorted(manifest["parts"]) == [p.name for p in seg.parts] and len(seg.parts) == 5
    assert verify_segment(seg, deep=True) == 490


def test_renamed_folder_claiming_a_wider_window_fails_loudly(data_root, api):
    fetch(api, 0, 1_000_000)
    log_dir = data_root / "cache" / "logs" / "app"
    wider = segment_dir(log_dir, 0, 3_000_000)
    os.rename(segment_dir(log_dir, 0, 1_000_000), wider)
    calls = len(api.requests)
    with pytest.raises(CorruptSegmentError, match=r"claims \[0, 3000000\).*\[0, 1000000\)") as err:
        fetch(api, 0, 3_000_000)  # was a silent "hit" with a third of the events
    assert str(wider) in str(err.value)
    assert len(api.requests) == calls  # nothing fetched on a cache that lies
    outcome = segments_readable(cache(data_root), "app", 0, 3_000_000)
    assert not outcome.passed and "claims" in outcome.description


def test_segment_without_manifest_still_reads_and_is_verified_by_its_data(data_root, api):
    fetch(api, 0, 1_000_000)
    log_dir = data_root / "cache" / "logs" / "app"
    (segment_dir(log_dir, 0, 1_000_000) / MANIFEST_NAME).unlink()  # as published by older code
    hit = fetch(api, 0, 1_000_000)
    assert hit.decision == "hit" and hit.summary["row_count"] == 10_000
    assert segments_readable(cache(data_root), "app", 0, 1_000_000).passed
    # renamed to a narrower window than its data: the deep check sees events outside it
    os.rename(segment_dir(log_dir, 0, 1_000_000), segment_dir(log_dir, 0, 500_000))
    outcome = segments_readable(cache(data_root), "app", 0, 500_000)
    assert not outcome.passed and "outside its folder's window" in outcome.description


def test_stray_file_in_a_log_folder_is_one_clear_finding(data_root, api, capsys):
    fetch(api, 0, 100_000)
    fetch(api, 0, 100_000, log_id="web")
    (data_root / "cache" / "logs" / "app" / "notes.txt").write_text("my notes")
    outcomes = evaluate_materialized(cache(data_root))
    bad = [o for o in outcomes if not o.passed]
    assert len(bad) == 1 and "notes.txt" in bad[0].description and bad[0].name == "segments_readable"
    assert any(o.passed and "web" in o.description for o in outcomes)  # the other log is still checked
    assert cli_main(["check", "--group", "logs"]) == 1
    out = capsys.readouterr().out
    assert "notes.txt" in out and "Traceback" not in out


def test_folders_that_are_not_log_ids_are_not_listed(data_root, api):
    fetch(api, 0, 100_000)
    for name in (".hidden", "...", ".lock", "app.."):
        (data_root / "cache" / "logs" / name).mkdir()
    assert cache(data_root).log_ids() == ["app"]


def test_long_log_id_is_refused_with_the_right_remedy(data_root, api, capsys):
    from assets_pkg.logs.cli import main as logs_main

    assert logs_main(["fetch", "--log-id", "a" * 300, "--start", "0", "--end", "1000"]) == 2
    err = capsys.readouterr().err
    assert "300 characters" in err and "at most 128" in err and "LOG_INGESTION_CACHE_DIR" not in err
    assert not (data_root / "cache" / "logs").exists()


FULL_DISK_SCRIPT = textwrap.dedent("""
    import resource, signal, sys
    from assets_pkg_tests.fake_log_api import FakeLogApi, make_events
    from assets_pkg.logs.fetch import fetch_window
    from assets_pkg.logs.sources import HttpLogSource
    from assets_pkg.io.atomic import atomic_write_bytes
    # A file size limit makes writes fail (EFBIG) the way a full disk does (ENOSPC): the OS
    # names no file either way.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
    try:
        atomic_write_bytes(sys.argv[1], b"x" * 50_000)
    except OSError as exc:
        print("ATOMIC", exc)
    with FakeLogApi({"app": make_events("app", 0, 2_000_000, 10)}) as api:
        try:
            fetch_window("app", 0, 2_000_000, HttpLogSource(api.url, page_limit=1000), now_ms=10**13)
        except Exception as exc:
            print("SEGMENT", type(exc).__name__, exc)
""")


def test_full_disk_errors_name_the_path(data_root):
    target = data_root / "exports" / "big.bin"
    proc = subprocess.run([sys.executable, "-c", FULL_DISK_SCRIPT, str(target)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": os.getcwd()})
    lines = {line.split(" ", 1)[0]: line for line in proc.stdout.splitlines()}
    assert "File too large" in lines["ATOMIC"] and str(target) in lines["ATOMIC"], proc.stdout + proc.stderr
    segment = lines["SEGMENT"]
    assert segment.startswith(f"SEGMENT {CacheWriteError.__name__}")
    assert "part-00000.parquet" in segment and "free space on the disk" in segment
    assert not target.exists()
    assert SegmentStore(data_root / "cache" / "logs").segments("app") == []  # nothing half-published
