"""Load one dataset's rows for a time window into a DuckDB table, batch by batch.

Pure module (no dagster import). CSV/TSV (gzip too) go through the project's streaming
reader (value columns typed float64 so text lands in its rejects); Parquet is read with
pyarrow in batches, with the window pushed down to row groups when the time column is a
timestamp. Each batch is parsed in DuckDB and only the window's rows are kept, so memory
is bounded by the window, never the file.

Timestamps: the output column ``ts`` is a naive TIMESTAMP in UTC.
- text with an offset (``...Z``, ``...+02:00``) is converted from that offset;
- naive text / naive timestamp columns are read in the dataset's ``timezone``;
- a file that mixes both is normalized to UTC and the counts are reported
  (``aware_rows`` / ``naive_rows``, ``mixed_timezones``);
- text that is not a timestamp, an empty time, text in a value column and a missing key
  are rejects (kept in a rejects table); more than ``max_reject_share`` of a file aborts.
"""

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from assets_pkg.duck import connect, quote_ident
from assets_pkg.obs import log_event
from assets_pkg.storage import as_path, is_remote, local_scratch, objects
from assets_pkg.timeseries.catalog import DatasetSpec

BATCH_ROWS = 262_144  # text: the streaming reader's chunk
PARQUET_BATCH_ROWS = 1_048_576  # typed columns: fewer, larger DuckDB statements
MAX_KEPT_REJECTS = 1_000
_AWARE_RE = r"[T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}(:?\d{2})?)$"
REJECTS_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("file", pa.string()),
        ("line", pa.int64()),  # file line (reader rejects)
        ("record", pa.int64()),  # 1-based data record among rows the reader accepted
        ("error_type", pa.string()),
        ("error", pa.string()),
        ("raw", pa.string()),
    ]
)


class TimeseriesInputError(ValueError):
    """A dataset file a user supplied cannot be used (missing, wrong columns, too many rejects)."""


@dataclass
class LoadStats:
    dataset: str
    file: str
    rows_scanned: int = 0
    rows_in_window: int = 0
    reader_rejects: int = 0  # text in a value column, malformed lines (streaming reader)
    timestamp_rejects: int = 0  # empty or unparseable timestamps
    value_rejects: int = 0  # non-numeric values (parquet text columns)
    key_rejects: int = 0  # missing key
    aware_rows: int = 0
    naive_rows: int = 0
    duplicates: int = 0  # rows in the window sharing (ts, keys) with an earlier row
    min_ts_us: int | None = None
    max_ts_us: int | None = None
    rejects: list = field(default_factory=list)  # pa.Tables (REJECTS_SCHEMA), first MAX_KEPT_REJECTS

    @property
    def total_rejects(self) -> int:
        return self.reader_rejects + self.timestamp_rejects + self.value_rejects + self.key_rejects

    @property
    def mixed_timezones(self) -> bool:
        return self.aware_rows > 0 and self.naive_rows > 0

    def rejects_table(self) -> pa.Table:
        if not self.rejects:
            return REJECTS_SCHEMA.empty_table()
        return pa.concat_tables(self.rejects).slice(0, MAX_KEPT_REJECTS)

    def as_metadata(self) -> dict:
        return {
            "rows_scanned": self.rows_scanned,
            "rows_in_window": self.rows_in_window,
            "rejects": self.total_rejects,
            "timestamp_rejects": self.timestamp_rejects,
            "value_rejects": self.value_rejects + self.reader_rejects,
            "key_rejects": self.key_rejects,
            "duplicates_aggregated": self.duplicates,
            "aware_rows": self.aware_rows,
            "naive_rows": self.naive_rows,
            "mixed_timezones": self.mixed_timezones,
        }


def source_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".tsv"):
        return "tsv"
    if name.endswith(".csv"):
        return "csv"
    raise TimeseriesInputError(f"{path}: unsupported dataset file type (use .csv, .tsv, .parquet, optionally .gz)")


