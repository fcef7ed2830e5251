"""latest_summary: one row per account, the row of its greatest month (no dagster import).

Reads only the key and month columns of every month file to find each account's greatest
month, then reads full rows (with history arrays) only from the files that hold them.
"""

from pathlib import Path

import duckdb

from assets_pkg.duck import quote_ident
from assets_pkg.summary.config import SummarySettings


def latest_relation(con: duckdb.DuckDBPyConnection, cfg: SummarySettings, month_files: list[Path]):
    """A DuckDB relation (ordered by key) with the latest row per account, or None when
    there are no month files."""
    files = sorted(str(p) for p in month_files)
    if not files:
        return None
    k, m = quote_ident(cfg.key_column), quote_ident(cfg.month_column)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE summary_latest_keys AS "
        f"SELECT {k} AS key, max({m}) AS month FROM read_parquet(?) GROUP BY 1",
        [files],
    )
    months = {r[0] for r in con.execute("SELECT DISTINCT month FROM summary_latest_keys").fetchall()}
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
