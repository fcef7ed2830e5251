"""The account source: every batch file ever delivered to the accounts inbox.

Parquet batches are read by DuckDB directly; CSV batches go through the project's
streaming reader (:class:`assets_pkg.reader.StreamingReader`) into a temporary Parquet copy
so that every later query can scan them again. One DuckDB view, ``summary_src``, unions the
batches with normalized, typed columns plus the batch rank (position of the file name in
sorted order) and the row number, which break ``base_ts`` ties: later file, then later row.

No dagster import: this is used by the assets, the sensor, the CLI, tests and the bench.
"""

import datetime as dt
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from assets_pkg.duck import quote_ident
from assets_pkg.duck import setting as duck_setting
from assets_pkg.inbox import SourceChangedError, check_unchanged
from assets_pkg.settings import get_settings
from assets_pkg.storage import as_path, is_remote
from assets_pkg.storage import objects
from assets_pkg.summary.config import SummarySettings
from assets_pkg.summary.months import MONTH_SQL_PATTERN, current_month, is_month, month_index, month_index_sql, month_str

PARQUET_SUFFIXES = (".parquet",)
CSV_SUFFIXES = (".csv", ".csv.gz")
VIEW = "summary_src"


# (epoch_us(base_ts), file rank, row) as one number, lexicographic: the row number stays
# below 2**40 and the file rank below 2**24, so the low 64 bits never carry into the time
WINNER_ORDER_SQL = "(epoch_us(ts)::HUGEINT * 18446744073709551616 + _file::HUGEINT * 1099511627776 + _row)"


class SummarySourceError(ValueError):
    """A batch file cannot be used; the message names the file (and row or column)."""


@dataclass(frozen=True)
class BatchFile:
    path: Path
    size: int
    mtime_ns: int

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def kind(self) -> str:
        return "parquet" if self.name.lower().endswith(PARQUET_SUFFIXES) else "csv"

    @property
    def identity(self) -> str:
        """Name + size + mtime: a replaced or rewritten file counts as a new batch."""
        return f"{self.size}:{self.mtime_ns}"

    @classmethod
    def of(cls, path: Path) -> "BatchFile":
        st = path.stat()
        return cls(path=path, size=st.st_size, mtime_ns=st.st_mtime_ns)

    @classmethod
    def of_object(cls, path, info: dict) -> "BatchFile":
        """A batch in an object store, from its listing: LastModified is its mtime (a PUT
        replacing the object changes it)."""
        modified = info.get("LastModified")
        stamp = modified.timestamp() if isinstance(modified, dt.datetime) else float(modified or 0)
        return cls(path=path, size=int(info["size"]), mtime_ns=int(round(stamp * 1e9)))


def list_batch_files(source_dir: Path) -> list[BatchFile]:
    """Batch files directly in ``source_dir`` (sub-folders are not batches), sorted by name.

    Hidden files (temp files of atomic writes) are ignored; any other file that is not
    parquet or csv is refused so that nothing is skipped silently.
    """
    source_dir = as_path(source_dir)
    if is_remote(source_dir):
        # one fresh listing (size and LastModified included), sub-folders' objects left out
        entries = [(source_dir / name, info) for name, info in sorted(objects.list_objects(source_dir).items())
                   if "/" not in name]
    elif source_dir.is_dir():
        entries = [(entry, None) for entry in sorted(source_dir.iterdir(), key=lambda p: p.name) if entry.is_file()]
    else:
        return []
    files, refused = [], []
    for entry, info in entries:
        if entry.name.startswith("."):
            continue
        lower = entry.name.lower()
        if lower.endswith(PARQUET_SUFFIXES) or lower.endswith(CSV_SUFFIXES):
            files.append(BatchFile.of(entry) if info is None else BatchFile.of_object(entry, info))
        else:
            refused.append(entry.name)
    if refused:
        raise SummarySourceError(
            f"{source_dir}: files that are not account batches (.parquet, .csv, .csv.gz): {refused}"
        )
    return files


