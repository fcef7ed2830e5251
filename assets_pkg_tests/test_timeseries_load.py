"""Loading a day's window: the bad inputs of the issue, through the streaming reader."""

import datetime as dt
import gzip

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets_pkg.timeseries.catalog import DatasetSpec
from assets_pkg.timeseries.load import TimeseriesInputError, load_window
from assets_pkg.timeseries.resample import day_bounds

START, END = day_bounds("2024-01-01")


def spec(path, tz="UTC", keys=(), time_column="ts"):
    return DatasetSpec(
        name="d", file=path, time_column=time_column, value_columns=("v",), resolution_us=1_000_000,
        aggregation={"v": "mean"}, timezone=tz, key_columns=tuple(keys), line=7,
    )


def window(con, table="w"):
    return con.execute(f"SELECT strftime(ts, '%Y-%m-%d %H:%M:%S'), v FROM {table} ORDER BY ts, __row").fetchall()


def test_csv_window_only_keeps_the_day(con, tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("ts,v\n2023-12-31 23:59:59,0\n2024-01-01 00:00:00,1\n2024-01-01 23:59:59,2\n2024-01-02 00:00:00,3\n")
    stats = load_window(con, spec(path), START, END, "w")
    assert window(con) == [("2024-01-01 00:00:00", 1.0), ("2024-01-01 23:59:59", 2.0)]
    assert stats.rows_scanned == 4 and stats.rows_in_window == 2 and stats.total_rejects == 0


def test_gzip_csv(con, tmp_path):
    path = tmp_path / "d.csv.gz"
    path.write_bytes(gzip.compress(b"ts,v\n2024-01-01 00:00:05,1.5\n"))
    load_window(con, spec(path), START, END, "w")
    assert window(con) == [("2024-01-01 00:00:05", 1.5)]


def test_dataset_entirely_outside_the_day(con, tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("ts,v\n2023-06-01 00:00:00,1\n2023-06-02 00:00:00,2\n")
    stats = load_window(con, spec(path), START, END, "w")
    assert window(con) == [] and stats.rows_scanned == 2 and stats.rows_in_window == 0


def test_missing_file_is_a_clear_error(con, tmp_path):
    with pytest.raises(TimeseriesInputError, match=r"dataset 'd': file .*nope.csv not found \(declared in datasets.yaml line 7\)"):
        load_window(con, spec(tmp_path / "nope.csv"), START, END, "w")


def test_missing_time_column_csv(con, tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("time,v\n2024-01-01 00:00:00,1\n")
    with pytest.raises(TimeseriesInputError, match=r"dataset 'd'.*ts"):
        load_window(con, spec(path), START, END, "w")


def test_missing_time_column_parquet(con, tmp_path):
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"time": [dt.datetime(2024, 1, 1)], "v": [1.0]}), path)
    with pytest.raises(TimeseriesInputError, match=r"column\(s\) \['ts'\] not in"):
        load_window(con, spec(path), START, END, "w")


def test_unparseable_timestamps_are_rejects(con, tmp_path):
    lines = ["ts,v"] + [f"2024-01-01 00:00:{i:02d},{i}" for i in range(40)] + ["not a time,1", ",2"]
    path = tmp_path / "d.csv"
    path.write_text("\n".join(lines) + "\n")
    stats = load_window(con, spec(path), START, END, "w", max_reject_share=0.1)
    assert stats.timestamp_rejects == 2 and stats.rows_in_window == 40
    rejects = stats.rejects_table().to_pylist()
    assert [(r["record"], r["error"], r["raw"]) for r in rejects] == [
        (41, "unparseable timestamp", "not a time"), (42, "empty timestamp", None)
    ]


