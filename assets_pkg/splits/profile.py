"""Pass 1: profile one shard (no dagster import).

One streaming scan per shard gives, per customer, its usable pre-split and post-split
rows, per label value the same, the shard's columns and its row statistics
(``PROFILE_SCHEMA``). The allocation reads only these profiles, never the shards.

Drop order: null/empty customer id (``dropped_null_customer``), missing or unparseable
date (``dropped_bad_date``, a reject; above ``error_threshold`` the shard fails), no usable
main label (``dropped_label``). Lines the text reader rejected are ``rejected_lines``.
"""

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from assets_pkg.duck import quote_ident
from assets_pkg.inbox import check_unchanged, identity
from assets_pkg.splits.discovery import Shard
from assets_pkg.splits.params import SplitParams
from assets_pkg.splits.rows import empty_table, label_changed_sql, norm_sql, quiet, shard_error
from assets_pkg.splits.shard_io import OpenedShard, ShardError, open_shard
from assets_pkg.storage import as_path
from assets_pkg.storage.objects import remove_files

STAT_PREFIX = "stat:"
# One compact profile per shard. Row kinds:
#   customer   one row per customer with usable rows: ``pre`` / ``post`` = its pre-split /
#              post-split rows (only rows that pass the validity and label filters)
#   label      one row per label value: ``pre`` / ``post`` rows carrying it
#   column     ``customer`` = column name, ``label`` = DuckDB type, ``n`` = position
#   stat:<name>  ``n`` = rows_in, dropped_null_customer, dropped_bad_date, dropped_label,
#              label_changed (rows whose main label the TARGETS maximum changed),
#              rejected_lines, file_bytes, file_mtime_ns
PROFILE_SCHEMA = pa.schema(
    [
        ("shard", pa.string()),
        ("source", pa.string()),
        ("kind", pa.string()),
        ("customer", pa.string()),
        ("label", pa.string()),
        ("pre", pa.int64()),
        ("post", pa.int64()),
        ("n", pa.int64()),
    ]
)
_BODY_SCHEMA = pa.schema([f for f in PROFILE_SCHEMA if f.name not in ("shard", "source")])


def _bad_date_error(shard: Shard, params: SplitParams, bad: int, rows_in: int, example) -> ShardError:
    return ShardError(
        f"{shard.path}: {bad} of {rows_in} rows have a missing or unparseable date in column "
        f"{params.date_column!r} (DATE_COLUMN), more than error_threshold={params.error_threshold:.0%}; "
        f"e.g. {example!r}"
    )


def profile_shard(con, shard: Shard, params: SplitParams, signature=None, progress_callback=None,
                  rejects_path: Path | None = None, stage_path: Path | None = None) -> pa.Table:
    """Pass 1 for one shard: per customer its pre-/post-split rows, per label value the
    same, plus row statistics and the shard's columns (see ``PROFILE_SCHEMA``).

    One scan, one aggregation (two grouping sets), straight to Arrow. Only rows that
    survive the validity and label filters are profiled per customer, so the allocation
    can predict exactly how many rows pass 2 puts in each split. A text shard's parsed
    rows are staged at ``stage_path`` on the way (published only when the shard was
    profiled without error) for pass 2 to read instead of parsing it again.
    """
    quiet(con)
    before = identity(shard.path)  # a shard still being copied in fails here, not as a short profile
    opened = open_shard(con, shard, params, signature, progress_callback, stage=stage_path, write_stage=True)
    try:
        profile, stats = _profile_opened(con, opened, shard, params, rejects_path)
        check_unchanged(shard.path, before)
    except BaseException:
        opened.discard_stage()
        raise
    opened.commit_stage(rows=stats.pop("rows_arrived"))
    return profile


