"""A whole day through load -> resample -> merge: bad inputs and the JSON stage events."""

import json
import logging

import pytest

from assets_pkg.duck import connect
from assets_pkg.timeseries.catalog import parse_catalog
from assets_pkg.timeseries.load import TimeseriesInputError
from assets_pkg.timeseries.merge import merge_day
from assets_pkg.timeseries.resample import resample_day

CATALOG = """\
target_resolution: 1min
tolerance: 10s
max_reject_share: 0.3
datasets:
  fast:
    file: fast.csv
    time_column: ts
    value_columns: [v]
    resolution: 1s
    aggregation: sum
  slow:
    file: slow.csv
    time_column: ts
    timezone: Europe/Berlin
    value_columns: [w]
    resolution: 1min
    aggregation: max
"""


@pytest.fixture
def folder(tmp_path, data_root):
    (tmp_path / "fast.csv").write_text(
        "ts,v\n2024-01-01 00:00:01,1\n2024-01-01 00:00:02,2\n2024-01-01 00:00:02,3\n2024-01-01 00:01:00,oops\n"
        "2024-01-01 00:01:05,4\nbad time,5\n2024-01-02 00:00:00,6\n"
    )
    # naive Berlin times and aware UTC times mixed; 00:59:55 Berlin = 23:59:55 UTC the day before
    (tmp_path / "slow.csv").write_text(
        "ts,w\n2024-01-01 00:59:55,7\n2024-01-01 01:01:00,8\n2024-01-01T00:01:00Z,9\n2024-01-01T00:02:03Z,10\n"
    )
    (tmp_path / "datasets.yaml").write_text(CATALOG)
    return tmp_path


def catalog(folder, text=CATALOG):
    return parse_catalog(text, folder / "datasets.yaml")


def test_day_with_bad_rows_duplicates_and_mixed_zones(folder):
    con = connect()
    stacked, results = resample_day(con, catalog(folder), "2024-01-01")
    fast, slow = results
    assert fast.mode == "down" and fast.load.duplicates == 1 and fast.load.timestamp_rejects == 1
    assert fast.load.reader_rejects == 1  # "oops" in the value column
    assert slow.load.mixed_timezones and slow.load.aware_rows == 2 and slow.load.naive_rows == 2
    merged, stats = merge_day(con, catalog(folder), stacked, "2024-01-01")
    rows = [(r["bucket"].strftime("%H:%M"), r["fast__v"], r["slow__w"]) for r in merged.to_pylist()]
    # fast: 1+2+3 summed in 00:00 (the duplicate 00:00:02 too), 4 in 00:01.
    # slow: 00:59:55 Berlin = 23:59:55 UTC the day before, 5 s from 00:00 -> aligned into 00:00;
    # 01:01 Berlin and 00:01Z are the same instant: a duplicate, aggregated with max -> 9;
    # 00:02:03Z is 3 s from 00:02.
    assert slow.load.duplicates == 1
    assert rows == [("00:00", 6.0, 7.0), ("00:01", 4.0, 9.0), ("00:02", None, 10.0)]
    assert stats.unaligned_rows == {"fast": 0, "slow": 0}


def test_a_dataset_entirely_outside_the_day(folder):
    con = connect()
    stacked, results = resample_day(con, catalog(folder), "2024-01-05")
    assert stacked.num_rows == 0 and [r.rows_out for r in results] == [0, 0]
    merged, _ = merge_day(con, catalog(folder), stacked, "2024-01-05")
    assert merged.num_rows == 0


def test_reject_threshold_stops_the_day(folder):
    con = connect()
    with pytest.raises(TimeseriesInputError, match=r"dataset 'fast'.*rejected"):
        resample_day(con, catalog(folder, CATALOG.replace("max_reject_share: 0.3", "max_reject_share: 0.1")), "2024-01-01")


def test_missing_dataset_file_names_it(folder):
    (folder / "slow.csv").unlink()
    with pytest.raises(TimeseriesInputError, match=r"dataset 'slow': file .*slow.csv not found \(declared in datasets.yaml line 11\)"):
        resample_day(connect(), catalog(folder), "2024-01-01")


def test_stage_events_are_json_with_rows_seconds_and_memory(folder, caplog):
    logger = logging.getLogger("ts-day")
    with caplog.at_level(logging.INFO, logger="ts-day"):
        resample_day(connect(), catalog(folder), "2024-01-01", logger=logger)
    events = [json.loads(r.getMessage()) for r in caplog.records]
    finished = [e for e in events if e["event"] == "stage_finished"]
    assert [(e["stage"], e["dataset"]) for e in finished] == [
        ("timeseries_load", "fast"), ("timeseries_resample", "fast"),
        ("timeseries_load", "slow"), ("timeseries_resample", "slow"),
    ]
    for e in finished:
        assert e["rows"] >= 0 and e["seconds"] >= 0 and e["peak_rss_mb"] > 0 and e["day"] == "2024-01-01"
    assert any(e["event"] == "timeseries_mixed_timezones" and e["naive_rows"] == 2 for e in events)
