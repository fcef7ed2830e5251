"""latest_summary: one row per account, the row of its greatest month (no dagster import).

Reads only the key and month columns of every month file to find each account's greatest
month, then reads full rows (with history arrays) only from the files that hold them.

The rows come out ordered by key, one key range at a time: sorting every account's full
row (the history arrays) at once took memory in proportion to the accounts (1.2 GB at 1M
accounts), and DuckDB could not keep such a sort under a low ``memory_limit``. A range
holds at most ``rows_per_query`` accounts, and each query reads only the row groups of
the (key-sorted) month files whose key statistics overlap it. The range follows DuckDB's
``memory_limit``: a range's sort of 200k full rows does not fit 512 MB (DuckDB reports
"Out of Memory" rather than spill it), 100k do, and 58k fit 300 MB.
"""

import math
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa

from assets_pkg.duck import memory_limit_bytes, quote_ident
from assets_pkg.storage import as_path, is_remote
from assets_pkg.storage.arrow import dataset
from assets_pkg.summary.config import SummarySettings

# accounts per query: their full rows are sorted in DuckDB (~1 KB each with 36-month histories)
ROWS_PER_QUERY = 200_000
# DuckDB memory a range's sort needs per row (measured: 2M accounts x 60 months, the sort
# of 200k rows fails under 512 MB, 100k pass at 512 MB and 58k at 300 MB)
SORT_BYTES_PER_ROW = 5 * 2**10
MIN_ROWS_PER_QUERY = 1_000
BATCH_ROWS = 65_536


def latest_reader(con: duckdb.DuckDBPyConnection, cfg: SummarySettings, month_files: list[Path],
                  rows_per_query: int | None = None) -> pa.RecordBatchReader | None:
    """The latest row per account, ordered by key, streamed; None when there are no month
    files. ``rows_per_query``: accounts per key range (default :func:`rows_per_query_for`
    the connection's memory limit)."""
    paths = sorted((as_path(p) for p in month_files), key=str)
    if not paths:
        return None
    k, m = quote_ident(cfg.key_column), quote_ident(cfg.month_column)
    months_from, months_params = _parquet_source(con, "summary_latest_months", paths)
    con.execute(f"CREATE OR REPLACE TEMP TABLE summary_latest_keys AS "
                f"SELECT {k} AS key, max({m}) AS month FROM {months_from} GROUP BY 1", months_params)
    accounts, latest_months = con.execute(
        "SELECT count(*), list(DISTINCT month) FROM summary_latest_keys").fetchall()[0]
    rows_per_query = rows_per_query or rows_per_query_for(memory_limit_bytes(con))
    ranges = _key_ranges(con, math.ceil(accounts / max(1, rows_per_query)))
    # one scan over the files that hold someone's latest month, joined on (key, month): a
    # UNION of one scan per file held pages of every file at once (1M accounts x 60 months:
    # 933 MB and 34.9 CPU-s against 605 MB and 33.2; bench/NOTES.md "latest_summary")
    months = set(latest_months or [])
    needed = [p for p in paths if p.stem in months]
    rows_from, rows_params = _parquet_source(con, "summary_latest_rows", needed)

    def query(lo, hi) -> duckdb.DuckDBPyRelation:
        where, params = _range_sql("t." + k, lo, hi)
        return con.sql(f"SELECT t.* FROM {rows_from} t SEMI JOIN summary_latest_keys l "
                       f"ON t.{k} = l.key AND t.{m} = l.month WHERE {where} ORDER BY t.{k}",
                       params=rows_params + params)

    first = query(*ranges[0]).fetch_record_batch(BATCH_ROWS)

    def batches() -> Iterator[pa.RecordBatch]:
        yield from first
        for lo, hi in ranges[1:]:  # one range's result is read whole before the next query runs
            yield from query(lo, hi).fetch_record_batch(BATCH_ROWS)

    return pa.RecordBatchReader.from_batches(first.schema, batches())


def _parquet_source(con, name: str, paths: list[Path]) -> tuple[str, list]:
    """What a query reads ``paths`` from, and its parameters: ``read_parquet`` of local files;
    for an object store, a pyarrow dataset registered as ``name`` (its native S3 reads
    instead of fsspec calls)."""
    if paths and is_remote(paths[0]):
        con.register(name, dataset(paths))
        return name, []
    return "read_parquet(?)", [[str(p) for p in paths]]


def rows_per_query_for(memory_limit: int) -> int:
    """Accounts per key range whose sort fits DuckDB's ``memory_limit`` (bytes)."""
    return max(MIN_ROWS_PER_QUERY, min(ROWS_PER_QUERY, memory_limit // SORT_BYTES_PER_ROW))


def _key_ranges(con, count: int) -> list[tuple]:
    """``count`` consecutive key ranges ``(lo, hi]`` of about equal numbers of accounts
    (None: unbounded), from the accounts' keys."""
    if count <= 1:
        return [(None, None)]
    points = [i / count for i in range(1, count)]
    bounds = con.execute("SELECT quantile_disc(key, ?) FROM summary_latest_keys", [points]).fetchall()[0][0]
    bounds = sorted(set(bounds))
    edges = [None, *bounds, None]
    return list(zip(edges[:-1], edges[1:]))


def _range_sql(column: str, lo, hi) -> tuple[str, list]:
    terms, params = ["true"], []
    if lo is not None:
        terms.append(f"{column} > ?")
        params.append(lo)
    if hi is not None:
        terms.append(f"{column} <= ?")
        params.append(hi)
    return " AND ".join(terms), params
