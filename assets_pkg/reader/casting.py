"""Vectorized type conversion that finds the exact values that fail.

``pyarrow.compute.cast`` converts a whole column in C++ but stops at the first bad value
without saying where. The answer is always "what ``cast`` accepts" (no second parser
with its own rules); the work is done so that it stays vectorized:

1. cast the whole column: the normal case, one call;
2. numbers and dates: a regex picks the values that certainly look right and they are
   cast in bulk; the rest ("suspects") are de-duplicated and each distinct value is
   tried once, so a file full of "N/A" costs one check, not one per row;
3. other types: bisect, casting halves until failing slices are small, then value by
   value: about ``bad * log2(rows)`` small casts.
"""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_LEAF = 64  # bisection: below this many values, test them one by one
_INT_LIKE = r"^[+-]?[0-9]{1,18}$"
_FLOAT_LIKE = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_DATE_LIKE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def _likely_pattern(target: pa.DataType) -> str | None:
    if pa.types.is_integer(target):
        return _INT_LIKE
    if pa.types.is_floating(target) or pa.types.is_decimal(target):
        return _FLOAT_LIKE
    if pa.types.is_date(target):
        return _DATE_LIKE
    return None


def casts(values: pa.Array, target: pa.DataType) -> bool:
    try:
        pc.cast(values, target)
        return True
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False


def _bisect_failures(values: pa.Array, target: pa.DataType, offset: int, out: list[int]) -> None:
    n = len(values)
    if n <= _LEAF:
        for i in range(n):
            if values[i].is_valid and not casts(values.slice(i, 1), target):
                out.append(offset + i)
        return
    mid = n // 2
    for start, length in ((0, mid), (mid, n - mid)):
        part = values.slice(start, length)
        if not casts(part, target):
            _bisect_failures(part, target, offset + start, out)


def _bisect(values: pa.Array, target: pa.DataType) -> np.ndarray:
    out: list[int] = []
    _bisect_failures(values, target, 0, out)
    return np.asarray(sorted(out), dtype=np.int64)


def _failures_by_pattern(values: pa.Array, target: pa.DataType, pattern: str) -> np.ndarray:
    likely = pc.fill_null(pc.match_substring_regex(values, pattern), False)
    likely_np = likely.to_numpy(zero_copy_only=False)
    likely_pos = np.flatnonzero(likely_np)
    failures = []
    if len(likely_pos):
        subset = values.filter(likely)
        if not casts(subset, target):  # e.g. overflow, 2024-02-30: rare, bisect them
            failures.append(likely_pos[_bisect(subset, target)])
    suspect = pc.and_(pc.invert(likely), pc.is_valid(values))
    if pc.any(suspect).as_py():
        distinct = pc.unique(values.filter(suspect))
        bad = [v for v in distinct if not casts(pa.array([v.as_py()], values.type), target)]
        if bad:
            is_bad = pc.fill_null(pc.is_in(values, value_set=pa.array([v.as_py() for v in bad], values.type)), False)
            failures.append(np.flatnonzero(pc.and_(is_bad, suspect).to_numpy(zero_copy_only=False)))
    if not failures:
        return np.empty(0, dtype=np.int64)
    return np.unique(np.concatenate(failures)).astype(np.int64)


def cast_failures(values: pa.Array, target: pa.DataType) -> np.ndarray:
    """Sorted positions of the non-null values of ``values`` that ``cast`` to ``target`` rejects."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if casts(values, target):
        return np.empty(0, dtype=np.int64)
    pattern = _likely_pattern(target) if pa.types.is_string(values.type) else None
    if pattern is not None:
        return _failures_by_pattern(values, target, pattern)
    return _bisect(values, target)


def normalize_strings(values: pa.Array, strip: bool) -> pa.Array:
    """Optionally strip surrounding whitespace; an empty string becomes null either way
    (the parser already maps empty fields to null, stripping can create new ones)."""
    if strip:
        values = pc.utf8_trim_whitespace(values)
        # no Python values here (pa.scalar("") and the like make pyarrow import pandas):
        # empty = length cast to bool, inverted
        empty = pc.invert(pc.cast(pc.utf8_length(values), pa.bool_()))
        values = pc.if_else(empty, pa.nulls(len(values), values.type), values)
    return values


def convert_table(table: pa.Table, types: dict[str, pa.DataType], drop_rows=()):
    """Cast the columns of ``table`` named in ``types``; also remove rows ``drop_rows``.

    Returns ``(converted_table_without_bad_rows, failures)`` where ``failures`` maps a
    row position (in ``table``) to ``(column, value, target)`` for its first failing
    column. Rows with a failure are removed, never nulled.
    """
    failures: dict[int, tuple[str, str, pa.DataType]] = {}
    for name, target in types.items():
        column = table.column(name)
        if column.type == target:
            continue
        for pos in cast_failures(column, target):
            pos = int(pos)
            if pos not in failures:
                failures[pos] = (name, column[pos].as_py(), target)
    if failures or len(drop_rows):
        keep = np.ones(table.num_rows, dtype=bool)
        keep[list(failures)] = False
        keep[np.asarray(drop_rows, dtype=np.int64)] = False
        table = table.filter(pa.array(keep))
    columns = []
    for field in table.schema:
        column = table.column(field.name)
        target = types.get(field.name)
        columns.append(column if target is None or column.type == target else pc.cast(column, target))
    return pa.Table.from_arrays(columns, names=table.column_names), failures
