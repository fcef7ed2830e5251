"""The local JSONL source (through the streaming reader), and killed / failing fetches."""

import gzip
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pyarrow as pa
import pytest

from assets_pkg.demo.logs import generate
from assets_pkg.logs.fetch import fetch_window
from assets_pkg.logs.planner import day_window
from assets_pkg.logs.sources import LocalLogSource, LogSource, LogSourceError
from assets_pkg.logs.store import SegmentStore
from assets_pkg.logs.writer import events_to_batch

FAR_FUTURE = 10**13
D0, D1 = day_window("2025-01-02")


@pytest.fixture
def inbox(data_root):
    folder = data_root / "inbox" / "logs"
    generate(folder, scale="test")
    return folder


def all_events(inbox, log_id):
    events = []
    for path in sorted((inbox / log_id).iterdir()):
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt") as fh:
            events.extend(json.loads(line) for line in fh if line.strip())
    return events


def test_local_source_reads_jsonl_and_gz_filtered_to_window(data_root, inbox):
    src = LocalLogSource(inbox)
    for log_id in ("app", "web"):  # app: .jsonl, web: .jsonl.gz
        batches = list(src.fetch(log_id, D0 + 1000, D1 - 1000))
        table = pa.Table.from_batches(batches)
        want = sorted(e["event_id"] for e in all_events(inbox, log_id) if D0 + 1000 <= e["timestamp"] < D1 - 1000)
        assert sorted(table.column("event_id").to_pylist()) == want and len(want) > 50
        stamps = table.column("timestamp").to_pylist()
        assert stamps == sorted(stamps)
        attrs = json.loads(table.column("attributes")[0].as_py())
        assert set(attrs) == {"host", "latency_ms"}


def test_local_fetch_partial_then_hit(data_root, inbox):
    src = LocalLogSource(inbox)
    first = fetch_window("app", D0 + 3_600_000, D0 + 7_200_000, src, now_ms=FAR_FUTURE)
    assert first.decision == "miss"
    day = fetch_window("app", D0, D1, src, now_ms=FAR_FUTURE)
    assert day.decision == "partial" and len(day.segments_written) == 2
    expected = sum(1 for e in all_events(inbox, "app") if D0 <= e["timestamp"] < D1)
    assert day.summary["row_count"] == expected
    assert day.rows_processed + first.rows_processed == expected
    calls = src.calls
    assert fetch_window("app", D0, D1, src, now_ms=FAR_FUTURE).decision == "hit" and src.calls == calls


def test_local_missing_log_folder_fails_loudly(data_root, inbox):
    with pytest.raises(LogSourceError, match="no folder"):
        fetch_window("nope", D0, D1, LocalLogSource(inbox), now_ms=FAR_FUTURE)
    assert SegmentStore().segments("nope") == []


def test_local_rejected_lines_fail_and_cache_nothing(data_root, inbox):
    with open(inbox / "app" / "2025-01-02.jsonl", "a") as fh:
        fh.write('{"timestamp": 1735790000000, "event_id": "x", "level": \n')
    with pytest.raises(LogSourceError, match="could not be read as events"):
        fetch_window("app", D0, D1, LocalLogSource(inbox), now_ms=FAR_FUTURE)
    assert SegmentStore().segments("app") == []


class FailingSource(LogSource):
    """Yields ``good`` batches of 10 events, then raises: a fetch dying mid-way."""

    name = "failing"

    def __init__(self, good: int):
        self.good = good

    def fetch(self, log_id, start_ms, end_ms):
        for i in range(self.good):
            yield events_to_batch([{"timestamp": start_ms + i * 10 + j, "event_id": f"{i}-{j}", "level": "INFO",
                                    "message": "m"} for j in range(10)])
        raise ConnectionError("source died")


