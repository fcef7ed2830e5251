"""Export round trip, progress events, analysis numbers and the checks on broken data."""

import datetime as dt
import gzip
import json
import logging

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets_pkg.timeseries import analysis as ana
from assets_pkg.timeseries.catalog import Catalog, DatasetSpec
from assets_pkg.timeseries.export import export_day

DAY = "2024-01-01"
UTC = dt.timezone.utc


def merged_table(n=1000, keys=True):
    base = dt.datetime(2024, 1, 1, tzinfo=UTC)
    cols = {"bucket": pa.array([base + dt.timedelta(minutes=i // 2) for i in range(n)], pa.timestamp("us", tz="UTC"))}
    if keys:
        cols["meter_id"] = pa.array(["m1" if i % 2 == 0 else "m2" for i in range(n)])
    cols["power__kw"] = pa.array([None if i % 7 == 0 else i * 0.1 + 1 / 3 for i in range(n)], pa.float64())
    cols["meters__reading"] = pa.array([1e6 + i * 1.234567891 for i in range(n)], pa.float64())
    return pa.table(cols)


@pytest.fixture
def merged_file(tmp_path):
    path = tmp_path / "warehouse" / f"{DAY}.parquet"
    path.parent.mkdir()
    pq.write_table(merged_table(), path)
    return path


def test_export_round_trip_parquet_and_gzip_csv(con, tmp_path, merged_file):
    out = tmp_path / "exports"
    files = export_day([merged_file], out, DAY, ("parquet", "csv"), "gzip", chunk_rows=128)
    assert sorted(p.name for p in out.iterdir()) == [f"{DAY}.csv.gz", f"{DAY}.parquet"]
    assert [(f.format, f.rows) for f in files] == [("parquet", 1000), ("csv", 1000)]
    expected = pq.read_table(merged_file).to_pandas()
    # DuckDB
    from_parquet = con.execute("SELECT * FROM read_parquet(?) ORDER BY bucket, meter_id", [str(out / f"{DAY}.parquet")]).df()
    from_csv = con.execute("SELECT * FROM read_csv(?, header = true) ORDER BY bucket, meter_id", [str(out / f"{DAY}.csv.gz")]).df()
    exp = expected.sort_values(["bucket", "meter_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(from_parquet.reset_index(drop=True), exp, check_dtype=False)
    pd.testing.assert_frame_equal(from_csv.reset_index(drop=True), exp, check_dtype=False)
    # pandas
    pq_pd = pd.read_parquet(out / f"{DAY}.parquet")
    csv_pd = pd.read_csv(out / f"{DAY}.csv.gz", compression="gzip", parse_dates=["bucket"])
    pd.testing.assert_frame_equal(pq_pd, expected)
    pd.testing.assert_frame_equal(csv_pd, expected, check_dtype=False)
    # the gzip is a standard gzip stream
    assert gzip.decompress((out / f"{DAY}.csv.gz").read_bytes()).startswith(b'"bucket","meter_id"')


def test_export_plain_csv_replaces_the_old_gzip(tmp_path, merged_file):
    out = tmp_path / "exports"
    export_day([merged_file], out, DAY, ("parquet", "csv"), "gzip")
    export_day([merged_file], out, DAY, ("csv",), "none")
    assert sorted(p.name for p in out.iterdir()) == [f"{DAY}.csv"]
    assert ana.count_file_rows(out / f"{DAY}.csv") == 1000


def test_empty_day_writes_nothing_and_removes_old_files(tmp_path, merged_file):
    out = tmp_path / "exports"
    export_day([merged_file], out, DAY)
    assert len(list(out.iterdir())) == 2
    assert export_day([], out, DAY) == []
    assert list(out.iterdir()) == []


def test_progress_events_have_rate_and_eta(tmp_path, merged_file, caplog):
    logger = logging.getLogger("ts-test")
    with caplog.at_level(logging.INFO, logger="ts-test"):
        export_day([merged_file], tmp_path / "x", DAY, ("parquet", "csv"), "gzip", logger=logger,
                   chunk_rows=100, progress_interval=0.0)
    events = [json.loads(r.getMessage()) for r in caplog.records]
    progress = [e for e in events if e["event"] == "export_progress"]
    assert len(progress) >= 20  # 10 chunks per format, each reported with interval 0
    last = [e for e in progress if e["done"]]
    assert {e["format"] for e in last} == {"parquet", "csv"}
    for e in last:
        assert e["rows_written"] == e["rows_total"] == 1000 and e["percent"] == 100.0 and e["eta_seconds"] == 0
    mid = progress[0]
    assert mid["rows_written"] == 100 and mid["eta_seconds"] is not None and mid["rows_per_second"] > 0


def test_no_temp_files_left_when_a_write_fails(tmp_path, merged_file, monkeypatch):
    out = tmp_path / "exports"
    import assets_pkg.timeseries.export as exp

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(exp.pacsv, "CSVWriter", boom)
    with pytest.raises(RuntimeError):
        export_day([merged_file], out, DAY, ("parquet", "csv"), "gzip")
    assert sorted(p.name for p in out.iterdir()) == [f"{DAY}.parquet"]  # parquet published; no csv, no temp


def test_analysis_numbers(con, tmp_path):
    path = tmp_path / f"{DAY}.parquet"
    pq.write_table(pa.table({
        "bucket": pa.array([dt.datetime(2024, 1, 1, 0, i, tzinfo=UTC) for i in range(4)], pa.timestamp("us", tz="UTC")),
        "a__x": [1.0, 2.0, 3.0, None],
        "a__y": [2.0, 4.0, 6.0, None],
        "b__z": [None, None, 5.0, 1.0],
    }), path)
    result = ana.analyse(con, path, DAY)
    assert result["rows"] == 4 and result["buckets"] == 4
    assert result["columns"]["a__x"] == {"count": 3, "null_share": 0.25, "mean": 2.0, "std": 1.0, "min": 1.0, "max": 3.0}
    assert result["columns"]["b__z"]["mean"] == 3.0 and result["columns"]["b__z"]["null_share"] == 0.5
    assert result["correlations"]["a__x|a__y"] == 1.0
    assert result["fill_share"] == {"a": 0.75, "b": 0.5}
    md = ana.markdown_table(result)
    assert "| a__x | 3 | 0.25 | 2 | 1 | 1 | 3 |" in md and "| a | 0.75 |" in md
    json.dumps(result)  # JSON-ready


def _cat(keys=()):
    spec = DatasetSpec(name="a", file="u", time_column="t", value_columns=("x",), resolution_us=60_000_000,
                       aggregation={"x": "mean"}, key_columns=tuple(keys))
    return Catalog(path="d.yaml", datasets=(spec,), target_resolution_us=3_600_000_000, coverage_threshold=0.5)


def _hours(hours, keys=None):
    cols = {"bucket": pa.array([dt.datetime(2024, 1, 1, h, tzinfo=UTC) for h in hours], pa.timestamp("us", tz="UTC"))}
    if keys is not None:
        cols["k"] = keys
    cols["a__x"] = [1.0] * len(hours)
    return pa.table(cols)


def test_unique_buckets_fails_on_duplicates(con):
    ok = ana.unique_buckets_outcome(con, _hours([0, 1, 2]), DAY)
    assert ok.passed
    bad = ana.unique_buckets_outcome(con, _hours([0, 1, 1]), DAY)
    assert not bad.passed and bad.severity == "ERROR" and bad.metadata["duplicate_groups"] == 1
    keyed = ana.unique_buckets_outcome(con, _hours([1, 1], keys=["p", "q"]), DAY, ("k",))
    assert keyed.passed


def test_coverage_warns_below_threshold(con):
    cat = _cat()
    full = ana.coverage_outcome(con, _hours(range(24)), cat, DAY)
    assert full.passed and full.metadata["coverage/a"] == 1.0
    low = ana.coverage_outcome(con, _hours(range(6)), cat, DAY)
    assert not low.passed and low.severity == "WARN" and low.metadata["coverage/a"] == 0.25
    assert ana.coverage_outcome(con, _hours(range(6)), cat, DAY, threshold=0.2).passed
    keyed = ana.coverage(con, _hours(list(range(24)) + [0], keys=["p"] * 24 + ["q"]), _cat(("k",)))
    assert keyed == {"a": 0.520833}  # 25 of 48 (bucket, key) slots


def test_export_matches_merged_fails_on_a_short_file(tmp_path, merged_file):
    files = export_day([merged_file], tmp_path / "x", DAY)
    exported = {f.path: ana.count_file_rows(f.path) for f in files}
    assert ana.export_matches_outcome(1000, exported, DAY).passed
    # truncate the csv: drop its last 10 lines
    csv_path = tmp_path / "x" / f"{DAY}.csv.gz"
    lines = gzip.decompress(csv_path.read_bytes()).splitlines(keepends=True)
    csv_path.write_bytes(gzip.compress(b"".join(lines[:-10])))
    exported = {f.path: ana.count_file_rows(f.path) for f in files}
    bad = ana.export_matches_outcome(1000, exported, DAY)
    assert not bad.passed and bad.severity == "ERROR" and "has 990 rows" in bad.description
    assert not ana.export_matches_outcome(5, {}, DAY).passed


def test_csv_quotes_keys_that_need_it(con, tmp_path):
    path = tmp_path / "m.parquet"
    table = pa.table({
        "bucket": pa.array([dt.datetime(2024, 1, 1, tzinfo=UTC)] * 3, pa.timestamp("us", tz="UTC")),
        "site": ["plain", 'a,b "c"', "line\nbreak"],
        "d__v": [1.5, None, -2.0],
    })
    pq.write_table(table, path)
    export_day([path], tmp_path / "x", DAY, ("csv",), "gzip")
    back = con.execute("SELECT * FROM read_csv(?, header = true) ORDER BY d__v", [str(tmp_path / "x" / f"{DAY}.csv.gz")]).fetchall()
    assert sorted(r[1] for r in back) == sorted(table.column("site").to_pylist())
    assert ana.count_file_rows(tmp_path / "x" / f"{DAY}.csv.gz") == 3  # the quoted line break is no row end
