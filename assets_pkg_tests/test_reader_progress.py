"""StreamingReader: progress events, async iteration, rejects output."""

import asyncio
import gzip
import logging

import pyarrow as pa
import pyarrow.parquet as pq

from assets_pkg.reader import ProgressEvent, StreamingReader, format_progress


def big_csv(path, rows=200_000):
    path.write_text("id,v\n" + "".join(f"{i},{i % 97}\n" for i in range(rows)))
    return path


def test_progress_events_have_bytes_rate_and_eta(tmp_path):
    path = big_csv(tmp_path / "t.csv")
    events: list[ProgressEvent] = []
    reader = StreamingReader(path, memory_limit_mb=2, progress_interval=1e-6, progress_callback=events.append)
    total = sum(c.rows for c in reader)
    assert len(events) >= 3
    size = path.stat().st_size
    assert all(e.total_bytes == size for e in events)
    assert [e.bytes_read for e in events] == sorted(e.bytes_read for e in events)
    middle = events[0]
    assert 0 < middle.bytes_read < size and 0 < middle.percent < 100
    assert middle.rows > 0 and middle.rows_per_second > 0 and middle.eta_seconds is not None and middle.eta_seconds > 0
    last = events[-1]
    assert last.done and last.percent == 100.0 and last.rows == total and last.eta_seconds == 0.0


def test_progress_on_gzip_counts_compressed_bytes(tmp_path):
    raw = big_csv(tmp_path / "t.csv").read_bytes()
    (tmp_path / "t.csv.gz").write_bytes(gzip.compress(raw))
    events = []
    list(StreamingReader(tmp_path / "t.csv.gz", memory_limit_mb=2, progress_interval=1e-6, progress_callback=events.append))
    size = (tmp_path / "t.csv.gz").stat().st_size
    assert all(e.total_bytes == size and e.bytes_read <= size for e in events)
    assert events[0].bytes_read < size


def test_no_progress_events_unless_asked(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="assets_pkg.reader"):
        list(StreamingReader(big_csv(tmp_path / "t.csv", 1000)))
    assert caplog.records == []


def test_report_progress_without_callback_logs_when_not_a_tty(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="assets_pkg.reader"):
        list(StreamingReader(big_csv(tmp_path / "t.csv", 1000), report_progress=True))
    assert any("rows/s" in r.getMessage() and "100.0%" in r.getMessage() for r in caplog.records)


def test_format_progress_line():
    event = ProgressEvent(bytes_read=512 * 1024, total_bytes=1024 * 1024, rows=1234, rows_per_second=617.0,
                          eta_seconds=2.0, percent=50.0, path="/x/data.csv")
    assert format_progress(event) == "data.csv  50.0% 512.0 KiB / 1.0 MiB 1,234 rows 617 rows/s ETA 0:02"
    assert str(event) == format_progress(event)


def test_async_iteration_yields_same_chunks(tmp_path):
    path = big_csv(tmp_path / "t.csv", 10_000)

    async def collect():
        ids = []
        async for chunk in StreamingReader(path, chunk_size=3000):
            ids.extend(chunk.batch.column("id").to_pylist())
        return ids

    assert asyncio.run(collect()) == list(range(10_000))


def test_async_iteration_can_stop_early(tmp_path):
    path = big_csv(tmp_path / "t.csv", 10_000)

    async def first():
        async for chunk in StreamingReader(path, chunk_size=100):
            return chunk.rows

    assert asyncio.run(first()) == 100


def test_write_rejects_parquet_and_nothing_when_clean(tmp_path):
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3\n")
    reader = StreamingReader(tmp_path / "bad.csv", error_threshold=1)
    list(reader)
    out = reader.write_rejects(tmp_path / "out" / "rejects.parquet")
    table = pq.read_table(out)
    assert table.schema == pa.schema([("line", pa.int64()), ("error_type", pa.string()), ("error", pa.string()), ("raw", pa.string())])
    assert table.to_pylist() == [{"line": 3, "error_type": "ragged_row", "error": "expected 2 fields, found 1", "raw": "3"}]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["rejects.parquet"]

    (tmp_path / "good.csv").write_text("a\n1\n")
    clean = StreamingReader(tmp_path / "good.csv")
    list(clean)
    assert clean.write_rejects(tmp_path / "none.parquet") is None
    assert not (tmp_path / "none.parquet").exists()


def test_second_iteration_is_a_fresh_pass(tmp_path):
    (tmp_path / "t.csv").write_text("a,b\n1,2\n3\n")
    reader = StreamingReader(tmp_path / "t.csv", error_threshold=1)
    first = sum(c.rows for c in reader)
    second = sum(c.rows for c in reader)
    assert first == second == 1
    assert reader.rejects.num_rows == 1 and reader.stats.total_errors == 1
