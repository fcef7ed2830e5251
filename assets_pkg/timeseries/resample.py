"""Resample each dataset to the target resolution, one day at a time.

Pure module (no dagster import). Input: a DuckDB table ``(ts TIMESTAMP [UTC], __row, keys
VARCHAR, values DOUBLE)`` as built by :mod:`assets_pkg.timeseries.load`. Output: rows
``(ts TIMESTAMPTZ, keys, values)`` for the day.

- **down** (native resolution finer than the target): rows are floored to their bucket
  ``[b, b + T)`` and aggregated per column (mean, sum, min, max, first, last, count).
- **same**: passthrough -- timestamps are kept as they are (the merge aligns them to the
  grid within the tolerance); only duplicates of (ts, keys) are aggregated.
- **up** (native coarser): each observation is placed on the grid point nearest to it when
  that is within the tolerance, else on the next grid point (the first bucket at which it
  is known); duplicates per bucket are aggregated; then the grid is filled:
  ``ffill`` carries a row forward at most ``limit`` buckets, ``linear`` interpolates between
  two observations at most ``limit`` missing buckets apart (no extrapolation), ``none``
  leaves only the observed buckets. ``limit`` defaults to ceil(native / target).
Every aggregation of duplicates is counted (``duplicates``) by the loader.
"""

from dataclasses import dataclass

import duckdb
import pyarrow as pa

from assets_pkg.duck import quote_ident
from assets_pkg.timeseries.catalog import DAY_US, Catalog, DatasetSpec
from assets_pkg.timeseries.load import LoadStats, load_window

RESAMPLED_TIME = "ts"


