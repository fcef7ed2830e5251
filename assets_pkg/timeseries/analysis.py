"""Statistics of an exported day, and the time-series checks, as pure functions.

Pure module (no dagster import): DuckDB over the exported / merged Parquet files.
- :func:`analyse` -- per value column count, null share, mean, std, min, max; Pearson
  correlations between value columns; per dataset the share of buckets it filled.
- :func:`unique_buckets_outcome`, :func:`coverage_outcome`, :func:`export_matches_outcome`
  -- the checks, as :class:`CheckOutcome` (shared by the assets and ``assets-pkg check``).
"""

import math
from pathlib import Path

import duckdb
import pyarrow as pa

from assets_pkg.checking import ERROR, WARN, CheckOutcome, limited
from assets_pkg.duck import quote_ident, setting
from assets_pkg.timeseries.catalog import Catalog
from assets_pkg.storage import as_path, is_remote
from assets_pkg.storage.arrow import parquet_file
from assets_pkg.storage.objects import file_exists
from assets_pkg.timeseries.merge import BUCKET, parquet_dataset

MERGED_ASSET = "timeseries/merged"
EXPORT_ASSET = "timeseries/export"


def _num(value):
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else round(value, 6)


def _view(con: duckdb.DuckDBPyConnection, name: str, source) -> bool:
    """Expose a pyarrow Table or a list of parquet paths as ``name``; False when empty."""
    if isinstance(source, pa.Table):
        if source.num_rows == 0:
            return False
        con.register(name, source)
        return True
    if not isinstance(source, (list, tuple)):
        source = [source]  # one path (str, Path or a remote path)
    paths = [as_path(p) for p in source if file_exists(as_path(p))]
    if not paths:
        return False
    # A pyarrow dataset scans lazily (projection and filters pushed down) and needs no SQL text.
    con.register(name, parquet_dataset(paths))
    return True


def value_columns_of(path: Path) -> list[str]:
    schema = parquet_file(path).schema_arrow
    return [f.name for f in schema if "__" in f.name]


def dataset_columns(columns: list[str]) -> dict:
    """{dataset: [its columns]} from ``<dataset>__<column>`` names."""
    out: dict = {}
    for col in columns:
        out.setdefault(col.split("__", 1)[0], []).append(col)
    return out


def analyse(con: duckdb.DuckDBPyConnection, export_parquet: Path, day: str, key_columns=()) -> dict:
    """Statistics of one exported day (the Parquet export). Returns a JSON-ready dict."""
    if not _view(con, "__export", [export_parquet]):
        return {"day": day, "rows": 0, "columns": {}, "correlations": {}, "fill_share": {}}
    cols = value_columns_of(as_path(export_parquet))
    q = [quote_ident(c) for c in cols]
    parts = ["count(*)", f"count(DISTINCT {BUCKET})"]
    for c in q:
        parts += [f"count({c})", f"avg({c})", f"stddev_samp({c})", f"min({c})", f"max({c})"]
    groups = dataset_columns(cols)
    for ds_cols in groups.values():
        cond = " OR ".join(f"{quote_ident(c)} IS NOT NULL" for c in ds_cols)
        parts.append(f"count(*) FILTER (WHERE {cond})")
    pairs = [(a, b) for i, a in enumerate(cols) for b in cols[i + 1:]]
    parts += [f"corr({quote_ident(a)}, {quote_ident(b)})" for a, b in pairs]
    # one thread: a float sum's order decides its last digit, and a day's export must give
    # the same statistics every run (a day is small; the scan is not the cost)
    with setting(con, "threads", 1):
        row = con.execute(f"SELECT {', '.join(parts)} FROM __export").fetchall()[0]
    rows, buckets = int(row[0]), int(row[1])
    columns, i = {}, 2
    for c in cols:
        count, mean, std, lo, hi = row[i:i + 5]
        i += 5
        columns[c] = {
            "count": int(count),
            "null_share": _num(1 - count / rows) if rows else None,
            "mean": _num(mean), "std": _num(std), "min": _num(lo), "max": _num(hi),
        }
    fill_share = {}
    for ds in groups:
        fill_share[ds] = _num(row[i] / rows) if rows else None
        i += 1
    correlations = {}
    for a, b in pairs:
        correlations[f"{a}|{b}"] = _num(row[i])
        i += 1
    con.unregister("__export")
    return {
        "day": day, "rows": rows, "buckets": buckets, "key_columns": list(key_columns),
        "columns": columns, "correlations": correlations, "fill_share": fill_share,
        "source": str(export_parquet),
    }


def markdown_table(result: dict) -> str:
    lines = ["| column | count | null share | mean | std | min | max |", "|---|---:|---:|---:|---:|---:|---:|"]

    def fmt(v):
        return "" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))

    for col, s in result.get("columns", {}).items():
        lines.append(
            f"| {col} | {s['count']} | {fmt(s['null_share'])} | {fmt(s['mean'])} | {fmt(s['std'])} | {fmt(s['min'])} | {fmt(s['max'])} |"
        )
    if result.get("fill_share"):
        lines += ["", "| dataset | bucket fill share |", "|---|---:|"]
        lines += [f"| {ds} | {fmt(v)} |" for ds, v in result["fill_share"].items()]
    if result.get("correlations"):
        lines += ["", "| pair | correlation |", "|---|---:|"]
        lines += [f"| {pair.replace('|', ' / ')} | {fmt(v)} |" for pair, v in result["correlations"].items()]
    return "\n".join(lines)