def window_table_schema(con, table: str, spec: DatasetSpec) -> None:
    cols = ["ts TIMESTAMP", "__row BIGINT"]
    cols += [f"{quote_ident(k)} VARCHAR" for k in spec.key_columns]
    cols += [f"{quote_ident(v)} DOUBLE" for v in spec.value_columns]
    con.execute(f"CREATE OR REPLACE TEMP TABLE {quote_ident(table)} ({', '.join(cols)})")


def load_window(
    con: duckdb.DuckDBPyConnection,
    spec: DatasetSpec,
    start_us: int,
    end_us: int,
    table: str,
    max_reject_share: float = 0.05,
    logger=None,
    progress_callback=None,
) -> LoadStats:
    """Create temp table ``table`` (ts, __row, keys, values) with the rows whose UTC time is
    in ``[start_us, end_us)`` (epoch microseconds). Raises TimeseriesInputError for a
    missing file or column and when the file's reject share passes ``max_reject_share``."""
    window_table_schema(con, table, spec)
    stats = _scan(con, spec, start_us, end_us, table, max_reject_share, logger, progress_callback)
    key_cols = ", ".join(quote_ident(k) for k in spec.key_columns)
    group = "ts" + (f", {key_cols}" if key_cols else "")
    dup = con.execute(
        f"SELECT coalesce(sum(c - 1), 0) FROM (SELECT count(*) AS c FROM {quote_ident(table)} GROUP BY {group} HAVING count(*) > 1)"
    ).fetchall()
    stats.duplicates = int(dup[0][0])
    return stats


def scan_time_range(con, spec: DatasetSpec, max_reject_share: float = 1.0) -> LoadStats:
    """Scan a whole file for its UTC min/max time (no rows kept)."""
    return _scan(con, spec, None, None, None, max_reject_share, None, None)


def readable_copy(path) -> Path | None:
    """A local file to read the dataset file ``path`` from (None when it does not exist): the
    file itself, or for an object in a store a copy in this process's scratch, fetched once
    and reused while the object is unchanged (a range run scans a file once per day)."""
    if not is_remote(path):
        return path if path.exists() else None
    info = objects.object_info(path)
    if info is None:
        return None
    version = f"{path}|{info['size']}|{info.get('ETag')}|{info.get('LastModified')}"
    local = local_scratch("timeseries-inputs") / f"{hashlib.sha1(version.encode()).hexdigest()[:16]}-{path.name}"
    return local if local.exists() else objects.download(path, local)


def _scan(con, spec, start_us, end_us, table, max_reject_share, logger, progress_callback) -> LoadStats:
    path = as_path(spec.file)
    stats = LoadStats(dataset=spec.name, file=str(path))
    local = readable_copy(path)
    if local is None:
        raise TimeseriesInputError(
            f"dataset {spec.name!r}: file {path} not found (declared in datasets.yaml line {spec.line})"
        )
    fmt = source_format(path)
    if fmt == "parquet":
        batches, reader = _parquet_batches(spec, local, start_us, end_us), None
    else:
        batches, reader = _text_batches(spec, local, fmt, max_reject_share, progress_callback)
    offset = 0
    try:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            batch = batch.append_column("__row", pa.array(range(offset + 1, offset + batch.num_rows + 1), pa.int64()))
            offset += batch.num_rows
            _process_batch(con, spec, batch, start_us, end_us, table, stats)
    except TimeseriesInputError:
        raise
    except Exception as exc:  # reader errors carry file/line; add the dataset
        if type(exc).__module__.startswith("assets_pkg.reader") or "Reader" in type(exc).__name__:
            raise TimeseriesInputError(f"dataset {spec.name!r}: {exc} (datasets.yaml line {spec.line})") from exc
        raise
    if reader is not None:
        rejects = reader.rejects
        stats.reader_rejects = rejects.num_rows
        if rejects.num_rows:
            n = min(rejects.num_rows, MAX_KEPT_REJECTS)
            stats.rejects.insert(
                0,
                pa.table(
                    {
                        "dataset": pa.array([spec.name] * n, pa.string()),
                        "file": pa.array([str(path)] * n, pa.string()),
                        "line": rejects.column("line").slice(0, n).cast(pa.int64()),
                        "record": pa.nulls(n, pa.int64()),
                        "error_type": rejects.column("error_type").slice(0, n).cast(pa.string()),
                        "error": rejects.column("error").slice(0, n).cast(pa.string()),
                        "raw": rejects.column("raw").slice(0, n).cast(pa.string()),
                    },
                    schema=REJECTS_SCHEMA,
                ),
            )
    total = stats.rows_scanned + stats.reader_rejects
    share = stats.total_rejects / total if total else 0.0
    if stats.total_rejects and share > max_reject_share:
        raise TimeseriesInputError(
            f"dataset {spec.name!r}: {stats.total_rejects} of {total} rows of {path} rejected "
            f"({share:.1%} > max_reject_share {max_reject_share:.1%}); "
            f"first: {_first_rejects(stats)}"
        )
    if stats.mixed_timezones:
        log_event(
            "timeseries_mixed_timezones", logger, level="warning", dataset=spec.name, file=str(path),
            aware_rows=stats.aware_rows, naive_rows=stats.naive_rows,
            note=f"naive timestamps read in {spec.timezone}, all normalized to UTC",
        )
    return stats


