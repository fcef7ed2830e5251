"""Merge the resampled datasets of a day onto one time axis.

Pure module (no dagster import). Input: the stacked ``timeseries/resampled`` table
(``dataset, ts, <keys>, <dataset>__<column>...``). Output: one row per ``bucket`` (and key),
one column per dataset value, named ``<dataset>__<column>``.

Alignment: each row goes to the grid point nearest to its timestamp, if that is within the
tolerance; rows further away are dropped and counted (``unaligned_rows``). When several rows
of a dataset land on one bucket, the nearest wins (a tie: the earlier). Rows that resample
already put on the grid align to themselves, so this matters for passthrough datasets.

Keys: datasets with key columns (all the same, the catalog checks) join on (bucket, keys);
datasets without keys are broadcast to every key of the bucket. ``outer`` (default) keeps
every bucket/key any dataset has (a bucket only unkeyed datasets have gets NULL keys);
``inner`` keeps the bucket/keys every dataset has.
"""

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from assets_pkg.duck import quote_ident
from assets_pkg.storage import as_path
from assets_pkg.storage.arrow import dataset
from assets_pkg.timeseries.catalog import Catalog
from assets_pkg.timeseries.resample import arrow, day_bounds, set_utc

BUCKET = "bucket"


@dataclass
class MergeStats:
    rows: int = 0
    aligned_rows: dict = field(default_factory=dict)  # dataset -> rows on the axis
    unaligned_rows: dict = field(default_factory=dict)  # dataset -> rows beyond the tolerance

    def as_metadata(self) -> dict:
        meta = {"dagster/row_count": self.rows, "rows": self.rows}
        for name, n in self.aligned_rows.items():
            meta[f"aligned_rows/{name}"] = n
        for name, n in self.unaligned_rows.items():
            meta[f"unaligned_rows/{name}"] = n
        return meta


def merged_schema(catalog: Catalog) -> pa.Schema:
    fields = [pa.field(BUCKET, pa.timestamp("us", tz="UTC"))]
    fields += [pa.field(k, pa.string()) for k in catalog.key_columns]
    fields += [pa.field(c, pa.float64()) for c in catalog.value_columns()]
    return pa.schema(fields)


def parquet_dataset(paths) -> pads.Dataset:
    """A lazy pyarrow dataset over Parquet files under the data root, local or in an object
    store (pyarrow's native S3 filesystem: ranged reads, projection and filters pushed down)."""
    return dataset([as_path(p) for p in paths])


def register_source(con: duckdb.DuckDBPyConnection, name: str, source) -> bool:
    """Register a Table or a list of parquet paths as view ``name``; False when empty."""
    if isinstance(source, (list, tuple)):
        if not source:
            return False
        con.register(name, parquet_dataset(source))
        return True
    if isinstance(source, (pa.Table, pa.RecordBatchReader)):
        con.register(name, source)
        return source.num_rows > 0 if isinstance(source, pa.Table) else True
    if isinstance(source, (str, Path)) or hasattr(source, "fs"):  # one path, local or remote
        return register_source(con, name, [source])
    raise TypeError(f"cannot merge a {type(source).__name__}")