# -- checks -----------------------------------------------------------------------------------
def unique_buckets_outcome(con, merged_paths, day: str, key_columns=()) -> CheckOutcome:
    """ERROR: at most one merged row per (bucket, keys)."""
    if not _view(con, "__merged", merged_paths):
        return CheckOutcome(MERGED_ASSET, "unique_buckets", True, ERROR, f"{day}: no merged rows", {"day": day})
    group = ", ".join([BUCKET, *(quote_ident(k) for k in key_columns)])
    dups = con.execute(
        f"SELECT CAST({BUCKET} AS VARCHAR), count(*) FROM __merged GROUP BY {group} HAVING count(*) > 1 ORDER BY 1 LIMIT 20"
    ).fetchall()
    n = con.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM __merged GROUP BY {group} HAVING count(*) > 1)"
    ).fetchall()[0][0]
    return CheckOutcome(
        MERGED_ASSET, "unique_buckets", n == 0, ERROR,
        f"{day}: {n} (bucket, key) groups with more than one row" if n else f"{day}: one row per bucket and key",
        {"day": day, "duplicate_groups": int(n), "examples": limited(b for b, _ in dups)},
    )


def coverage(con, merged_paths, catalog: Catalog) -> dict:
    """{dataset: share of the day's expected buckets it filled}; expected = buckets per day x
    the keys seen that day (1 for an unkeyed dataset)."""
    if not _view(con, "__merged", merged_paths):
        return {spec.name: 0.0 for spec in catalog.datasets}
    cols_present = {r[0] for r in con.execute("SELECT column_name FROM (DESCRIBE __merged)").fetchall()}
    out = {}
    for spec in catalog.datasets:
        cols = [c for c in spec.output_columns() if c in cols_present]
        if not cols:
            out[spec.name] = 0.0
            continue
        cond = " OR ".join(f"{quote_ident(c)} IS NOT NULL" for c in cols)
        keys = [quote_ident(k) for k in spec.key_columns]
        group = ", ".join([BUCKET, *keys])
        nkeys = f"count(DISTINCT ({', '.join(keys)}))" if keys else "1::BIGINT"
        row = con.execute(
            f"SELECT (SELECT count(*) FROM (SELECT DISTINCT {group} FROM __merged WHERE {cond})), "
            f"(SELECT {nkeys} FROM __merged WHERE {cond} LIMIT 1)"
        ).fetchall()[0]
        filled, n_keys = int(row[0]), int(row[1] or 0)
        expected = catalog.buckets_per_day * max(n_keys, 1)
        out[spec.name] = round(filled / expected, 6) if expected else 0.0
    return out


def coverage_outcome(con, merged_paths, catalog: Catalog, day: str, threshold: float | None = None) -> CheckOutcome:
    """WARN: every dataset filled at least ``threshold`` of the day's buckets."""
    threshold = catalog.coverage_threshold if threshold is None else threshold
    shares = coverage(con, merged_paths, catalog)
    low = {ds: s for ds, s in shares.items() if s < threshold}
    desc = (
        f"{day}: coverage below {threshold:.0%}: " + ", ".join(f"{d} {s:.1%}" for d, s in low.items())
        if low else f"{day}: every dataset covers at least {threshold:.0%} of the buckets"
    )
    meta = {"day": day, "threshold": threshold, "min_coverage": min(shares.values()) if shares else 0.0}
    meta.update({f"coverage/{d}": s for d, s in shares.items()})
    return CheckOutcome(MERGED_ASSET, "coverage", not low, WARN, desc, meta)


def export_matches_outcome(merged_rows: int, exported: dict, day: str) -> CheckOutcome:
    """ERROR: every exported file has the merged row count. ``exported``: {path: rows}."""
    wrong = {str(p): n for p, n in exported.items() if n != merged_rows}
    if merged_rows and not exported:
        wrong = {"(no export file)": 0}
    desc = (
        f"{day}: " + ", ".join(f"{as_path(p).name} has {n} rows" for p, n in wrong.items()) + f", merged has {merged_rows}"
        if wrong else f"{day}: {len(exported)} file(s) with {merged_rows} rows each"
    )
    return CheckOutcome(
        EXPORT_ASSET, "export_matches_merged", not wrong, ERROR, desc,
        {"day": day, "merged_rows": merged_rows, **{f"rows/{as_path(p).name}": n for p, n in exported.items()}},
    )


def count_file_rows(path: Path) -> int:
    """Data rows of an exported file: parquet from its footer; csv/csv.gz by counting line
    ends in the (decompressed) stream, minus the header -- unless a value was quoted (a
    quoted value may hold a line break), then by reading it with the streaming reader."""
    path = as_path(path)
    if path.suffix == ".parquet":
        return parquet_file(path).metadata.num_rows
    raw = path.open("rb") if is_remote(path) else path  # an object: one streamed GET
    if path.name.endswith(".gz"):
        from isal import igzip_threaded

        fh = igzip_threaded.open(raw, "rb")
    else:
        fh = raw if is_remote(path) else open(path, "rb")
    lines, last, quoted, first = 0, b"\n", False, True
    with fh:
        while chunk := fh.read(1 << 22):
            body = chunk.split(b"\n", 1)[1] if first and b"\n" in chunk else (b"" if first else chunk)
            first = first and b"\n" not in chunk
            quoted = quoted or b'"' in body
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    if quoted:
        from assets_pkg.reader import StreamingReader

        reader = StreamingReader(path, continue_on_error=False)
        return sum(chunk.rows for chunk in reader)
    if last != b"\n":
        lines += 1
    return max(lines - 1, 0)