def _first_rejects(stats: LoadStats) -> str:
    table = stats.rejects_table().slice(0, 3).to_pylist()
    return "; ".join(
        f"{'line ' + str(r['line']) if r['line'] is not None else 'record ' + str(r['record'])}: {r['error']}"
        for r in table
    )


def _text_batches(spec, path, fmt, max_reject_share, progress_callback):
    from assets_pkg.reader import StreamingReader

    column_types = {spec.time_column: pa.string()}
    column_types.update({k: pa.string() for k in spec.key_columns})
    column_types.update({v: pa.float64() for v in spec.value_columns})
    reader = StreamingReader(
        path,
        file_format=fmt,
        columns=[spec.time_column, *spec.key_columns, *spec.value_columns],
        column_types=column_types,
        chunk_size=BATCH_ROWS,
        continue_on_error=True,
        error_threshold=max_reject_share,
        report_progress=progress_callback is not None,
        progress_callback=progress_callback,
    )

    def gen():
        for chunk in reader:
            yield chunk.batch

    return gen(), reader


def _parquet_batches(spec, path, start_us, end_us):
    try:
        schema = pq.read_schema(path)
    except Exception as exc:
        raise TimeseriesInputError(f"dataset {spec.name!r}: {spec.file} is not a readable parquet file: {exc}") from exc
    wanted = [spec.time_column, *spec.key_columns, *spec.value_columns]
    missing = [c for c in wanted if c not in schema.names]
    if missing:
        raise TimeseriesInputError(
            f"dataset {spec.name!r}: column(s) {missing} not in {spec.file} (columns: {schema.names}); "
            f"see datasets.yaml line {spec.line}"
        )
    time_type = schema.field(spec.time_column).type
    flt = None
    if start_us is not None and pa.types.is_timestamp(time_type):
        lo_us, hi_us = start_us, end_us
        if not time_type.tz:  # naive wall time in the dataset's zone: the window in local time
            lo_us, hi_us = _local_bounds(spec.timezone, start_us, end_us)
        unit = pa.timestamp(time_type.unit, time_type.tz)
        lo = pa.scalar(lo_us, pa.timestamp("us", time_type.tz)).cast(unit, safe=False)
        hi = pa.scalar(hi_us + 1, pa.timestamp("us", time_type.tz)).cast(unit, safe=False)
        field_ref = pc.field(spec.time_column)
        flt = (field_ref >= lo) & (field_ref <= hi)
    dataset = pads.dataset(path, format="parquet")
    return dataset.to_batches(columns=wanted, filter=flt, batch_size=PARQUET_BATCH_ROWS)


