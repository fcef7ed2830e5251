"""Merging resampled datasets: tolerance, keys, outer and inner joins."""

import datetime as dt

import pyarrow as pa

from assets_pkg.timeseries.catalog import Catalog, DatasetSpec
from assets_pkg.timeseries.merge import merge_day
from assets_pkg.timeseries.resample import stacked_schema

DAY = "2024-01-01"
MIN, SEC = 60_000_000, 1_000_000
UTC = dt.timezone.utc


def ds(name, keys=(), resolution=MIN):
    return DatasetSpec(name=name, file="unused", time_column="t", value_columns=("v",), resolution_us=resolution,
                       aggregation={"v": "mean"}, key_columns=tuple(keys))


def catalog(*datasets, tolerance=0, join="outer"):
    return Catalog(path="datasets.yaml", datasets=tuple(datasets), target_resolution_us=MIN, tolerance_us=tolerance, join=join)


def stacked(cat, rows):
    """rows: (dataset, 'HH:MM:SS', key or None, value)."""
    schema = stacked_schema(cat)
    cols = {f.name: [] for f in schema}
    for name, hms, key, value in rows:
        cols["dataset"].append(name)
        cols["ts"].append(dt.datetime.fromisoformat(f"{DAY}T{hms}").replace(tzinfo=UTC))
        for k in cat.key_columns:
            cols[k].append(key)
        for c in cat.value_columns():
            cols[c].append(value if c == f"{name}__v" else None)
    return pa.table(cols, schema=schema)


def out(table):
    res = []
    for r in table.to_pylist():
        res.append(tuple([r["bucket"].strftime("%H:%M")] + [r[c] for c in table.column_names[1:]]))
    return res


def test_merge_without_tolerance_drops_offset_rows(con):
    cat = catalog(ds("a"), ds("b"), tolerance=0)
    src = stacked(cat, [("a", "00:00:00", None, 1.0), ("a", "00:01:00", None, 2.0),
                        ("b", "00:00:10", None, 10.0), ("b", "00:01:00", None, 20.0)])
    table, stats = merge_day(con, cat, src, DAY)
    assert table.column_names == ["bucket", "a__v", "b__v"]
    assert out(table) == [("00:00", 1.0, None), ("00:01", 2.0, 20.0)]
    assert stats.unaligned_rows == {"a": 0, "b": 1}
    assert table.schema.field("bucket").type == pa.timestamp("us", tz="UTC")


def test_merge_with_tolerance_aligns_to_the_nearest_bucket(con):
    cat = catalog(ds("a"), ds("b"), tolerance=30 * SEC)
    src = stacked(cat, [("a", "00:00:00", None, 1.0), ("a", "00:01:00", None, 2.0),
                        ("b", "00:00:10", None, 10.0), ("b", "00:01:20", None, 21.0), ("b", "00:00:50", None, 20.0)])
    table, stats = merge_day(con, cat, src, DAY)
    # 00:00:50 (10 s away) wins bucket 00:01 over 00:01:20 (20 s away)
    assert out(table) == [("00:00", 1.0, 10.0), ("00:01", 2.0, 20.0)]
    assert stats.unaligned_rows == {"a": 0, "b": 0}
    assert stats.aligned_rows == {"a": 2, "b": 2}


def test_tolerance_argument_overrides_the_catalog(con):
    cat = catalog(ds("a"), ds("b"), tolerance=30 * SEC)
    src = stacked(cat, [("a", "00:00:00", None, 1.0), ("b", "00:00:10", None, 10.0)])
    table, _ = merge_day(con, cat, src, DAY, tolerance_us=5 * SEC)
    assert out(table) == [("00:00", 1.0, None)]


def test_merge_with_keys_broadcasts_unkeyed_datasets(con):
    cat = catalog(ds("m", keys=("k",)), ds("w"))
    src = stacked(cat, [("m", "00:00:00", "x", 1.0), ("m", "00:00:00", "y", 2.0), ("m", "00:01:00", "x", 3.0),
                        ("w", "00:00:00", None, 100.0), ("w", "00:02:00", None, 300.0)])
    table, _ = merge_day(con, cat, src, DAY)
    assert table.column_names == ["bucket", "k", "m__v", "w__v"]
    assert out(table) == [
        ("00:00", "x", 1.0, 100.0), ("00:00", "y", 2.0, 100.0), ("00:01", "x", 3.0, None),
        ("00:02", None, None, 300.0),  # a bucket only the unkeyed dataset has: NULL key
    ]


def test_inner_join_keeps_buckets_every_dataset_has(con):
    cat = catalog(ds("m", keys=("k",)), ds("w"), join="inner")
    src = stacked(cat, [("m", "00:00:00", "x", 1.0), ("m", "00:00:00", "y", 2.0), ("m", "00:01:00", "x", 3.0),
                        ("w", "00:00:00", None, 100.0), ("w", "00:02:00", None, 300.0)])
    table, _ = merge_day(con, cat, src, DAY)
    assert out(table) == [("00:00", "x", 1.0, 100.0), ("00:00", "y", 2.0, 100.0)]


def test_inner_join_with_a_dataset_missing_that_day_is_empty(con):
    cat = catalog(ds("a"), ds("b"), join="inner")
    src = stacked(cat, [("a", "00:00:00", None, 1.0)])
    table, _ = merge_day(con, cat, src, DAY)
    assert table.num_rows == 0
    table, _ = merge_day(con, cat, src, DAY, join="outer")
    assert out(table) == [("00:00", 1.0, None)]


def test_rows_outside_the_day_are_not_merged(con):
    cat = catalog(ds("a"), tolerance=30 * SEC)
    schema = stacked_schema(cat)
    src = pa.table({
        "dataset": ["a", "a"],
        "ts": [dt.datetime(2024, 1, 1, 23, 59, 50, tzinfo=UTC), dt.datetime(2023, 12, 31, 23, 59, 50, tzinfo=UTC)],
        "a__v": [1.0, 2.0],
    }, schema=schema)
    table, _ = merge_day(con, cat, src, DAY)
    # 23:59:50 aligns to the next day's 00:00; the previous day's 23:59:50 aligns to this day's 00:00
    assert out(table) == [("00:00", 2.0)]


def test_empty_input_gives_the_schema(con):
    cat = catalog(ds("a", keys=("k",)))
    table, stats = merge_day(con, cat, [], DAY)
    assert table.num_rows == 0 and table.column_names == ["bucket", "k", "a__v"] and stats.rows == 0