def _profile_opened(con, opened: OpenedShard, shard: Shard, params: SplitParams,
                    rejects_path) -> tuple[pa.Table, dict]:
    stats = {"rows_in": 0, "dropped_null_customer": 0, "dropped_bad_date": 0, "dropped_label": 0,
             "label_changed": 0}
    groups = empty_table(_BODY_SCHEMA)
    if opened.relation is not None:
        d = quote_ident(params.date_column)
        src = f"__src_{shard.key}"  # one name per shard: two shards may be profiled at once
        opened.relation.create_view(src, replace=True)
        # s: 0 = usable row, else the drop reason's code (a small integer: cheaper per row
        # than a string); grouping set (s, c) gives one row per customer and one per drop
        # reason, (s, l) one row per label value. The result is the profile's body as it is
        # (no copy in Python): per-customer rows are most of it.
        reasons = " ".join(f"WHEN {i} THEN '{STAT_PREFIX}{name}'"
                           for i, name in enumerate(("dropped_null_customer", "dropped_bad_date", "dropped_label"), 1))
        # an unparseable date for the error message: a Parquet shard can be scanned again
        # should the threshold be passed (the example costs ~10% of the query); a text
        # stream cannot, so it keeps one on the way
        rescannable = opened.reader is None
        example_sql = "NULL::VARCHAR" if rescannable else "CAST(any_value(__d_raw) FILTER (WHERE s = 2) AS VARCHAR)"
        # unlabelled (no TARGETS, no LABEL_FIELD): no row is dropped for lacking a label
        no_label = "WHEN __l IS NULL THEN 3 " if params.labelled else ""
        sql = f"""
            WITH t AS (SELECT {norm_sql(params)}, {d} AS __d_raw, {label_changed_sql(params)} AS __chg FROM {src}),
            v AS (
                SELECT CASE WHEN __c IS NULL THEN 1 WHEN __d IS NULL THEN 2 {no_label}ELSE 0
                       END::UTINYINT AS s,
                       __c, __l, __d < CAST(? AS TIMESTAMP) AS pre, __d_raw, __chg FROM t),
            w AS (
                SELECT s, CASE WHEN s = 0 THEN __c END AS c, CASE WHEN s = 0 THEN __l END AS l,
                       pre, __d_raw, __chg FROM v)
            SELECT CASE s {reasons} ELSE CASE WHEN GROUPING(l) = 1 THEN 'customer' ELSE 'label' END END AS kind,
                   c AS customer, l AS label,
                   CASE WHEN s = 0 THEN count(*) FILTER (WHERE pre) END::BIGINT AS pre,
                   CASE WHEN s = 0 THEN count(*) FILTER (WHERE NOT pre) END::BIGINT AS post,
                   CASE WHEN s <> 0 THEN count(*) END::BIGINT AS n,
                   {example_sql} AS example,
                   count(*) FILTER (WHERE __chg)::BIGINT AS changed
            FROM w GROUP BY GROUPING SETS ((s, c), (s, l))
            HAVING s = 0 OR GROUPING(l) = 1
        """
        try:
            try:
                result = con.sql(sql, params=[params.split_date]).to_arrow_table()
            except duckdb.Error as exc:
                raise shard_error(shard, exc) from exc
            # the few rows that are not per customer: labels and drop reasons
            small = result.take(pc.indices_nonzero(pc.not_equal(result.column("kind"), "customer"))).to_pylist()
            example = None
            usable = 0
            # the label rows and the drop-reason rows cover every row exactly once
            stats["label_changed"] = sum(int(row["changed"]) for row in small)
            for row in small:
                if row["kind"] == "label":
                    usable += row["pre"] + row["post"]  # every usable row has exactly one label
                else:
                    stats[row["kind"][len(STAT_PREFIX):]] = int(row["n"])
                    if row["kind"] == "stat:dropped_bad_date":
                        example = row["example"]
            stats["rows_in"] = usable + stats["dropped_null_customer"] + stats["dropped_bad_date"] + stats["dropped_label"]
            total = stats["rows_in"] + opened.rejected_lines
            if total and stats["dropped_bad_date"] / total > params.error_threshold:
                if rescannable:
                    example = (con.execute(f"SELECT CAST(__d_raw AS VARCHAR) FROM (SELECT {norm_sql(params)}, "
                                           f"{d} AS __d_raw FROM {src}) WHERE __c IS NOT NULL AND __d IS NULL LIMIT 1"
                                           ).fetchall() or [[None]])[0][0]
                raise _bad_date_error(shard, params, stats["dropped_bad_date"], total, example)
        finally:
            con.execute(f"DROP VIEW IF EXISTS {src}")
        groups = result.drop_columns(["example", "changed"])
        if groups.schema != _BODY_SCHEMA:
            groups = groups.cast(_BODY_SCHEMA)
        in_body = {r["kind"][len(STAT_PREFIX):] for r in small if r["kind"].startswith(STAT_PREFIX)}
    else:
        in_body = set()
    # rows_in is counted from the source (Parquet footer, the reader's line identity), the
    # parts from what arrived: a row lost on the way fails row_accounting
    stats["rows_arrived"] = stats["rows_in"]
    source_rows = opened.source_rows()
    stats["rows_in"] = source_rows if source_rows is not None else stats["rows_in"] + opened.rejected_lines
    stats["rejected_lines"] = opened.rejected_lines
    if rejects_path is not None:  # the lines the text reader refused, kept (none: old file removed)
        remove_files([rejects_path])
        if opened.rejected_lines:
            opened.reader.write_rejects(rejects_path)
    st = as_path(shard.path).stat()
    stats["file_bytes"] = st.st_size
    stats["file_mtime_ns"] = st.st_mtime_ns
    # the shard's columns and types (the allocation derives ONE output schema from them)
    # and the statistics the aggregation did not already give
    tail_stats = {k: v for k, v in stats.items() if k not in in_body and k != "rows_arrived"}
    tail_rows = len(opened.columns) + len(tail_stats)
    extra = {
        "kind": ["column"] * len(opened.columns) + [STAT_PREFIX + k for k in tail_stats],
        "customer": list(opened.columns) + [None] * len(tail_stats),
        "label": list(opened.types) + [None] * len(tail_stats),
        "pre": [None] * tail_rows,
        "post": [None] * tail_rows,
        "n": list(range(len(opened.columns))) + [int(v) for v in tail_stats.values()],
    }
    tail = pa.table(extra, schema=groups.schema)
    body = pa.concat_tables([groups, tail])
    n = body.num_rows
    profile = pa.table(
        {
            "shard": pa.repeat(pa.scalar(shard.key, pa.string()), n),
            "source": pa.repeat(pa.scalar(shard.name, pa.string()), n),
            **{name: body.column(name) for name in _BODY_SCHEMA.names},
        },
        schema=PROFILE_SCHEMA,
    )
    return profile, stats


def profile_stats(profile: pa.Table) -> dict:
    """{stat name: value} of one shard's profile (rows_in, dropped_*, rejected_lines, ...)."""
    out = {}
    stats = profile.filter(pc.starts_with(profile.column("kind"), STAT_PREFIX))  # a handful of rows
    for kind, n in zip(stats.column("kind").to_pylist(), stats.column("n").to_pylist()):
        out[kind[len(STAT_PREFIX):]] = n
    return out