def _local_bounds(tz: str, start_us: int, end_us: int) -> tuple[int, int]:
    """The wall-clock span (as naive epoch us) that ``[start_us, end_us)`` UTC covers in ``tz``,
    widened by an hour each side for DST folds (filters only select candidates; the exact
    UTC window is applied after conversion)."""
    import datetime as dt
    import zoneinfo

    zone = zoneinfo.ZoneInfo(tz)
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    hour = 3_600_000_000

    def local(us):
        wall = (epoch + dt.timedelta(microseconds=us)).astimezone(zone).replace(tzinfo=dt.timezone.utc)
        return int((wall - epoch) / dt.timedelta(microseconds=1))

    if tz in ("UTC", "Etc/UTC"):
        return start_us, end_us
    return local(start_us) - hour, local(end_us) + hour


def _ts_expr(time_type: pa.DataType, col: str, utc: bool = False) -> tuple[str, str, str]:
    """(utc naive timestamp expr, aware flag expr, raw text expr) for the time column."""
    t = quote_ident(col)
    if pa.types.is_string(time_type) or pa.types.is_large_string(time_type):
        aware = f"regexp_matches(trim({t}), '{_AWARE_RE}')"
        ts = (
            f"CASE WHEN {aware} THEN timezone('UTC', TRY_CAST(trim({t}) AS TIMESTAMPTZ)) "
            f"ELSE timezone('UTC', timezone($tz, TRY_CAST(trim({t}) AS TIMESTAMP))) END"
        )
        return ts, aware, t
    if pa.types.is_timestamp(time_type):
        if time_type.tz:
            return f"timezone('UTC', {t})", "true", "NULL"  # typed: only a NULL time is rejected
        if utc:  # naive and the dataset is in UTC: already UTC wall time
            return f"CAST({t} AS TIMESTAMP)", "false", "NULL"
        return f"timezone('UTC', timezone($tz, CAST({t} AS TIMESTAMP)))", "false", "NULL"
    if pa.types.is_date(time_type):
        return f"timezone('UTC', timezone($tz, CAST({t} AS TIMESTAMP)))", "false", "NULL"
    raise TimeseriesInputError(f"time column {col!r} has type {time_type}; expected text or a timestamp")