def merge_day(con: duckdb.DuckDBPyConnection, catalog: Catalog, stacked, day: str,
              join: str | None = None, tolerance_us: int | None = None) -> tuple[pa.Table, MergeStats]:
    """Merge one day's stacked resampled rows. ``stacked``: a pyarrow Table or parquet paths."""
    set_utc(con)
    schema = merged_schema(catalog)
    stats = MergeStats()
    if not register_source(con, "__stacked", stacked):
        return schema.empty_table(), stats
    join = join or catalog.join
    if join not in ("outer", "inner"):
        raise ValueError(f"join must be outer or inner, got {join!r}")
    tol = catalog.tolerance_us if tolerance_us is None else int(tolerance_us)
    T = catalog.target_resolution_us
    start_us, end_us = day_bounds(day)
    params = {"T": T, "tol": tol, "start": start_us, "end": end_us}
    present = {r[0] for r in con.execute("SELECT DISTINCT dataset FROM __stacked").fetchall()}
    keys = list(catalog.key_columns)
    qk = [quote_ident(k) for k in keys]
    ctes, keyed, unkeyed = [], [], []
    for i, spec in enumerate(catalog.datasets):
        cols = [quote_ident(c) for c in spec.output_columns()]
        own_keys = [quote_ident(k) for k in spec.key_columns]
        key_sel = "".join(f", {k}" for k in own_keys)
        alias = f"a{i}"
        params[f"d{i}"] = spec.name
        if spec.name not in present:
            # keep the CTE shape so outer joins work; an inner join with a missing dataset is empty
            null_cols = "".join(f", NULL::DOUBLE AS {c}" for c in cols)
            null_keys = "".join(f", NULL::VARCHAR AS {k}" for k in own_keys)
            ctes.append(f"{alias} AS (SELECT NULL::BIGINT AS b {null_keys} {null_cols} WHERE false)")
        elif spec.mode(T) != "same":
            # resample put these rows on the grid, one per (bucket, keys): they align to themselves
            ctes.append(
                f"""{alias} AS (
                SELECT epoch_us(ts) AS b {key_sel} {''.join(f', {c}' for c in cols)}
                FROM __stacked WHERE dataset = $d{i} AND epoch_us(ts) >= $start AND epoch_us(ts) < $end
                                     AND epoch_us(ts) % $T = 0)"""
            )
            stats.unaligned_rows[spec.name] = 0
        else:
            rk = "abs(us - b) * 2 + CASE WHEN us > b THEN 1 ELSE 0 END"
            aggs = "".join(f", arg_min({c}, {rk}) AS {c}" for c in cols)
            ctes.append(
                f"""{alias} AS (
                SELECT b {key_sel} {aggs} FROM (
                    SELECT ((us + $T // 2) // $T) * $T AS b, us {key_sel} {''.join(f', {c}' for c in cols)}
                    FROM (SELECT *, epoch_us(ts) AS us FROM __stacked WHERE dataset = $d{i})
                ) WHERE abs(us - b) <= $tol AND b >= $start AND b < $end
                GROUP BY b {key_sel})"""
            )
            counts = con.execute(
                """SELECT count(*) FILTER (WHERE abs(us - b) > $tol)
                    FROM (SELECT ((epoch_us(ts) + $T // 2) // $T) * $T AS b, epoch_us(ts) AS us
                          FROM __stacked WHERE dataset = $d)""",
                {"T": T, "tol": tol, "d": spec.name},
            ).fetchall()
            stats.unaligned_rows[spec.name] = int(counts[0][0])
        (keyed if spec.key_columns else unkeyed).append((alias, spec))
    key_cols = "".join(f", {k}" for k in qk)
    null_keys = "".join(f", NULL::VARCHAR AS {k}" for k in qk)
    if join == "outer":
        if keyed:
            keyed_axis = " UNION ".join(f"SELECT b {key_cols} FROM {a}" for a, _ in keyed)
            parts = [keyed_axis]
            if unkeyed:
                unkeyed_b = " UNION ".join(f"SELECT b FROM {a}" for a, _ in unkeyed)
                parts.append(
                    f"SELECT b {null_keys} FROM ({unkeyed_b}) WHERE b NOT IN (SELECT b FROM ({keyed_axis}))"
                )
            axis = " UNION ".join(f"({p})" for p in parts)
        else:
            axis = " UNION ".join(f"SELECT b FROM {a}" for a, _ in unkeyed)
    else:
        if keyed:
            axis = " INTERSECT ".join(f"SELECT b {key_cols} FROM {a}" for a, _ in keyed)
            for a, _ in unkeyed:
                axis = f"SELECT * FROM ({axis}) WHERE b IN (SELECT b FROM {a})"
        else:
            axis = " INTERSECT ".join(f"SELECT b FROM {a}" for a, _ in unkeyed)
    joins, selects = [], []
    for alias, spec in [*keyed, *unkeyed]:
        on = f"{alias}.b = x.b" + "".join(f" AND {alias}.{k} = x.{k}" for k in (qk if spec.key_columns else []))
        joins.append(f"LEFT JOIN {alias} ON {on}")
    for i, spec in enumerate(catalog.datasets):
        selects += [f"a{i}.{quote_ident(c)}" for c in spec.output_columns()]
    sql = f"""WITH {', '.join(ctes)}, x AS ({axis})
              SELECT CAST(make_timestamp(x.b) AS TIMESTAMPTZ) AS {BUCKET}
                     {''.join(f', x.{k}' for k in qk)} {''.join(', ' + s for s in selects)}
              FROM x {' '.join(joins)}
              ORDER BY x.b {''.join(f', x.{k}' for k in qk)}"""
    table = arrow(con, sql, params).cast(schema)
    con.unregister("__stacked")
    stats.rows = table.num_rows
    for spec in catalog.datasets:
        cols = spec.output_columns()
        mask = None
        for c in cols:
            valid = table.column(c).is_valid()
            mask = valid if mask is None else pc.or_(mask, valid)
        stats.aligned_rows[spec.name] = int(pc.sum(mask).as_py() or 0) if mask is not None and table.num_rows else 0
    return table, stats