def test_unparseable_timestamps_over_the_threshold_fail(con, tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("ts,v\n2024-01-01 00:00:00,1\nyesterday,2\nsoon,3\n")
    with pytest.raises(TimeseriesInputError, match=r"2 of 3 rows .* rejected .*max_reject_share 5.0%.*record 2: unparseable timestamp"):
        load_window(con, spec(path), START, END, "w", max_reject_share=0.05)


def test_text_in_a_value_column_is_rejected_by_the_reader(con, tmp_path):
    lines = ["ts,v"] + [f"2024-01-01 00:01:{i:02d},{i}" for i in range(30)] + ["2024-01-01 00:02:00,abc"]
    path = tmp_path / "d.csv"
    path.write_text("\n".join(lines) + "\n")
    stats = load_window(con, spec(path), START, END, "w", max_reject_share=0.1)
    assert stats.reader_rejects == 1 and stats.rows_in_window == 30
    rej = stats.rejects_table().to_pylist()
    assert len(rej) == 1 and rej[0]["line"] == 32 and "abc" in (rej[0]["raw"] or "")


def test_text_in_a_parquet_value_column(con, tmp_path):
    path = tmp_path / "d.parquet"
    ts = [dt.datetime(2024, 1, 1, 0, 0, i) for i in range(3)]
    pq.write_table(pa.table({"ts": ts, "v": ["1.5", "oops", None]}), path)
    stats = load_window(con, spec(path), START, END, "w", max_reject_share=0.5)
    assert stats.value_rejects == 1
    assert window(con) == [("2024-01-01 00:00:00", 1.5), ("2024-01-01 00:00:02", None)]


def test_naive_and_aware_timestamps_mixed_are_normalized_to_utc(con, tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(
        "ts,v\n2024-01-01 01:00:00,1\n2024-01-01T02:00:00+01:00,2\n2024-01-01T01:30:00Z,3\n2024-01-01 03:00:00-00:30,4\n"
    )
    stats = load_window(con, spec(path, tz="Europe/Berlin"), START, END, "w")
    # naive 01:00 Berlin = 00:00 UTC; +01:00 02:00 = 01:00 UTC; Z kept; -00:30 03:00 = 03:30 UTC
    assert window(con) == [
        ("2024-01-01 00:00:00", 1.0), ("2024-01-01 01:00:00", 2.0), ("2024-01-01 01:30:00", 3.0), ("2024-01-01 03:30:00", 4.0)
    ]
    assert stats.aware_rows == 3 and stats.naive_rows == 1 and stats.mixed_timezones


def test_parquet_naive_timestamps_use_the_dataset_zone_and_window_pushdown(con, tmp_path):
    path = tmp_path / "d.parquet"
    ts = [dt.datetime(2023, 12, 1), dt.datetime(2024, 1, 1, 1, 0), dt.datetime(2024, 3, 1)]
    pq.write_table(pa.table({"ts": pa.array(ts, pa.timestamp("ms")), "v": [0.0, 1.0, 2.0]}), path, row_group_size=1)
    stats = load_window(con, spec(path, tz="Europe/Berlin"), START, END, "w")
    assert window(con) == [("2024-01-01 00:00:00", 1.0)]
    assert stats.rows_scanned == 1  # the other row groups were skipped by their statistics


def test_parquet_tz_aware_column(con, tmp_path):
    path = tmp_path / "d.parquet"
    ts = pa.array([dt.datetime(2024, 1, 1, 5, tzinfo=dt.timezone.utc)], pa.timestamp("us", tz="America/New_York"))
    pq.write_table(pa.table({"ts": ts, "v": [1.0]}), path)
    stats = load_window(con, spec(path, tz="Asia/Tokyo"), START, END, "w")
    assert window(con) == [("2024-01-01 05:00:00", 1.0)] and stats.aware_rows == 1


def test_duplicate_timestamps_are_counted(con, tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("ts,k,v\n2024-01-01 00:00:00,a,1\n2024-01-01 00:00:00,a,2\n2024-01-01 00:00:00,a,3\n2024-01-01 00:00:00,b,4\n")
    stats = load_window(con, spec(path, keys=("k",)), START, END, "w")
    assert stats.duplicates == 2


def test_missing_key_is_a_reject(con, tmp_path):
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"ts": [dt.datetime(2024, 1, 1)] * 2, "k": ["a", None], "v": [1.0, 2.0]}), path)
    stats = load_window(con, spec(path, keys=("k",)), START, END, "w", max_reject_share=0.5)
    assert stats.key_rejects == 1 and stats.rows_in_window == 1
