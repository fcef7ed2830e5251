"""casting.cast_failures finds exactly the values pyarrow's cast rejects."""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assets_pkg.reader.casting import cast_failures, convert_table

TRICKY = ["1", "+2", "-3", " 4", "0x10", "1e3", "99999999999999999999", "1.5", ".5", "5.", "inf", "nan",
          "2024-02-30", "2024-01-01", "x", "N/A", "١٢", "true", "0", None]
TYPES = [pa.int64(), pa.int8(), pa.uint16(), pa.float64(), pa.date32(), pa.bool_(), pa.timestamp("s"), pa.decimal128(10, 2)]


def one_by_one(values: list, target) -> list[int]:
    bad = []
    for i, v in enumerate(values):
        if v is None:
            continue
        try:
            pc.cast(pa.array([v], pa.string()), target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            bad.append(i)
    return bad


@pytest.mark.parametrize("target", TYPES, ids=str)
@settings(max_examples=25, deadline=None)
@given(picks=st.lists(st.sampled_from(TRICKY), max_size=300))
def test_matches_casting_value_by_value(target, picks):
    assert cast_failures(pa.array(picks, pa.string()), target).tolist() == one_by_one(picks, target)


def test_dense_failures_are_fast_and_exact():
    values = ["N/A" if i % 3 == 0 else str(i) for i in range(300_000)]
    failures = cast_failures(pa.array(values), pa.int64())
    assert np.array_equal(failures, np.arange(0, 300_000, 3))


def test_convert_table_removes_failing_rows_and_reports_first_column():
    table = pa.table({"a": ["1", "x", "3", "4"], "b": ["1.0", "y", "z", "2"]})
    converted, failures = convert_table(table, {"a": pa.int64(), "b": pa.float64()}, drop_rows=[3])
    assert converted.to_pydict() == {"a": [1], "b": [1.0]}
    assert failures == {1: ("a", "x", pa.int64()), 2: ("b", "z", pa.float64())}
