"""Exact resampling of small hand-made series: every aggregation and upsampling mode."""

import datetime as dt

import pyarrow as pa
import pytest

from assets_pkg.timeseries.catalog import DatasetSpec, Upsampling
from assets_pkg.timeseries.resample import day_bounds, load_margins, resample_table

DAY = "2024-01-01"
START, END = day_bounds(DAY)
MIN = 60_000_000
SEC = 1_000_000


def t(hms: str, day: str = DAY) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{hms}")


def source(con, rows, keys=False, name="src"):
    """rows: (datetime, value) or (datetime, key, value)."""
    cols = {
        "ts": pa.array([r[0] for r in rows], pa.timestamp("us")),
        "__row": pa.array(range(1, len(rows) + 1), pa.int64()),
    }
    if keys:
        cols["k"] = pa.array([r[1] for r in rows], pa.string())
    cols["v"] = pa.array([r[-1] for r in rows], pa.float64())
    table = pa.table(cols)
    con.register(name + "_arrow", table)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {name}_arrow")
    return name


def spec(resolution_us, agg="mean", method="ffill", limit=None, keys=()):
    return DatasetSpec(
        name="d", file="unused", time_column="ts", value_columns=("v",), resolution_us=resolution_us,
        aggregation={"v": agg}, upsampling=Upsampling(method, limit), key_columns=tuple(keys),
    )


def rows(table):
    out = []
    for r in table.to_pylist():
        out.append((r["ts"].strftime("%H:%M:%S"), *([r["k"]] if "k" in r else []), None if r["v"] is None else round(r["v"], 6)))
    return out


DOWN_ROWS = [
    (t("00:00:00"), 1.0), (t("00:00:20"), 2.0), (t("00:00:40"), 3.0),
    (t("00:01:00"), 10.0), (t("00:01:30"), None), (t("00:01:45"), 4.0),
    (t("23:59:59", "2023-12-31"), 99.0),  # the day before: never in this day's buckets
]


@pytest.mark.parametrize(
    "agg,expected",
    [
        ("mean", [2.0, 7.0]), ("sum", [6.0, 14.0]), ("min", [1.0, 4.0]), ("max", [3.0, 10.0]),
        ("first", [1.0, 10.0]), ("last", [3.0, 4.0]), ("count", [3.0, 2.0]),
    ],
)
def test_downsampling_each_aggregation(con, agg, expected):
    src = source(con, DOWN_ROWS)
    out = resample_table(con, src, spec(SEC, agg), MIN, 0, START, END)
    assert rows(out) == [("00:00:00", expected[0]), ("00:01:00", expected[1])]
    assert out.schema.field("ts").type == pa.timestamp("us", tz="UTC")


def test_first_last_break_ties_by_file_order(con):
    src = source(con, [(t("00:00:05"), 1.0), (t("00:00:05"), 2.0), (t("00:00:30"), None)])
    assert rows(resample_table(con, src, spec(SEC, "first"), MIN, 0, START, END)) == [("00:00:00", 1.0)]
    assert rows(resample_table(con, src, spec(SEC, "last"), MIN, 0, START, END)) == [("00:00:00", 2.0)]


def test_same_resolution_is_passthrough_and_aggregates_duplicates(con):
    src = source(con, [(t("00:00:10"), 1.0), (t("00:01:10"), 1.0), (t("00:01:10"), 3.0), (t("00:02:10"), 5.0)])
    out = resample_table(con, src, spec(MIN, "mean"), MIN, 30 * SEC, START, END)
    # timestamps untouched (the merge aligns them); the duplicate at 00:01:10 is averaged
    assert rows(out) == [("00:00:10", 1.0), ("00:01:10", 2.0), ("00:02:10", 5.0)]


QUARTERS = [(t("00:00:00"), 1.0), (t("00:15:00"), 2.0)]


