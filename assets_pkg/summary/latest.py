"""latest_summary: one row per account, the row of its greatest month (no dagster import).

Reads only the key and month columns of every month file to find each account's greatest
month, then reads full rows (with history arrays) only from the files that hold them.
"""

from pathlib import Path

import duckdb

from assets_pkg.duck import quote_ident
from assets_pkg.storage import as_path, is_remote
from assets_pkg.storage.arrow import dataset
from assets_pkg.summary.config import SummarySettings


def latest_relation(con: duckdb.DuckDBPyConnection, cfg: SummarySettings, month_files: list[Path]):
    """A DuckDB relation (ordered by key) with the latest row per account, or None when
    there are no month files."""
    files = sorted(str(p) for p in month_files)
    if not files:
        return None
    k, m = quote_ident(cfg.key_column), quote_ident(cfg.month_column)
    remote = is_remote(as_path(files[0]))
    if remote:
        # pyarrow's native S3 reads (key and month columns only) instead of fsspec calls
        con.register("summary_latest_months", dataset([as_path(f) for f in files]))
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE summary_latest_keys AS "
        f"SELECT {k} AS key, max({m}) AS month FROM "
        f"{'summary_latest_months' if remote else 'read_parquet(?)'} GROUP BY 1",
        [] if remote else [files],
    )
    months = {r[0] for r in con.execute("SELECT DISTINCT month FROM summary_latest_keys").fetchall()}
    if remote:
        # one scan of the files holding someone's latest month, joined on (key, month)
        needed = [as_path(p) for p in files if p.rsplit("/", 1)[-1].removesuffix(".parquet") in months]
        con.register("summary_latest_rows", dataset(needed))
        return con.sql(f"SELECT t.* FROM summary_latest_rows t SEMI JOIN summary_latest_keys l "
                       f"ON t.{k} = l.key AND t.{m} = l.month ORDER BY t.{k}")
    parts = []
    for path in files:
        month = path.rsplit("/", 1)[-1].removesuffix(".parquet")
        if month not in months:
            continue
        lit = path.replace("'", "''")
        mlit = month.replace("'", "''")
        parts.append(
            f"SELECT t.* FROM read_parquet('{lit}') t SEMI JOIN "
            f"(SELECT key FROM summary_latest_keys WHERE month = '{mlit}') l ON t.{k} = l.key"
        )
    return con.sql(f"SELECT * FROM ({' UNION ALL '.join(parts)}) ORDER BY {k}")