@dataclass
class SourceProfile:
    """What one scan over the batches found: rows per valid month and every problem."""

    rows: int = 0
    rows_per_month: dict[int, int] = field(default_factory=dict)  # month index -> good rows
    bad_rows: int = 0
    problems: list[str] = field(default_factory=list)
    max_base_ts: object = None
    file_months: dict[str, set] = field(default_factory=dict)  # batch name -> months with good rows
    pushdown: bool = True  # False when some month strings need trimming (no raw-column filter)

    @property
    def months(self) -> list[int]:
        return sorted(m for m, n in self.rows_per_month.items() if n > 0)

    def to_dict(self) -> dict:
        """JSON-serialisable (a fan-out plan carries it to every step)."""
        return {"rows": self.rows, "rows_per_month": {str(m): n for m, n in self.rows_per_month.items()},
                "bad_rows": self.bad_rows, "problems": list(self.problems),
                "max_base_ts": None if self.max_base_ts is None else self.max_base_ts.isoformat(),
                "file_months": {name: sorted(ms) for name, ms in self.file_months.items()},
                "pushdown": self.pushdown}

    @classmethod
    def from_dict(cls, data: dict) -> "SourceProfile":
        ts = data["max_base_ts"]
        return cls(rows=data["rows"], rows_per_month={int(m): n for m, n in data["rows_per_month"].items()},
                   bad_rows=data["bad_rows"], problems=list(data["problems"]),
                   max_base_ts=None if ts is None else dt.datetime.fromisoformat(ts),
                   file_months={name: set(ms) for name, ms in data["file_months"].items()},
                   pushdown=data["pushdown"])