def test_upsampling_ffill_within_limit(con):
    src = source(con, QUARTERS)
    out = resample_table(con, src, spec(15 * MIN, method="ffill", limit=2), 5 * MIN, 0, START, END)
    assert rows(out) == [
        ("00:00:00", 1.0), ("00:05:00", 1.0), ("00:10:00", 1.0),
        ("00:15:00", 2.0), ("00:20:00", 2.0), ("00:25:00", 2.0),
    ]


def test_upsampling_ffill_default_limit_is_native_over_target(con):
    src = source(con, [(t("00:00:00"), 1.0)])
    out = resample_table(con, src, spec(15 * MIN, method="ffill"), 5 * MIN, 0, START, END)
    assert [r[0] for r in rows(out)] == ["00:00:00", "00:05:00", "00:10:00", "00:15:00"]


def test_upsampling_linear(con):
    src = source(con, QUARTERS)
    out = resample_table(con, src, spec(15 * MIN, method="linear", limit=2), 5 * MIN, 0, START, END)
    assert rows(out) == [("00:00:00", 1.0), ("00:05:00", 1.333333), ("00:10:00", 1.666667), ("00:15:00", 2.0)]


def test_upsampling_linear_does_not_bridge_gaps_beyond_the_limit(con):
    src = source(con, [(t("00:00:00"), 1.0), (t("00:30:00"), 7.0)])
    out = resample_table(con, src, spec(15 * MIN, method="linear", limit=2), 5 * MIN, 0, START, END)
    assert rows(out) == [("00:00:00", 1.0), ("00:30:00", 7.0)]
    out = resample_table(con, src, spec(15 * MIN, method="linear", limit=5), 5 * MIN, 0, START, END)
    assert [r[1] for r in rows(out)] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]


def test_upsampling_none_keeps_only_observed_buckets(con):
    src = source(con, QUARTERS)
    out = resample_table(con, src, spec(15 * MIN, method="none"), 5 * MIN, 0, START, END)
    assert rows(out) == [("00:00:00", 1.0), ("00:15:00", 2.0)]


def test_upsampling_snaps_within_tolerance_else_next_bucket(con):
    src = source(con, [(t("00:14:50"), 2.0), (t("00:22:00"), 3.0)])
    out = resample_table(con, src, spec(15 * MIN, method="none"), 5 * MIN, 30 * SEC, START, END)
    # 00:14:50 is 10 s from 00:15 (inside 30 s): 00:15; 00:22 is 2 min away: known from 00:25
    assert rows(out) == [("00:15:00", 2.0), ("00:25:00", 3.0)]


def test_upsampling_with_keys_fills_each_key(con):
    src = source(con, [(t("00:00:00"), "a", 1.0), (t("00:05:00"), "b", 5.0)], keys=True)
    sp = spec(15 * MIN, method="ffill", limit=1, keys=("k",))
    out = resample_table(con, src, sp, 5 * MIN, 0, START, END)
    assert rows(out) == [("00:00:00", "a", 1.0), ("00:05:00", "a", 1.0), ("00:05:00", "b", 5.0), ("00:10:00", "b", 5.0)]


def test_upsampling_carries_the_previous_day_into_the_first_buckets(con):
    sp = spec(15 * MIN, method="ffill", limit=2)
    before, _ = load_margins(sp, 5 * MIN, 0)
    assert before >= 2 * 5 * MIN
    src = source(con, [(t("23:55:00", "2023-12-31"), 9.0), (t("00:15:00"), 2.0)])
    out = resample_table(con, src, sp, 5 * MIN, 0, START, END)
    assert rows(out)[:3] == [("00:00:00", 9.0), ("00:05:00", 9.0), ("00:15:00", 2.0)]


def test_downsampling_with_keys(con):
    src = source(con, [(t("00:00:01"), "b", 1.0), (t("00:00:02"), "a", 2.0), (t("00:00:03"), "a", 4.0)], keys=True)
    out = resample_table(con, src, spec(SEC, "sum", keys=("k",)), MIN, 0, START, END)
    assert rows(out) == [("00:00:00", "a", 6.0), ("00:00:00", "b", 1.0)]