def set_utc(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("SET TimeZone = 'UTC'")


def load_margins(spec: DatasetSpec, target_us: int, tolerance_us: int) -> tuple[int, int]:
    """How far before/after the day rows are needed to resample it exactly."""
    mode = spec.mode(target_us)
    if mode == "down":
        return 0, 0
    if mode == "same":
        return tolerance_us, tolerance_us
    limit = spec.fill_limit(target_us)
    before = (limit + 1) * target_us + tolerance_us if spec.upsampling.method != "none" else tolerance_us
    after = (limit + 1) * target_us + tolerance_us if spec.upsampling.method == "linear" else tolerance_us
    return before, after


def _agg(func: str, col: str) -> str:
    v = quote_ident(col)
    order = "(CAST(epoch_us(ts) AS HUGEINT) * 4294967296 + __row)"
    return {
        "mean": f"avg({v})",
        "sum": f"sum({v})",
        "min": f"min({v})",
        "max": f"max({v})",
        "count": f"CAST(count({v}) AS DOUBLE)",
        "first": f"arg_min({v}, {order}) FILTER (WHERE {v} IS NOT NULL)",
        "last": f"arg_max({v}, {order}) FILTER (WHERE {v} IS NOT NULL)",
    }[func]


def resample_sql(spec: DatasetSpec, source: str, target_us: int, tolerance_us: int, start_us: int, end_us: int,
                 duplicates: bool = True):
    """(SQL, params) selecting ``b`` (epoch us), keys, values for one dataset and day.
    ``duplicates=False`` (the loader found none) lets passthrough skip its GROUP BY."""
    T = int(target_us)
    keys = [quote_ident(k) for k in spec.key_columns]
    key_list = "".join(f", {k}" for k in keys)
    aggs = "".join(f", {_agg(spec.aggregation[c], c)} AS {quote_ident(c)}" for c in spec.value_columns)
    src = quote_ident(source)
    mode = spec.mode(target_us)
    params = {"T": T, "start": int(start_us), "end": int(end_us), "tol": int(tolerance_us)}
    if mode == "down":
        sql = f"""SELECT (epoch_us(ts) // $T) * $T AS b {key_list} {aggs}
                  FROM {src} WHERE ts >= make_timestamp($start) AND ts < make_timestamp($end)
                  GROUP BY ALL"""
        return sql, params
    if mode == "same" and not duplicates:
        plain = "".join(f", {quote_ident(c)}" for c in spec.value_columns)
        sql = f"""SELECT epoch_us(ts) AS b {key_list} {plain}
                  FROM {src} WHERE ts >= make_timestamp($start - $tol) AND ts < make_timestamp($end + $tol)"""
        return sql, params
    if mode == "same":
        sql = f"""SELECT epoch_us(ts) AS b {key_list} {aggs}
                  FROM {src} WHERE ts >= make_timestamp($start - $tol) AND ts < make_timestamp($end + $tol)
                  GROUP BY ALL"""
        return sql, params
    # up: snap observations, then fill the grid
    snap = f"""SELECT CASE WHEN abs(us - near) <= $tol THEN near ELSE ((us + $T - 1) // $T) * $T END AS b,
                      ts, __row {key_list} {''.join(f', {quote_ident(c)}' for c in spec.value_columns)}
               FROM (SELECT *, epoch_us(ts) AS us, ((epoch_us(ts) + $T // 2) // $T) * $T AS near FROM {src})"""
    obs = f"SELECT b {key_list} {aggs} FROM ({snap}) GROUP BY ALL"
    method = spec.upsampling.method
    vals = [quote_ident(c) for c in spec.value_columns]
    if method == "none":
        sql = f"SELECT * FROM ({obs}) WHERE b >= $start AND b < $end"
        return sql, params
    params["lim"] = spec.fill_limit(target_us) * T
    if keys:
        key_grid = f"(SELECT DISTINCT {', '.join(keys)} FROM obs) k CROSS JOIN "
        key_on = "".join(f" AND g.{k} = o.{k}" for k in keys)
        key_on_n = "".join(f" AND g.{k} = n.{k}" for k in keys)
        g_keys = "".join(f", g.{k}" for k in keys)
    else:
        key_grid, key_on, key_on_n, g_keys = "", "", "", ""
    grid = f"SELECT * FROM {key_grid}(SELECT range AS b FROM range($start, $end, $T)) r"
    if method == "ffill":
        sel = "".join(f", o.{v} AS {v}" for v in vals)
        sql = f"""WITH obs AS ({obs}), grid AS ({grid})
                  SELECT g.b {g_keys} {sel}
                  FROM grid g ASOF JOIN obs o ON g.b >= o.b {key_on}
                  WHERE g.b - o.b <= $lim"""
        return sql, params
    # linear
    frac = "CAST(g.b - o.b AS DOUBLE) / CAST(n.b - o.b AS DOUBLE)"
    sel = "".join(
        f", CASE WHEN g.b = o.b THEN o.{v} ELSE o.{v} + (n.{v} - o.{v}) * {frac} END AS {v}" for v in vals
    )
    sql = f"""WITH obs AS ({obs}), grid AS ({grid})
              SELECT g.b {g_keys} {sel}
              FROM grid g ASOF JOIN obs o ON g.b >= o.b {key_on}
                          ASOF LEFT JOIN obs n ON g.b <= n.b {key_on_n}
              WHERE g.b = o.b OR (n.b IS NOT NULL AND n.b - o.b <= $lim + $T)"""
    return sql, params


def resample_table(
    con: duckdb.DuckDBPyConnection,
    source: str,
    spec: DatasetSpec,
    target_us: int,
    tolerance_us: int,
    start_us: int,
    end_us: int,
    duplicates: bool = True,
) -> pa.Table:
    """One dataset's rows for ``[start_us, end_us)`` at the target resolution:
    ``ts`` (timestamp[us, tz=UTC]), key columns, value columns; sorted by keys, ts."""
    set_utc(con)
    sql, params = resample_sql(spec, source, target_us, tolerance_us, start_us, end_us, duplicates)
    keys = "".join(f", {quote_ident(k)}" for k in spec.key_columns)
    vals = "".join(f", {quote_ident(v)}" for v in spec.value_columns)
    order = ", ".join([*(quote_ident(k) for k in spec.key_columns), "b"])
    query = f"SELECT CAST(make_timestamp(b) AS TIMESTAMPTZ) AS ts {keys} {vals} FROM ({sql}) ORDER BY {order}"
    return arrow(con, query, params)


def arrow(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> pa.Table:
    """Run ``sql`` with the named parameters it uses and return an Arrow table."""
    return con.sql(sql, params=used_params(sql, params or {}) or None).to_arrow_table()


def used_params(sql: str, params: dict) -> dict:
    """DuckDB refuses named parameters the statement does not use."""
    import re

    names = set(re.findall(r"\$([A-Za-z_]\w*)", sql))
    return {k: v for k, v in params.items() if k in names}


@dataclass
class DatasetDay:
    """One dataset's result for one day (numbers become metadata)."""

    spec: DatasetSpec
    load: LoadStats
    rows_out: int
    mode: str

    def as_metadata(self) -> dict:
        return {"mode": self.mode, "rows_out": self.rows_out, **self.load.as_metadata()}


def day_bounds(day: str) -> tuple[int, int]:
    """'2024-01-02' -> epoch microseconds of [00:00 UTC, next 00:00 UTC)."""
    import datetime as dt

    start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.timezone.utc)
    start_us = int(start.timestamp()) * 1_000_000
    return start_us, start_us + DAY_US


def stacked_schema(catalog: Catalog) -> pa.Schema:
    fields = [pa.field("dataset", pa.string()), pa.field(RESAMPLED_TIME, pa.timestamp("us", tz="UTC"))]
    fields += [pa.field(k, pa.string()) for k in catalog.key_columns]
    fields += [pa.field(c, pa.float64()) for c in catalog.value_columns()]
    return pa.schema(fields)


def resample_day(
    con: duckdb.DuckDBPyConnection, catalog: Catalog, day: str, logger=None, progress_callback=None
) -> tuple[pa.Table, list[DatasetDay]]:
    """Every dataset of the catalog resampled for ``day`` (UTC), stacked in one table:
    ``dataset``, ``ts``, the key columns (NULL for unkeyed datasets) and one column per
    dataset value ``<dataset>__<column>`` (NULL outside its dataset)."""
    from assets_pkg.obs import stage

    start_us, end_us = day_bounds(day)
    schema = stacked_schema(catalog)
    parts, results = [], []
    for i, spec in enumerate(catalog.datasets):
        before, after = load_margins(spec, catalog.target_resolution_us, catalog.tolerance_us)
        table = f"__ts_src_{i}"
        with stage("timeseries_load", logger, dataset=spec.name, day=day) as st:
            load = load_window(
                con, spec, start_us - before, end_us + after, table, catalog.max_reject_share, logger, progress_callback
            )
            st.update(rows=load.rows_in_window, rows_scanned=load.rows_scanned, rejects=load.total_rejects,
                      duplicates=load.duplicates)
        with stage("timeseries_resample", logger, dataset=spec.name, day=day,
                   mode=spec.mode(catalog.target_resolution_us)) as st:
            out = resample_table(con, table, spec, catalog.target_resolution_us, catalog.tolerance_us, start_us, end_us,
                                 duplicates=load.duplicates > 0)
            st["rows"] = out.num_rows
        con.execute(f"DROP TABLE IF EXISTS {quote_ident(table)}")
        results.append(DatasetDay(spec=spec, load=load, rows_out=out.num_rows, mode=spec.mode(catalog.target_resolution_us)))
        if out.num_rows == 0:
            continue
        cols = {"dataset": pa.array([spec.name] * out.num_rows, pa.string()), RESAMPLED_TIME: out.column("ts")}
        cols.update({k: out.column(k) for k in spec.key_columns})
        cols.update({name: out.column(col) for name, col in zip(spec.output_columns(), spec.value_columns)})
        for f in schema:
            if f.name not in cols:
                cols[f.name] = pa.nulls(out.num_rows, f.type)
        parts.append(pa.table(cols, schema=schema))
    stacked = pa.concat_tables(parts) if parts else schema.empty_table()
    return stacked, results
