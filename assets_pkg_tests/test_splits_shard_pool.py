"""ShardPool: Parquet shards on worker cursors, bounded read-ahead, results in shard order."""

import threading
import time
from pathlib import Path

import pytest

from assets_pkg.duck import connect
from assets_pkg.splits.discovery import Shard
from assets_pkg.splits.shard_pool import ShardPool


def shards(spec: str) -> list[Shard]:
    """'ppcp' -> parquet, parquet, csv, parquet shards numbered 1.."""
    fmt = {"p": "parquet", "c": "csv"}
    return [Shard(f"{i:05d}", i, Path(f"part-{i:05d}.{fmt[k]}"), fmt[k], False) for i, k in enumerate(spec, 1)]


class Recorder:
    """work(): records where each shard ran and how far ahead of the consumer it started."""

    def __init__(self, fail: str | None = None, seconds: float = 0.01):
        self.fail, self.seconds = fail, seconds
        self.lock = threading.Lock()
        self.started: list[str] = []
        self.taken = 0
        self.max_ahead = 0
        self.ran_on: dict[str, tuple[str, object]] = {}

    def __call__(self, cursor, shard: Shard) -> str:
        with self.lock:
            self.started.append(shard.key)
            self.max_ahead = max(self.max_ahead, len(self.started) - self.taken)
            self.ran_on[shard.key] = (threading.current_thread().name, cursor)
        cursor.execute("SELECT 42").fetchall()  # the cursor is a working connection
        time.sleep(self.seconds)
        if shard.key == self.fail:
            raise ValueError(f"bad shard {shard.key}")
        return f"result {shard.key}"


def test_results_come_in_shard_order_parquet_on_workers_text_on_the_caller():
    con = connect(threads=2)
    spec = shards("ppcpp")
    recorder = Recorder()
    results = list(ShardPool(con, spec, recorder))
    assert results == [f"result {s.key}" for s in spec]
    main = threading.current_thread().name
    assert recorder.ran_on["00003"] == (main, con)  # the csv shard: caller's thread and connection
    for key in ("00001", "00002", "00004", "00005"):
        thread, cursor = recorder.ran_on[key]
        assert thread.startswith("splits-shard") and cursor is not con


def test_read_ahead_is_bounded_and_stops_at_a_text_shard():
    con = connect(threads=2)
    spec = shards("pppppppcp")
    recorder = Recorder(seconds=0.002)
    pool = ShardPool(con, spec, recorder, workers=2, ahead=3)
    for shard in spec:
        if shard.key == "00008":  # the csv shard: nothing beyond it may have started
            assert "00009" not in recorder.started
        pool.take(shard)
        recorder.taken += 1
        time.sleep(0.02)  # a slow consumer: the workers run as far ahead as allowed
    # the shard being taken plus `ahead` more
    assert recorder.max_ahead <= 4 and recorder.max_ahead >= 3
    assert sorted(recorder.started) == [s.key for s in spec]


def test_one_thread_runs_everything_on_the_caller():
    con = connect(threads=1)
    recorder = Recorder()
    assert list(ShardPool(con, shards("ppp"), recorder)) == ["result 00001", "result 00002", "result 00003"]
    assert {cursor for _, cursor in recorder.ran_on.values()} == {con}


def test_an_error_surfaces_at_its_shard_and_later_shards_do_not_start():
    con = connect(threads=2)
    spec = shards("pppppppp")
    recorder = Recorder(fail="00002", seconds=0.05)
    pool = ShardPool(con, spec, recorder, workers=2, ahead=2)
    assert pool.take(spec[0]) == "result 00001"
    with pytest.raises(ValueError, match="bad shard 00002"):
        pool.take(spec[1])
    started = set(recorder.started)
    time.sleep(0.2)
    assert set(recorder.started) == started  # nothing new started after the failure
    assert len(started) <= 5


def test_taking_out_of_order_still_gives_each_shard_its_own_result():
    con = connect(threads=2)
    spec = shards("pppp")
    recorder = Recorder()
    pool = ShardPool(con, spec, recorder)
    assert [pool.take(spec[i]) for i in (2, 0, 3, 1)] == ["result 00003", "result 00001", "result 00004", "result 00002"]


def test_one_thread_each_while_side_by_side_and_restored_after_the_last_shard_or_an_error():
    con = connect(threads=2)
    seen = []

    def work(cursor, shard):
        seen.append(cursor.execute("SELECT current_setting('threads')").fetchall()[0][0])
        if shard.key == "00004":
            raise ValueError("bad shard 00004")
        return shard.key

    assert list(ShardPool(con, shards("ppp"), work, one_thread_each=True)) == ["00001", "00002", "00003"]
    assert set(seen) == {1} and con.execute("SELECT current_setting('threads')").fetchall()[0][0] == 2
    with pytest.raises(ValueError, match="bad shard 00004"):
        list(ShardPool(con, shards("pppp"), work, one_thread_each=True))
    assert con.execute("SELECT current_setting('threads')").fetchall()[0][0] == 2
    seen.clear()
    assert list(ShardPool(con, shards("p"), work, one_thread_each=True)) == ["00001"]  # alone: all threads
    assert seen == [2]