class Source:
    """A DuckDB view over a set of batch files. Use as a context manager."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        cfg: SummarySettings,
        files: list[BatchFile],
        rank_names: list[str] | None = None,
        now_month: str | None = None,
        logger=None,
        profile: "SourceProfile | None" = None,
    ):
        """``profile``: what :meth:`profile` found over these very files in another step
        of the same run (the fan-out's plan pins them), instead of scanning them again."""
        self.con = con
        self.cfg = cfg
        self.files = list(files)
        names = sorted(rank_names if rank_names is not None else [f.name for f in files])
        self.rank = {name: i for i, name in enumerate(names)}
        self.now_month = now_month or current_month()
        self.logger = logger
        self._tmp: Path | None = None
        self._profile: SourceProfile | None = profile
        self.rejected_lines = 0  # CSV lines the streaming reader refused (bad_rows="skip")
        self.skipped: dict[str, str] = {}  # batch name -> why it was left out (skip_bad_batches)
        self._open()

    # ---- lifecycle -----------------------------------------------------------------------
    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.con.execute(f"DROP VIEW IF EXISTS {VIEW}")
        except duckdb.Error:
            pass
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def _open(self) -> None:
        parts = []
        for batch in self.files:
            if batch.name not in self.rank:
                raise ValueError(f"{batch.name} is not among the ranked batch names")
            try:
                part = self._part_for(batch)
            except SummarySourceError as exc:
                if not self.cfg.skip_bad_batches:
                    raise
                self.skipped[batch.name] = str(exc)
                self._note(f"batch left out (skip_bad_batches): {exc}")
                continue
            if part is not None:
                parts.append(part)
        cfg = self.cfg
        if not parts:
            cols = [
                "NULL::INTEGER AS _file",
                "NULL::BIGINT AS _row",
                "NULL::BOOLEAN AS _key_null",
                "NULL::BOOLEAN AS _key_bad",
                f"NULL::{cfg.key_type} AS key",
                "NULL::VARCHAR AS _month_raw",
                "NULL::VARCHAR AS _mo",
                "NULL::INTEGER AS month_idx",
                "NULL::TIMESTAMP AS ts",
            ]
            for i, col in enumerate(cfg.all_value_columns):
                cols += [f"NULL::BOOLEAN AS _v{i}_bad", f"NULL::{cfg.value_type(col)} AS v{i}"]
            parts = [f"SELECT {', '.join(cols)} WHERE false"]
        sql = "\nUNION ALL\n".join(parts)
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {VIEW} AS {sql}")

    def _part_for(self, batch: BatchFile) -> str | None:
        """The batch's SELECT for the view (None: it holds no records); a batch that cannot
        be used raises :class:`SummarySourceError` naming it."""
        path = batch.path
        if batch.kind == "csv":
            if batch.size == 0:
                return None  # an empty batch holds no records
            path = self._csv_to_parquet(batch)
            if path is None:
                return None
        elif is_remote(path):
            path = self._stage(batch)
        else:
            path = self._pin(batch)
        return self._select_for(batch, path)

    def _pin(self, batch: BatchFile) -> Path:
        """A hard link to a local Parquet batch as it was listed: the view scans it several
        times, and a batch replaced meanwhile (a new file renamed over it) must not give the
        later scans other rows than the first. A batch that already changed since it was
        listed is refused (:class:`SourceChangedError`); where no link can be made (another
        file system) the batch is scanned in place."""
        pinned = self._scratch() / f"{self.rank[batch.name]:06d}-{batch.name}"
        try:
            os.link(batch.path, pinned)
        except FileNotFoundError:
            raise SourceChangedError(f"{batch.path}: the batch disappeared before it was read") from None
        except OSError:
            return batch.path
        check_unchanged(pinned, (batch.size, batch.mtime_ns, ""))
        return pinned

    def _scratch(self) -> Path:
        """This source's local temp folder (CSV copies, staged batches), under the spill folder."""
        if self._tmp is None:
            spill = get_settings().duckdb_spill_dir
            spill.mkdir(parents=True, exist_ok=True)
            self._tmp = Path(tempfile.mkdtemp(prefix="summary-src-", dir=spill))
        return self._tmp

    def _stage(self, batch: BatchFile) -> Path:
        """A local copy of a batch in an object store: the view is scanned several times
        (profile, each chunk of months, the checks), so one GET per batch beats a ranged
        read through fsspec per scan. Local scratch of this process, removed on close."""
        local = self._scratch() / f"{self.rank[batch.name]:06d}-{batch.name}"
        try:
            return objects.download(batch.path, local)
        except FileNotFoundError:
            raise SummarySourceError(f"{batch.path}: the batch disappeared while being read") from None

    def _schema_of(self, batch: BatchFile, path: Path) -> pa.Schema:
        try:
            return pq.read_schema(path)  # local: a CSV's copy, a staged or a local batch
        except Exception as exc:  # noqa: BLE001 - any reader error means an unusable file
            raise SummarySourceError(f"{batch.path}: not a readable parquet file ({exc})") from None

    def _check_columns(self, batch: BatchFile, names) -> None:
        cfg = self.cfg
        needed = [
            ("key_column", cfg.key_column),
            ("month_column", cfg.month_column),
            ("timestamp_column", cfg.timestamp_column),
        ] + [("value column", c) for c in cfg.all_value_columns]
        present = set(names)
        for setting, col in needed:
            if col not in present:
                raise SummarySourceError(
                    f"{batch.path}: missing column {col!r} (summary {setting}); columns present: {sorted(present)}"
                )

    def _select_for(self, batch: BatchFile, path: Path) -> str:
        cfg = self.cfg
        schema = self._schema_of(batch, path)
        self._check_columns(batch, schema.names)
        q = quote_ident
        month_type = schema.field(cfg.month_column).type
        if pa.types.is_date(month_type) or pa.types.is_timestamp(month_type):
            month_expr = f"strftime({q(cfg.month_column)}, '%Y-%m')"
            mo_expr = month_expr
        elif pa.types.is_string(month_type) or pa.types.is_large_string(month_type):
            month_expr = f"trim({q(cfg.month_column)})"
            mo_expr = q(cfg.month_column)  # the raw column: range filters push down into the scan
        else:
            month_expr = f"trim(CAST({q(cfg.month_column)} AS VARCHAR))"
            mo_expr = month_expr
        ts_type = schema.field(cfg.timestamp_column).type
        ts_col = q(cfg.timestamp_column)
        if pa.types.is_timestamp(ts_type) or pa.types.is_date(ts_type):
            ts_expr = f"CAST({ts_col} AS TIMESTAMP)"
        else:
            ts_expr = f"TRY_CAST(trim(CAST({ts_col} AS VARCHAR)) AS TIMESTAMP)"
        key_col = q(cfg.key_column)
        key_type = schema.field(cfg.key_column).type
        # "bad" flags are spelled per batch: a typed column cannot hold a bad value, and
        # casting every number to text just to test it was a third of the scan's cost
        if cfg.key_type == "BIGINT" and pa.types.is_integer(key_type):
            key_expr = f"CAST({key_col} AS BIGINT)"
            key_bad = "false"
        else:
            key_expr = (f"NULLIF(trim(CAST({key_col} AS VARCHAR)), '')" if cfg.key_type == "VARCHAR"
                        else f"TRY_CAST(trim(CAST({key_col} AS VARCHAR)) AS {cfg.key_type})")
            key_bad = f"({key_col} IS NOT NULL AND {key_expr} IS NULL)"
        rank = int(self.rank[batch.name])
        cols = [
            f"{rank}::INTEGER AS _file",
            "file_row_number AS _row",
            f"({key_col} IS NULL) AS _key_null",
            f"{key_bad} AS _key_bad",
            f"{key_expr} AS key",
            f"{month_expr} AS _month_raw",
            f"{mo_expr} AS _mo",
            (
                f"CASE WHEN regexp_full_match({month_expr}, '{MONTH_SQL_PATTERN}') "
                f"THEN {month_index_sql(month_expr)} "
                "END AS month_idx"
            ),
            f"{ts_expr} AS ts",
        ]
        for i, col in enumerate(cfg.all_value_columns):
            vtype = cfg.value_type(col)
            ftype = schema.field(col).type
            if pa.types.is_integer(ftype) or pa.types.is_floating(ftype) or vtype == "VARCHAR":
                vexpr = f"CAST({q(col)} AS {vtype})"
                vbad = "false"
            else:
                raw = f"NULLIF(trim(CAST({q(col)} AS VARCHAR)), '')"
                vexpr = f"TRY_CAST({raw} AS {vtype})"
                vbad = f"({raw} IS NOT NULL AND {vexpr} IS NULL)"
            cols += [f"{vbad} AS _v{i}_bad", f"{vexpr} AS v{i}"]
        literal = str(path).replace("'", "''")
        return f"SELECT {', '.join(cols)} FROM read_parquet('{literal}', file_row_number = true)"

    def _csv_to_parquet(self, batch: BatchFile) -> Path | None:
        """Stream a CSV batch through the project's reader into a temp Parquet copy."""
        from assets_pkg.reader import ReaderError, StreamingReader

        out = self._scratch() / f"{self.rank[batch.name]:06d}.parquet"
        source = self._stage(batch) if is_remote(batch.path) else batch.path
        try:
            reader = StreamingReader(
                source,
                file_format="csv",
                strip_whitespace=True,
                continue_on_error=self.cfg.bad_rows == "skip",
            )
            rbr = reader.to_record_batch_reader()
            self._check_columns(batch, rbr.schema.names)
            if source is batch.path:
                check_unchanged(source, (batch.size, batch.mtime_ns, ""))  # not rewritten since it was listed
            # all text: the view casts with the configured types and reports what fails
            writer = None
            rows = 0
            try:
                for rb in rbr:
                    rb = pa.RecordBatch.from_arrays(
                        [col.cast(pa.string()) for col in rb.columns], names=rb.schema.names
                    )
                    if writer is None:
                        writer = pq.ParquetWriter(out, rb.schema, compression="zstd")
                    writer.write_batch(rb)
                    rows += rb.num_rows
            finally:
                if writer is not None:
                    writer.close()
            if source is batch.path:
                check_unchanged(source, (batch.size, batch.mtime_ns, ""))  # nor while it was read
        except SummarySourceError:
            raise
        except ReaderError as exc:
            raise SummarySourceError(f"{batch.path}: {exc}") from None
        finally:
            if source is not batch.path:
                source.unlink(missing_ok=True)  # the staged text: its parquet copy is what is scanned
        rejected = reader.stats.rejected_lines
        if rejected:
            self.rejected_lines += rejected
            first = reader.rejects.slice(0, 3).to_pylist()
            msg = f"{batch.path}: {rejected} unreadable CSV lines, e.g. {first}"
            if self.cfg.bad_rows == "error":
                raise SummarySourceError(msg)
            self._note(msg)
        if rows == 0:
            return None
        return out

    def _note(self, text: str) -> None:
        if self.logger is not None:
            self.logger.warning(text)

    @contextmanager
    def whole_scan(self):
        """For a block whose queries read every batch of the view: DuckDB's Parquet
        prefetching off, then the previous setting again.

        DuckDB 2.0 prefetches the column chunks of a row group before decoding them, and the
        batches' row groups grow with the accounts (up to a million rows each): the plan's
        profile query peaked at 474 MB with 1M accounts and 776 MB with 2M, and it failed
        with "Out of Memory" under ``memory_limit=300MB`` instead of spilling. Without
        prefetching the same queries peaked at 164 / 176 MB in the same time (bench/NOTES.md,
        "Summary plan step"). Threads were not the cause: ``threads=1`` left 459 MB at 1M.
        The setting is global to the database, hence a block around the queries."""
        with duck_setting(self.con, "disable_parquet_prefetching", "true"):
            yield

    # ---- profile (one scan) ------------------------------------------------------------------
    def profile(self) -> SourceProfile:
        """Scan every batch once: good rows per month, bad rows, problems (with file/row).

        With ``bad_rows="error"`` any problem raises :class:`SummarySourceError` naming the
        file, the column and example rows; with ``"skip"`` the rows are counted and left out.
        """
        if self._profile is not None:
            return self._profile
        with self.whole_scan():
            self._profile = self._scan_profile()
        return self._profile

    def _scan_profile(self) -> SourceProfile:
        """:meth:`profile`'s scan and the example rows of each problem (uncached)."""
        cfg = self.cfg
        value_cols = cfg.all_value_columns
        bad_value_terms = ", ".join(
            f"count(*) FILTER (WHERE _v{i}_bad) AS bad_v{i}" for i in range(len(value_cols))
        )
        rows = self.con.execute(
            f"""
            SELECT _file, _month_raw, month_idx, count(*) AS n,
                   count(*) FILTER (WHERE _key_null) AS null_keys,
                   count(*) FILTER (WHERE _key_bad) AS bad_keys,
                   count(*) FILTER (WHERE ts IS NULL) AS bad_ts,
                   count(*) FILTER (WHERE key IS NOT NULL AND ts IS NOT NULL {self._value_ok_sql()}) AS ok,
                   max(ts) AS max_ts,
                   count(*) FILTER (WHERE _mo IS DISTINCT FROM _month_raw) AS untrimmed
                   {', ' + bad_value_terms if bad_value_terms else ''}
            FROM {VIEW} GROUP BY ALL
            """
        ).fetchall()
        names = {rank: name for name, rank in self.rank.items()}
        paths = {f.name: f.path for f in self.files}
        first, last = cfg.first_month_index, month_index(self.now_month)
        prof = SourceProfile()
        problems: dict[tuple, int] = {}

        def add(file_rank, what, count, where_sql, params=()):
            problems[(file_rank, what, where_sql, params)] = problems.get((file_rank, what, where_sql, params), 0) + count

        for rec in rows:
            file_rank, month_raw, midx, n, null_keys, bad_keys, bad_ts, ok, max_ts, untrimmed = rec[:10]
            bad_values = rec[10:]
            if untrimmed:
                prof.pushdown = False
            prof.rows += n
            if null_keys:
                add(file_rank, f"null {cfg.key_column}", null_keys, "_key_null")
            if bad_keys:
                add(file_rank, f"{cfg.key_column} not a {cfg.key_type}", bad_keys, "_key_bad")
            if bad_ts:
                add(file_rank, f"null or unparsable {cfg.timestamp_column}", bad_ts, "ts IS NULL")
            for i, count in enumerate(bad_values):
                if count:
                    add(file_rank, f"{value_cols[i]} not a {cfg.value_type(value_cols[i])}", count,
                        f"_v{i}_bad")
            month_ok = False
            if midx is None:
                add(file_rank, f"malformed {cfg.month_column} {month_raw!r} (expected YYYY-MM)", n,
                    "_month_raw IS NOT DISTINCT FROM ?", (month_raw,))
            elif midx < first:
                add(file_rank, f"{cfg.month_column} {month_raw} before first_month {cfg.first_month}", n,
                    "_month_raw = ?", (month_raw,))
            elif midx > last:
                add(file_rank, f"{cfg.month_column} {month_raw} after the current month {self.now_month}", n,
                    "_month_raw = ?", (month_raw,))
            else:
                month_ok = True
            if month_ok:
                prof.rows_per_month[midx] = prof.rows_per_month.get(midx, 0) + ok
                if ok:
                    prof.file_months.setdefault(names[file_rank], set()).add(midx)
                if ok and max_ts is not None and (prof.max_base_ts is None or max_ts > prof.max_base_ts):
                    prof.max_base_ts = max_ts
        good = sum(prof.rows_per_month.values())
        # lines the reader refused count as skipped rows too: none vanishes from the count
        prof.bad_rows = prof.rows - good + self.rejected_lines
        for (file_rank, what, where_sql, params), count in sorted(problems.items(), key=lambda kv: (kv[0][0], kv[0][1])):
            examples = self.con.execute(
                f"SELECT _row FROM {VIEW} WHERE _file = ? AND ({where_sql}) ORDER BY _row LIMIT 5",
                [file_rank, *params],
            ).fetchall()
            rows_text = ", ".join(str(r[0] + 1) for r in examples)
            prof.problems.append(f"{paths.get(names[file_rank], names[file_rank])}: {count} rows with {what} (rows {rows_text})")
        if prof.problems and cfg.bad_rows == "error":
            more = f" (and {len(prof.problems) - 10} more problems)" if len(prof.problems) > 10 else ""
            raise SummarySourceError(
                "bad account records (set bad_rows: skip to leave them out):\n  "
                + "\n  ".join(prof.problems[:10]) + more
            )
        for text in prof.problems:
            self._note(f"skipped: {text}")
        return prof

    def _value_ok_sql(self) -> str:
        return "".join(
            f" AND NOT _v{i}_bad" for i in range(len(self.cfg.all_value_columns))
        )

    def good_rows_sql(self) -> str:
        """WHERE terms selecting the rows the summary uses (valid key, month, base_ts, values)."""
        cfg = self.cfg
        return (
            f"key IS NOT NULL AND ts IS NOT NULL AND month_idx BETWEEN {int(cfg.first_month_index)} "
            f"AND {int(month_index(self.now_month))}{self._value_ok_sql()}"
        )

    # ---- winners -----------------------------------------------------------------------------
    def winners(self, lo: int, hi: int, accounts: list | None = None) -> duckdb.DuckDBPyRelation:
        """Winning record per (account, month) for months lo..hi (indexes), ordered by month
        then account: greatest base_ts, then later batch file, then later row."""
        cfg = self.cfg
        acc = ""
        # 'YYYY-MM' strings sort like months; a padded month (' 2024-01') is caught by month_idx
        params: list = [month_str(lo), month_str(hi) + "~", int(lo), int(hi)]
        if accounts is not None:
            acc = " AND list_contains(?, key)"
            params.append(list(accounts))
        # one HUGEINT orders the records of a group (base_ts, then file rank, then row):
        # arg_max on a number per value column is ~2x cheaper than on a packed struct
        # (arg_max_null: a NULL value can win)
        values = ", ".join(f"arg_max_null(v{i}, {WINNER_ORDER_SQL}) AS {quote_ident(c)}"
                           for i, c in enumerate(cfg.all_value_columns))
        sql = f"""
            SELECT key, month_idx, max(ts) AS ts, {values}
            FROM {VIEW}
            WHERE {"_mo" if self.profile().pushdown else "_month_raw"} BETWEEN ? AND ? AND month_idx BETWEEN ? AND ? AND {self.good_rows_sql()}{acc}
            GROUP BY key, month_idx
            ORDER BY month_idx, key
        """
        return self.con.sql(sql, params=params)

    def records(self) -> duckdb.DuckDBPyRelation:
        """Every good record (not de-duplicated): key, month_idx, ts. For planning."""
        return self.con.sql(f"SELECT key, month_idx, ts FROM {VIEW} WHERE {self.good_rows_sql()}")


def month_chunks(rows_per_month: dict[int, int], lo: int, hi: int, max_rows: int) -> list[tuple[int, int]]:
    """Split months lo..hi into consecutive chunks of at most ``max_rows`` rows (a month
    larger than that is a chunk of its own)."""
    chunks: list[tuple[int, int]] = []
    start, acc = lo, 0
    for m in range(lo, hi + 1):
        n = rows_per_month.get(m, 0)
        if m > start and acc + n > max_rows:
            chunks.append((start, m - 1))
            start, acc = m, 0
        acc += n
    if hi >= lo:
        chunks.append((start, hi))
    return chunks


__all__ = [
    "BatchFile",
    "Source",
    "SourceProfile",
    "SummarySourceError",
    "is_month",
    "list_batch_files",
    "month_chunks",
]