def test_failure_after_flushes_publishes_nothing_and_next_run_fetches_the_gap(data_root, inbox):
    src = LocalLogSource(inbox)
    fetch_window("app", D0, D0 + 3_600_000, src, now_ms=FAR_FUTURE)
    with pytest.raises(ConnectionError):
        fetch_window("app", D0, D1, FailingSource(good=5), flush_rows=10, now_ms=FAR_FUTURE)
    store = SegmentStore()
    assert [s.window for s in store.segments("app")] == [(D0, D0 + 3_600_000)]
    leftovers = [p for p in (store.root / "app").rglob("*") if ".tmp-" in p.name]
    assert leftovers == []  # atomic_dir removed the temp folder on the exception
    again = fetch_window("app", D0, D1, src, now_ms=FAR_FUTURE)
    assert again.decision == "partial" and again.cache_missing_ranges == [[D0 + 3_600_000, D1]]
    assert [s.window for s in store.segments("app")] == [(D0, D0 + 3_600_000), (D0 + 3_600_000, D1)]


CHILD = textwrap.dedent(
    """
    import sys, time
    from assets_pkg.logs.fetch import fetch_window
    from assets_pkg.logs.sources import LogSource
    from assets_pkg.logs.writer import events_to_batch

    class Slow(LogSource):
        name = "slow"
        def fetch(self, log_id, start_ms, end_ms):
            for i in range(10_000):
                yield events_to_batch([{"timestamp": start_ms + i, "event_id": str(i), "level": "INFO", "message": "m"}])
                time.sleep(0.01)

    fetch_window("app", int(sys.argv[1]), int(sys.argv[2]), Slow(), flush_rows=5, now_ms=10**13)
    """
)


@pytest.mark.slow
def test_sigkill_mid_fetch_leaves_nothing_published(data_root, inbox):
    store = SegmentStore()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(D0), str(D1)], env=dict(os.environ))
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            parts = [p for p in (store.root / "app").rglob("part-*.parquet")] if (store.root / "app").exists() else []
            if len(parts) >= 3:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the child never flushed")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert all(".tmp-" in str(p.relative_to(store.root)) for p in parts)  # only inside a temp folder
    assert store.segments("app") == []  # nothing counts as cached
    result = fetch_window("app", D0, D1, LocalLogSource(inbox), now_ms=FAR_FUTURE)  # the lock was released by the kill
    assert result.decision == "miss" and [s.window for s in store.segments("app")] == [(D0, D1)]
    assert not [p for p in (store.root / "app").rglob("*") if ".tmp-" in p.name]  # stale temp cleaned under the lock
    assert result.summary["row_count"] == sum(1 for e in all_events(inbox, "app") if D0 <= e["timestamp"] < D1)


def test_cold_local_fetch_does_not_import_pandas(data_root, inbox):
    """pyarrow imports pandas (~0.3 s, ~40 MB of a 300 MB budget) the first time a Python
    value becomes an Arrow value; the reader's and the logs' hot paths never need one.
    Covers a window edge (the timestamp filter) and extra fields (attributes)."""
    script = textwrap.dedent(f"""
        import sys
        from assets_pkg.logs.fetch import fetch_window
        from assets_pkg.logs.sources import LocalLogSource
        r = fetch_window("app", {D0 + 3_600_000}, {D1 - 1000}, LocalLogSource(sys.argv[1]), now_ms={FAR_FUTURE})
        assert r.rows_processed > 0 and r.summary["row_count"] == r.rows_processed
        print("pandas" in sys.modules)
    """)
    proc = subprocess.run([sys.executable, "-c", script, str(inbox)], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "False"


def test_read_ahead_keeps_order_raises_in_place_and_stops_when_closed():
    import threading

    from assets_pkg.logs.sources import _read_ahead

    def items(fail_at=None, produced=None):
        for i in range(10):
            if i == fail_at:
                raise ValueError(f"boom at {i}")
            if produced is not None:
                produced.append(i)
            yield i

    assert list(_read_ahead(items(), depth=2, name="t")) == list(range(10))
    got = []
    with pytest.raises(ValueError, match="boom at 6"):
        for item in _read_ahead(items(fail_at=6), depth=2, name="t"):
            got.append(item)
    assert got == list(range(6))  # everything before the failure arrived, in order, first

    produced: list[int] = []
    stream = _read_ahead(items(produced=produced), depth=2, name="t-close")
    assert next(stream) == 0
    stream.close()  # stops the worker: it produced at most depth + 2 items, then ended
    assert len(produced) <= 4
    assert not any(t.name == "t-close" for t in threading.enumerate())