def _process_batch(con, spec: DatasetSpec, batch: pa.RecordBatch, start_us, end_us, table, stats: LoadStats):
    try:
        ts_expr, aware_expr, raw_expr = _ts_expr(
            batch.schema.field(spec.time_column).type, spec.time_column, spec.timezone in ("UTC", "Etc/UTC")
        )
    except TimeseriesInputError as exc:
        raise TimeseriesInputError(f"dataset {spec.name!r} ({spec.file}): {exc}") from None
    con.register("__ts_batch", batch)
    try:
        keys = [quote_ident(k) for k in spec.key_columns]
        vals = [quote_ident(v) for v in spec.value_columns]
        key_sel = "".join(f", CAST({k} AS VARCHAR) AS {k}" for k in keys)
        val_sel = "".join(f", TRY_CAST({v} AS DOUBLE) AS {v}" for v in vals)
        bad_val = " OR ".join(f"({v} IS NOT NULL AND TRY_CAST({v} AS DOUBLE) IS NULL)" for v in vals) or "false"
        bad_key = " OR ".join(f"{k} IS NULL" for k in keys) or "false"
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE __ts_parsed AS
            SELECT __row, {ts_expr} AS ts, CAST({raw_expr} AS VARCHAR) AS __raw, {aware_expr} AS __aware,
                   ({bad_val}) AS __bad_val, ({bad_key}) AS __bad_key {key_sel} {val_sel}
            FROM __ts_batch""",
            {"tz": spec.timezone} if "$tz" in ts_expr else None,
        )
    finally:
        con.unregister("__ts_batch")
    agg = con.execute(
        """SELECT count(*),
                  count(*) FILTER (WHERE ts IS NULL),
                  count(*) FILTER (WHERE ts IS NOT NULL AND __bad_val),
                  count(*) FILTER (WHERE ts IS NOT NULL AND NOT __bad_val AND __bad_key),
                  count(*) FILTER (WHERE ts IS NOT NULL AND __aware),
                  count(*) FILTER (WHERE ts IS NOT NULL AND NOT __aware),
                  epoch_us(min(ts) FILTER (WHERE NOT __bad_val AND NOT __bad_key)),
                  epoch_us(max(ts) FILTER (WHERE NOT __bad_val AND NOT __bad_key))
           FROM __ts_parsed"""
    ).fetchall()[0]
    n, bad_ts, bad_val, bad_key, aware, naive, lo, hi = agg
    stats.rows_scanned += n
    stats.timestamp_rejects += bad_ts
    stats.value_rejects += bad_val
    stats.key_rejects += bad_key
    stats.aware_rows += aware
    stats.naive_rows += naive
    if lo is not None:
        stats.min_ts_us = lo if stats.min_ts_us is None else min(stats.min_ts_us, lo)
        stats.max_ts_us = hi if stats.max_ts_us is None else max(stats.max_ts_us, hi)
    if (bad_ts or bad_val or bad_key) and sum(t.num_rows for t in stats.rejects) < MAX_KEPT_REJECTS:
        rej = con.sql(
            """SELECT $ds AS dataset, $file AS file, NULL::BIGINT AS line, __row AS record,
                      CASE WHEN ts IS NULL THEN 'timestamp' WHEN __bad_val THEN 'value' ELSE 'key' END AS error_type,
                      CASE WHEN ts IS NULL AND __raw IS NULL THEN 'empty timestamp'
                           WHEN ts IS NULL THEN 'unparseable timestamp'
                           WHEN __bad_val THEN 'text in a value column'
                           ELSE 'missing key' END AS error,
                      __raw AS raw
               FROM __ts_parsed WHERE ts IS NULL OR __bad_val OR __bad_key ORDER BY __row LIMIT $lim""",
            params={"ds": spec.name, "file": str(spec.file), "lim": MAX_KEPT_REJECTS},
        ).to_arrow_table()
        stats.rejects.append(rej.cast(REJECTS_SCHEMA))
    if table is not None:
        cols = ", ".join(["ts", "__row", *keys, *vals])
        res = con.execute(
            f"""INSERT INTO {quote_ident(table)} SELECT {cols} FROM __ts_parsed
                WHERE ts >= make_timestamp($lo) AND ts < make_timestamp($hi) AND NOT __bad_val AND NOT __bad_key""",
            {"lo": start_us, "hi": end_us},
        ).fetchall()
        stats.rows_in_window += int(res[0][0]) if res else 0
    con.execute("DROP TABLE IF EXISTS __ts_parsed")


def _utc_day(us: int) -> dt.date:
    return (dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=us)).date()


def day_span(con, spec: DatasetSpec) -> tuple[str, str] | None:
    """(first, last) UTC day with a timestamp in the dataset's file; None: no rows."""
    stats = scan_time_range(con, spec)
    if stats.min_ts_us is None:
        return None
    return _utc_day(stats.min_ts_us).isoformat(), _utc_day(stats.max_ts_us).isoformat()


def days_between(first: str, last: str) -> list[str]:
    d0, d1 = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    return [(d0 + dt.timedelta(days=i)).isoformat() for i in range((d1 - d0).days + 1)]


def data_days(catalog) -> list[str]:
    """UTC days between the earliest and the latest timestamp of any dataset."""
    con = connect()
    try:
        spans = [span for spec in catalog.datasets if (span := day_span(con, spec)) is not None]
    finally:
        con.close()
    if not spans:
        return []
    return days_between(min(s[0] for s in spans), max(s[1] for s in spans))
