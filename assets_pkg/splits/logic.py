"""Temporal split logic over DuckDB: profile (pass 1), allocation, split (pass 2), consolidation.

No dagster import. Every function takes a DuckDB connection (``assets_pkg.duck.connect``)
and streams: a shard is read once per pass, rows never pass through Python one by one.

Assignment rule (DESIGN.md 4.1)
-------------------------------
* A row is *pre-split* when ``TRY_CAST(date AS TIMESTAMP) < SPLIT_DATE``.
* A customer with a pre-split row in any shard is *known*. A known customer's side is
  ``train`` when ``u < TRAIN_RATIO`` with ``u = int(md5(f"{RANDOM_SEED}:{customer}")[:8 bytes],
  big endian) / 2**64``, else ``val``. The customer id is compared as text (``CAST AS VARCHAR``
  trimmed). md5 is specified (unlike DuckDB's ``hash()``), so sides are stable across DuckDB
  versions, processes and growing data: adding a shard never moves a known customer.
* Pre-split rows go to their customer's side. Post-split rows go to ``oot`` unless the
  customer is in train (``exclude_train``) or known at all (``exclude_known``); those are
  counted as ``dropped_policy``.
* Drop order: null/empty customer id (``dropped_null_customer``), missing or unparseable
  date (``dropped_bad_date``, a reject; above ``error_threshold`` the shard fails), no usable
  main label (``dropped_label``), then policy. Lines the text reader rejected are
  ``rejected_lines``. Per shard: ``rows_in = train + val + oot + dropped_*  + rejected_lines``.

Labels: the main target is ``TARGETS[MAIN_TASK_INDEX]`` (``TARGETS`` defaults to
``LABEL_FIELD``); the output column ``LABEL_FIELD`` holds it. When every label value seen in
pass 1 (all shards) is numeric it is kept as a number; otherwise it is coded through ONE
global label map: sorted distinct values -> 0..n-1.
"""

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from assets_pkg.duck import current_setting, quote_ident, setting
from assets_pkg.splits.discovery import Shard
from assets_pkg.splits.params import SplitParams
from assets_pkg.splits.shard_io import OpenedShard, ShardError, open_shard

SPLITS = ("train", "val", "oot")
DROP_REASONS = ("dropped_null_customer", "dropped_bad_date", "dropped_label", "dropped_policy")
STAT_PREFIX = "stat:"
# One compact profile per shard. Row kinds:
#   customer   one row per customer with usable rows: ``pre`` / ``post`` = its pre-split /
#              post-split rows (only rows that pass the validity and label filters)
#   label      one row per label value: ``pre`` / ``post`` rows carrying it
#   column     ``customer`` = column name, ``label`` = DuckDB type, ``n`` = position
#   stat:<name>  ``n`` = rows_in, dropped_null_customer, dropped_bad_date, dropped_label,
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
ALLOCATION_SCHEMA = pa.schema([("customer", pa.string()), ("side", pa.string()), ("u", pa.float64())])
TWO_64 = float(2**64)


def _empty(schema: pa.Schema) -> pa.Table:
    """An empty table of ``schema`` (``Schema.empty_table()`` and ``pa.array([])`` import
    pandas: ~0.5 s of a run)."""
    return pa.Table.from_batches([], schema=schema)


# --------------------------------------------------------------------------------------------
# hashing
# --------------------------------------------------------------------------------------------
def hash_fraction(seed: int, customer: str) -> float:
    """Reference implementation of the salted hash (the SQL below must agree)."""
    digest = hashlib.md5(f"{seed}:{customer}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def side_of(seed: int, ratio: float, customer: str) -> str:
    return "train" if hash_fraction(seed, customer) < ratio else "val"


_FRACTION_SQL = "CAST(('0x' || substr(md5(CAST(? AS VARCHAR) || ':' || customer), 1, 16))::UBIGINT AS DOUBLE) / 18446744073709551616.0"


# --------------------------------------------------------------------------------------------
# pass 1: profile
# --------------------------------------------------------------------------------------------
def text_key_sql(expr: str) -> str:
    """``expr`` as the text every pass compares: ``NULLIF(TRIM(CAST(expr AS VARCHAR)), '')``.

    DuckDB's ``trim`` removes the Unicode space separators (U+0020, U+00A0, U+2000..., the
    only ASCII one is the space). An ASCII value (as many bytes as characters) that neither
    starts nor ends with a space is therefore its own trim: testing that first is about
    1.25x cheaper per row than trimming every value of a high-cardinality id column, and
    gives the same text (a property test compares both)."""
    x = f"CAST({expr} AS VARCHAR)"
    return (f"NULLIF(CASE WHEN {x} LIKE ' %' OR {x} LIKE '% ' OR strlen({x}) <> length({x}) "
            f"THEN TRIM({x}) ELSE {x} END, '')")


def _norm_sql(params: SplitParams) -> str:
    """Columns every pass derives from a shard: customer text, timestamp, label text."""
    c, d, m = (quote_ident(x) for x in (params.group_id_column, params.date_column, params.main_target))
    return f"{text_key_sql(c)} AS __c, TRY_CAST({d} AS TIMESTAMP) AS __d, {text_key_sql(m)} AS __l"


def quiet(con) -> None:
    """No DuckDB progress bar on the terminal (Dagster logs carry progress)."""
    con.execute("SET enable_progress_bar = false")


def _shard_error(shard: Shard, exc: Exception) -> ShardError:
    """A DuckDB error as a ShardError that names the shard's file."""
    text = str(exc)
    return ShardError(text if str(shard.path) in text else f"{shard.path}: {text}")


def _run(con, sql: str, shard: Shard, parameters=None):
    try:
        return con.execute(sql, parameters or [])
    except duckdb.Error as exc:
        raise _shard_error(shard, exc) from exc


def joins_built_on_allocation(con):
    """Within this block DuckDB builds each hash join on its right side as written (the
    allocation, the label map) instead of flipping it.

    DuckDB knows no row count for a streamed (text) shard and then builds the join's hash
    table on the shard: every row with all its columns (~110 MB for a 500k-row csv shard,
    and slower) instead of the customers table. ``build_side_probe_side`` is the optimizer
    that flips the sides. The setting is global, so a pass 2 that splits shards on several
    cursors sets it once around all of them; nested blocks do nothing."""
    names = [n for n in (current_setting(con, "disabled_optimizers") or "").split(",") if n.strip()]
    if "build_side_probe_side" not in names:
        names.append("build_side_probe_side")
    return setting(con, "disabled_optimizers", ",".join(names))


def one_thread_per_statement(con):
    """Within this block each DuckDB statement runs on the thread that executes it.

    DuckDB's ``COPY ... PARTITION_BY`` writes rows in the order its threads deliver them,
    whatever ``preserve_insertion_order`` says: a shard read by two threads (several row
    groups, or a stream of record batches) would come out in a different order on every
    run. With one thread per statement the output follows the input, and the two cores
    still work when two shards are split at once (:class:`ShardPool`, one cursor each).
    ``threads`` is global, so this wraps a whole pass; nested blocks do nothing."""
    return setting(con, "threads", 1)


def _pass2_parameters(params: SplitParams) -> dict:
    """The values :func:`_prepare_labelled`'s SELECT binds."""
    return {"split": params.split_date, "strict": params.excludes_known}


def _run_pass2(con, sql: str, shard: Shard, parameters) -> list:
    """Run a pass-2 statement with the hash joins built on the allocation and label map;
    the shard's view (:func:`_prepare_labelled`) is dropped afterwards, failed or not."""
    try:
        with joins_built_on_allocation(con), one_thread_per_statement(con):
            return _run(con, sql, shard, parameters).fetchall()
    finally:
        con.execute(f"DROP VIEW IF EXISTS {_pass2_view(shard)}")


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
    opened = open_shard(con, shard, params, signature, progress_callback, stage=stage_path, write_stage=True)
    try:
        profile, stats = _profile_opened(con, opened, shard, params, rejects_path)
    except BaseException:
        opened.discard_stage()
        raise
    opened.commit_stage(rows=stats.pop("rows_arrived"))
    return profile


def _profile_opened(con, opened: OpenedShard, shard: Shard, params: SplitParams,
                    rejects_path) -> tuple[pa.Table, dict]:
    stats = {"rows_in": 0, "dropped_null_customer": 0, "dropped_bad_date": 0, "dropped_label": 0}
    groups = _empty(_BODY_SCHEMA)
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
        sql = f"""
            WITH t AS (SELECT {_norm_sql(params)}, {d} AS __d_raw FROM {src}),
            v AS (
                SELECT CASE WHEN __c IS NULL THEN 1 WHEN __d IS NULL THEN 2 WHEN __l IS NULL THEN 3 ELSE 0
                       END::UTINYINT AS s,
                       __c, __l, __d < CAST(? AS TIMESTAMP) AS pre, __d_raw FROM t),
            w AS (
                SELECT s, CASE WHEN s = 0 THEN __c END AS c, CASE WHEN s = 0 THEN __l END AS l,
                       pre, __d_raw FROM v)
            SELECT CASE s {reasons} ELSE CASE WHEN GROUPING(l) = 1 THEN 'customer' ELSE 'label' END END AS kind,
                   c AS customer, l AS label,
                   CASE WHEN s = 0 THEN count(*) FILTER (WHERE pre) END::BIGINT AS pre,
                   CASE WHEN s = 0 THEN count(*) FILTER (WHERE NOT pre) END::BIGINT AS post,
                   CASE WHEN s <> 0 THEN count(*) END::BIGINT AS n,
                   {example_sql} AS example
            FROM w GROUP BY GROUPING SETS ((s, c), (s, l))
            HAVING s = 0 OR GROUPING(l) = 1
        """
        try:
            try:
                result = con.sql(sql, params=[params.split_date]).to_arrow_table()
            except duckdb.Error as exc:
                raise _shard_error(shard, exc) from exc
            # the few rows that are not per customer: labels and drop reasons
            small = result.take(pc.indices_nonzero(pc.not_equal(result.column("kind"), "customer"))).to_pylist()
            example = None
            usable = 0
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
                    example = (con.execute(f"SELECT CAST(__d_raw AS VARCHAR) FROM (SELECT {_norm_sql(params)}, "
                                           f"{d} AS __d_raw FROM {src}) WHERE __c IS NOT NULL AND __d IS NULL LIMIT 1"
                                           ).fetchall() or [[None]])[0][0]
                raise _bad_date_error(shard, params, stats["dropped_bad_date"], total, example)
        finally:
            con.execute(f"DROP VIEW IF EXISTS {src}")
        groups = result.drop_columns(["example"])
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
        Path(rejects_path).unlink(missing_ok=True)
        if opened.rejected_lines:
            opened.reader.write_rejects(rejects_path)
    st = Path(shard.path).stat()
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


_INTEGERS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "BOOLEAN"}
_TEMPORAL = {"DATE", "TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S"}


def common_type(types: list[str]) -> str:
    """The one type a column gets in every output shard (shards may disagree: a csv
    shard's date is inferred as DATE, a parquet shard may store text)."""
    distinct = set(types)
    if len(distinct) == 1:
        return types[0]
    if distinct <= _INTEGERS:
        return "BIGINT"
    if all(t in _INTEGERS or t in ("FLOAT", "DOUBLE") or t.startswith("DECIMAL") for t in distinct):
        return "DOUBLE"
    if distinct <= _TEMPORAL:
        return "TIMESTAMP"
    return "VARCHAR"


def output_schema(small: list[tuple]) -> list[list[str]]:
    """[[column, type], ...] over all profiled shards, in first-seen order, from the
    profiles' non-customer rows (shard, source, kind, customer, label, n, ...): a
    ``column`` row holds the name in ``customer``, the type in ``label``, the position in ``n``."""
    # shards without rows (header-only: every column inferred as text) do not vote
    with_rows = {r[0] for r in small if r[2] == "stat:rows_in" and r[5] > 0}
    columns = sorted((r for r in small if r[2] == "column" and (r[0] in with_rows or not with_rows)),
                     key=lambda r: (r[0], r[5]))
    order: list[str] = []
    types: dict[str, list[str]] = {}
    for r in columns:
        name, dtype = r[3], r[4]
        if name not in types:
            order.append(name)
            types[name] = []
        types[name].append(dtype)
    return [[name, common_type(types[name])] for name in order]


def profile_stats(profile: pa.Table) -> dict:
    """{stat name: value} of one shard's profile (rows_in, dropped_*, rejected_lines, ...)."""
    out = {}
    stats = profile.filter(pc.starts_with(profile.column("kind"), STAT_PREFIX))  # a handful of rows
    for kind, n in zip(stats.column("kind").to_pylist(), stats.column("n").to_pylist()):
        out[kind[len(STAT_PREFIX):]] = n
    return out


# --------------------------------------------------------------------------------------------
# allocation
# --------------------------------------------------------------------------------------------
@dataclass
class Allocation:
    customers: pa.Table  # customer, side, u  (known customers only)
    state: dict  # params, label map, per-shard expectations and fingerprints (JSON-able)


def build_allocation(con, profile_paths: list[Path], params: SplitParams, previous_state: dict | None = None) -> Allocation:
    """Known customers -> train/val, the global label map, and what pass 2 must produce.

    ``state["shards"][key]`` holds the expected rows per split and drop reason (pass 2 and
    the row_accounting check compare against it) and a fingerprint of everything the
    shard's output depends on (settings, its customers' sides, its labels' codes): an
    output built under another fingerprint is stale.
    """
    quiet(con)
    paths = [str(p) for p in profile_paths]
    _check_profile_schema(paths)
    if paths:
        # a view, not a table: each query scans only the columns it needs, memory stays bounded
        con.read_parquet(paths, union_by_name=True).create_view("__prof", replace=True)
    else:
        con.from_arrow(_empty(PROFILE_SCHEMA)).create_view("__prof", replace=True)
    strict = params.excludes_known
    # one scan of the per-customer rows: every customer once, known = any pre-split row
    con.execute(
        "CREATE OR REPLACE TEMP TABLE __cust AS SELECT customer, bool_or(pre > 0) AS known, bool_or(post > 0) AS has_post "
        "FROM __prof WHERE kind = 'customer' GROUP BY customer"
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE __alloc2 AS
        SELECT customer, CASE WHEN u < ? THEN 'train' ELSE 'val' END AS side, u
        FROM (SELECT customer, {_FRACTION_SQL} AS u FROM __cust WHERE known)""",
        [params.train_ratio, params.random_seed],
    )
    customers = con.sql("SELECT customer, side, u FROM __alloc2 ORDER BY customer").to_arrow_table()
    customers = customers.cast(ALLOCATION_SCHEMA)
    oot_customers = con.execute(
        "SELECT count(*) FROM __cust c LEFT JOIN __alloc2 a USING (customer) "
        "WHERE c.has_post AND NOT (coalesce(a.side = 'train', false) OR (? AND a.side IS NOT NULL))",
        [strict],
    ).fetchall()[0][0]
    con.execute("DROP TABLE __cust")

    # everything but the per-customer rows is small: labels, columns, statistics
    small = con.execute(
        "SELECT shard, source, kind, customer, label, n, pre, post FROM __prof WHERE kind <> 'customer'"
    ).fetchall()
    labels = label_spec([r[4] for r in small if r[2] == "label" and r[4] is not None])
    _register_labels(con, labels)
    schema = output_schema(small)
    shards = _expectations(con, params, labels, schema, small)
    train = int(pc.sum(pc.equal(customers.column("side"), "train")).as_py() or 0)
    state = {
        "params": params.allocation_key(),
        "params_digest": params.digest(),
        "labels": labels,
        "schema": schema,
        "shards": shards,
        "customers": {"known": customers.num_rows, "train": train, "val": customers.num_rows - train,
                      "oot": int(oot_customers)},
    }
    if previous_state:
        old = previous_state.get("shards", {})
        state["changed_shards"] = sorted(
            k for k, v in shards.items() if k in old and old[k].get("fingerprint") != v["fingerprint"]
        )
    else:
        state["changed_shards"] = []
    return Allocation(customers, state)


def _check_profile_schema(paths: list[str]) -> None:
    """Every profile must have this code's columns (reads only the footers): a profile
    written by an older version (one row per customer and pre|post, no ``pre``/``post``
    columns) would otherwise be misread."""
    import pyarrow.parquet as pq

    old = [p for p in paths if not set(PROFILE_SCHEMA.names) <= set(pq.read_schema(p).names)]
    if old:
        raise ValueError(
            f"{len(old)} splits/shard_profile file(s) have an older layout (columns "
            f"{', '.join(pq.read_schema(old[0]).names)}; expected {', '.join(PROFILE_SCHEMA.names)}), e.g. {old[0]}; "
            "re-materialize splits/shard_profile for those shards, then splits/customer_allocation"
        )


def label_spec(values: list[str]) -> dict:
    """Numeric labels stay numbers; otherwise ONE map: sorted distinct values -> 0..n-1."""
    values = sorted(set(values))
    numbers = []
    for v in values:
        try:
            numbers.append(float(v))
        except ValueError:
            numbers = None
            break
    if numbers is not None and values:
        integral = all(x == int(x) for x in numbers)
        return {"mode": "numeric", "type": "BIGINT" if integral else "DOUBLE", "map": {}}
    return {"mode": "map", "type": "INTEGER", "map": {v: i for i, v in enumerate(values)}}


def _register_labels(con, labels: dict) -> None:
    table = pa.table(
        {"value": list(labels["map"].keys()), "code": list(labels["map"].values())},
        schema=pa.schema([("value", pa.string()), ("code", pa.int32())]),
    )
    con.execute("DROP TABLE IF EXISTS __labels")
    con.from_arrow(table).create("__labels")


def _label_sql(labels: dict) -> str:
    if labels["mode"] == "numeric":
        return f"TRY_CAST(__l AS DOUBLE)::{labels['type']}"
    return "__lm.code"


def _expectations(con, params: SplitParams, labels: dict, schema: list, small: list[tuple]) -> dict:
    """Per shard: rows expected in each split and per drop reason, and a fingerprint.

    One scan of the per-customer profile rows joined with the allocation gives, per shard
    and side (train | val | none), the pre-split and post-split rows and customers and an
    order-independent digest of (customer, side, has pre rows, has post rows), hashed
    column by column (no string concatenation: 2x faster over millions of profile rows).
    DuckDB's hash() may change between DuckDB versions: after an upgrade every shard looks
    stale once and is re-split (correct, only slower)."""
    strict = params.excludes_known
    rows = con.execute(
        """
        SELECT p.shard, a.side,
               sum(p.pre)::BIGINT, count(*) FILTER (WHERE p.pre > 0),
               sum(p.post)::BIGINT, count(*) FILTER (WHERE p.post > 0),
               sum(hash(p.customer, coalesce(a.side, '-'), p.pre > 0, p.post > 0)::HUGEINT)
        FROM __prof p LEFT JOIN __alloc2 a USING (customer)
        WHERE p.kind = 'customer'
        GROUP BY ALL ORDER BY ALL
        """
    ).fetchall()
    shards: dict[str, dict] = {}
    digests: dict[str, int] = {}
    shard_labels: dict[str, list[str]] = {}
    for shard, source, kind, _name, label, n, pre, post in small:
        entry = shards.setdefault(shard, _empty_expectation())
        entry["source"] = source
        if kind.startswith(STAT_PREFIX):
            entry["stats"][kind[len(STAT_PREFIX):]] = int(n)
        elif kind == "label":
            own = shard_labels.setdefault(shard, [])
            if pre:
                own.append(f"label_pre|{label}")
            if post:
                own.append(f"label_post|{label}")
    for shard, side, pre_rows, pre_customers, post_rows, post_customers, digest in rows:
        entry = shards.setdefault(shard, _empty_expectation())
        if pre_rows:  # pre-split rows go to their customer's side (every one is known)
            dest = side or "unallocated"
            entry["rows"][dest] = entry["rows"].get(dest, 0) + int(pre_rows)
            if dest in SPLITS:
                entry["customers"][dest] += int(pre_customers)
        if post_rows:
            dest = "dropped_policy" if side == "train" or (strict and side is not None) else "oot"
            entry["rows"][dest] += int(post_rows)
            if dest == "oot":
                entry["customers"]["oot"] += int(post_customers)
        digests[shard] = digests.get(shard, 0) + int(digest)
    label_digest = hashlib.md5(json.dumps([labels, schema], sort_keys=True).encode()).hexdigest()
    for shard, entry in shards.items():
        s = entry["stats"]
        entry["rows"]["dropped_null_customer"] = s.get("dropped_null_customer", 0)
        entry["rows"]["dropped_bad_date"] = s.get("dropped_bad_date", 0)
        entry["rows"]["dropped_label"] = s.get("dropped_label", 0)
        entry["rows"]["rejected_lines"] = s.get("rejected_lines", 0)
        entry["rows_in"] = s.get("rows_in", 0)
        own_labels = ",".join(sorted(shard_labels.get(shard, [])))
        entry["fingerprint"] = hashlib.md5(
            f"{params.digest()}|{label_digest}|{params.output_format}|{digests.get(shard, 0)}|{own_labels}".encode()
        ).hexdigest()
    return shards


def _empty_expectation() -> dict:
    return {
        "source": None,
        "rows": {k: 0 for k in (*SPLITS, *DROP_REASONS)},
        "customers": {k: 0 for k in SPLITS},
        "stats": {},
    }


def output_label_rates(con, warehouse: Path, params: SplitParams, labels: dict) -> dict:
    """Label statistics per split over the written shards: rows per label value, its share
    and, for numeric labels, the mean (the positive rate of a 0/1 label). One column scan."""
    names = {code: value for value, code in labels.get("map", {}).items()}
    out: dict = {}
    for split in SPLITS:
        files = [p for k, p in sorted(shard_output_files(warehouse, split).items()) if k.isdigit()]
        rel = files_relation(con, files, [params.label_field])
        if rel is None:
            out[split] = {"rows": 0, "by_label": {}, "share": {}}
            continue
        rel.create_view("__labels_out", replace=True)
        rows = con.execute(
            f"SELECT {quote_ident(params.label_field)} AS v, count(*) FROM __labels_out GROUP BY 1 ORDER BY 1"
        ).fetchall()
        total = sum(n for _, n in rows) or 1
        by_label = {str(names.get(v, v)): int(n) for v, n in rows}
        entry = {"rows": sum(n for _, n in rows), "by_label": by_label,
                 "share": {k: round(n / total, 6) for k, n in by_label.items()}}
        if labels["mode"] == "numeric":
            entry["mean"] = round(sum(float(v) * n for v, n in rows if v is not None) / total, 6)
        out[split] = entry
    return out


# --------------------------------------------------------------------------------------------
# pass 2: split one shard
# --------------------------------------------------------------------------------------------
@dataclass
class ShardSplit:
    shard: Shard
    counts: dict  # rows_in, train, val, oot, dropped_*, rejected_lines
    columns: list[str] = field(default_factory=list)
    table: str | None = None  # DuckDB temp table holding the labelled rows with __split

    def relation(self, con, split: str):
        """The rows of one split (a DuckDB relation, streamed by the writer)."""
        if self.table is None:
            return None
        return con.sql(f"SELECT * EXCLUDE (__split) FROM {self.table} WHERE __split = '{split}'")

    def drop(self, con) -> None:
        if self.table is not None:
            con.execute(f"DROP TABLE IF EXISTS {self.table}")
            self.table = None


def load_allocation(con, customers: pa.Table | Path | str, state: dict, params: SplitParams) -> None:
    """Register the allocation (customers table + label map) for :func:`split_shard`."""
    if state.get("params_digest") != params.digest():
        raise ValueError(
            "splits/customer_allocation was built with other settings "
            f"({state.get('params')}) than this run ({params.allocation_key()}); "
            "re-materialize splits/customer_allocation"
        )
    # a table of the database, not TEMP: every cursor of a concurrent pass 2 joins with it
    if isinstance(customers, pa.Table):
        con.from_arrow(customers.select(["customer", "side"])).create_view("__pass2_customers", replace=True)
        con.execute("CREATE OR REPLACE TABLE __pass2_alloc AS SELECT * FROM __pass2_customers")
        con.execute("DROP VIEW __pass2_customers")
    else:
        con.execute("CREATE OR REPLACE TABLE __pass2_alloc AS SELECT customer, side FROM read_parquet(?)", [str(customers)])
    _register_labels(con, state["labels"])


def _pass2_view(shard: Shard) -> str:
    return f"__src2_{shard.key}"


def _prepare_labelled(con, opened: OpenedShard, params: SplitParams, labels: dict, schema,
                      fail_fast: bool) -> str:
    """Register the shard (cast to the global output schema) as ``__src2_<key>`` (views are
    shared by every cursor, and two shards may be split at once) and return the
    SELECT that labels each row and assigns ``__split``. With ``fail_fast`` a label or a
    pre-split customer the allocation never saw raises inside DuckDB (``error()``)."""
    label_col = params.label_field
    relation = opened.relation
    if schema:
        present = dict(zip(opened.columns, opened.types))
        if [(n, present.get(n)) for n, _ in schema] != [tuple(x) for x in schema] or len(present) != len(schema):
            relation = relation.project(", ".join(
                (quote_ident(name) if present.get(name) == dtype
                 else f"CAST({quote_ident(name)} AS {dtype})" if name in present else f"CAST(NULL AS {dtype})")
                + f" AS {quote_ident(name)}"
                for name, dtype in schema
            ))
        columns = [name for name, _ in schema]
    else:
        columns = opened.columns
    relation.create_view(_pass2_view(opened.shard), replace=True)
    exclude = ["__c", "__d", "__l"]
    if label_col in columns:
        star = f"t.* EXCLUDE ({', '.join(exclude)}) REPLACE ({_label_sql(labels)} AS {quote_ident(label_col)})"
    else:
        star = f"t.* EXCLUDE ({', '.join(exclude)}), {_label_sql(labels)} AS {quote_ident(label_col)}"
    label_join = "LEFT JOIN __labels __lm ON __lm.value = t.__l" if labels["mode"] == "map" else ""
    unseen = "(__lm.code IS NULL)" if labels["mode"] == "map" else "(TRY_CAST(__l AS DOUBLE) IS NULL)"
    stale = "The shard changed after splits/shard_profile ran; re-materialize its profile and splits/customer_allocation"
    if fail_fast:
        on_unseen = f"error('label value never seen in pass 1: ' || t.__l || '. {stale}')"
        on_unallocated = f"coalesce(a.side, error('pre-split customer missing from the allocation: ' || t.__c || '. {stale}'))"
    else:
        on_unseen = "'unseen_label:' || t.__l"
        on_unallocated = "coalesce(a.side, 'unallocated:' || t.__c)"
    return f"""
        WITH t AS (SELECT *, {_norm_sql(params)} FROM {_pass2_view(opened.shard)})
        SELECT {star},
            CASE WHEN t.__c IS NULL THEN 'dropped_null_customer'
                 WHEN t.__d IS NULL THEN 'dropped_bad_date'
                 WHEN t.__l IS NULL THEN 'dropped_label'
                 WHEN {unseen} THEN {on_unseen}
                 WHEN t.__d < CAST($split AS TIMESTAMP) THEN {on_unallocated}
                 WHEN a.side = 'train' OR ($strict AND a.side IS NOT NULL) THEN 'dropped_policy'
                 ELSE 'oot' END AS __split
        FROM t LEFT JOIN __pass2_alloc a ON a.customer = t.__c {label_join}
    """


def split_shard_to_parquet(con, shard: Shard, params: SplitParams, labels: dict, targets: dict,
                           expected: dict | None, signature=None, progress_callback=None,
                           schema: list | None = None, stage_path: Path | None = None) -> dict:
    """Pass 2 for one shard, parquet output, in ONE streaming scan: DuckDB writes the three
    splits at once (``COPY ... PARTITION_BY``) into a temp folder beside the outputs; each
    file is then published with ``os.replace``; a split without rows deletes its old file.

    Returns the counts; rows per split come from the written files, the drop counts from
    pass 1 (``expected``), and written rows must equal pass 1's prediction.
    """
    import shutil
    import uuid

    quiet(con)
    opened: OpenedShard = open_shard(con, shard, params, signature, progress_callback, stage=stage_path)
    written = {k: 0 for k in SPLITS}
    sizes = {k: 0 for k in SPLITS}
    parent = Path(targets["train"]).parent.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".{shard.key}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        if opened.relation is not None:
            select = _prepare_labelled(con, opened, params, labels, schema, fail_fast=True)
            sql = f"""
                COPY (SELECT * FROM ({select}) WHERE __split IN ('train', 'val', 'oot'))
                TO '{_escape(str(tmp))}'
                (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, PARTITION_BY (__split), WRITE_PARTITION_COLUMNS false,
                 RETURN_STATS)
            """
            stats = _run_pass2(con, sql, shard, _pass2_parameters(params))
            by_split: dict[str, list[Path]] = {}
            for filename, count, size, *_rest, keys, _info in stats:
                split = keys["__split"]
                by_split.setdefault(split, []).append(Path(filename))
                written[split] += int(count)
                sizes[split] += int(size)
            if any(len(v) > 1 for v in by_split.values()):
                raise RuntimeError(f"{shard.path}: DuckDB wrote several files for one split: {by_split}")
        counts = _pass2_counts(shard, written, expected, opened.rejected_lines)
        for split in SPLITS:
            final = Path(targets[split])
            final.parent.mkdir(parents=True, exist_ok=True)
            files = list((tmp / f"__split={split}").glob("*.parquet")) if tmp.exists() else []
            if files and written[split]:
                os.replace(files[0], final)
            else:
                final.unlink(missing_ok=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    counts["bytes"] = sizes
    return counts


def _pass2_counts(shard: Shard, written: dict, expected: dict | None, rejected: int) -> dict:
    counts = {**{k: 0 for k in SPLITS}, **{k: 0 for k in DROP_REASONS}, **written, "rejected_lines": rejected}
    if expected is not None:
        mismatch = {k: (written[k], expected.get(k, 0)) for k in SPLITS if written[k] != expected.get(k, 0)}
        if mismatch:
            raise ShardError(
                f"{shard.path}: rows per split {mismatch} (written, predicted by pass 1) differ: the shard "
                "changed after splits/shard_profile ran; re-materialize its profile and splits/customer_allocation"
            )
        for k in DROP_REASONS:
            counts[k] = int(expected.get(k, 0))
    counts["rows_in"] = sum(counts[k] for k in (*SPLITS, *DROP_REASONS)) + rejected
    return counts


def _escape(text: str) -> str:
    return text.replace("'", "''")


def split_shard(con, shard: Shard, params: SplitParams, labels: dict, signature=None,
                progress_callback=None, schema: list | None = None, stage_path: Path | None = None) -> ShardSplit:
    """Pass 2 for one shard: label, assign, and keep the rows in a temp table.

    Needs :func:`load_allocation` first. Raises ShardError when the shard holds a label or a
    pre-split customer the allocation never saw (the shard changed after pass 1).
    """
    quiet(con)
    opened: OpenedShard = open_shard(con, shard, params, signature, progress_callback, stage=stage_path)
    counts = {"rows_in": 0, **{k: 0 for k in SPLITS}, **{k: 0 for k in DROP_REASONS}}
    table = f"__split_{shard.key}"
    if opened.relation is None:
        counts["rejected_lines"] = opened.rejected_lines
        counts["rows_in"] = opened.rejected_lines
        return ShardSplit(shard, counts)
    select = _prepare_labelled(con, opened, params, labels, schema, fail_fast=False)
    sql = f"CREATE OR REPLACE TEMP TABLE {table} AS {select}"
    _run_pass2(con, sql, shard, _pass2_parameters(params))
    found = dict(con.execute(f"SELECT __split, count(*) FROM {table} GROUP BY 1").fetchall())
    unseen_labels = sorted(k.split(":", 1)[1] for k in found if k.startswith("unseen_label:"))
    unallocated = sorted(k.split(":", 1)[1] for k in found if k.startswith("unallocated:"))
    if unseen_labels or unallocated:
        con.execute(f"DROP TABLE {table}")
        what = []
        if unseen_labels:
            what.append(f"label value(s) never seen in pass 1: {unseen_labels[:10]}")
        if unallocated:
            what.append(f"{len(unallocated)} pre-split customer(s) missing from the allocation, e.g. {unallocated[:5]}")
        raise ShardError(
            f"{shard.path}: {'; '.join(what)}. The shard changed after splits/shard_profile ran; "
            "re-materialize splits/shard_profile for it and splits/customer_allocation"
        )
    rows_in = sum(found.values())
    rejected = opened.rejected_lines
    bad = found.get("dropped_bad_date", 0)
    if rows_in + rejected and bad / (rows_in + rejected) > params.error_threshold:
        con.execute(f"DROP TABLE {table}")
        raise ShardError(
            f"{shard.path}: {bad} of {rows_in + rejected} rows have a missing or unparseable date in column "
            f"{params.date_column!r} (DATE_COLUMN), more than error_threshold={params.error_threshold:.0%}"
        )
    counts.update({k: int(v) for k, v in found.items()})
    counts["rejected_lines"] = rejected
    counts["rows_in"] = rows_in + rejected
    columns = [c for c in con.sql(f"SELECT * FROM {table} LIMIT 0").columns if c != "__split"]
    return ShardSplit(shard, counts, columns, table)


# --------------------------------------------------------------------------------------------
# output files
# --------------------------------------------------------------------------------------------
def output_folder(warehouse: Path, split: str) -> Path:
    return Path(warehouse) / "splits" / split


def shard_output_files(warehouse: Path, split: str) -> dict[str, Path]:
    """{5-digit key: file} of one split's materialized shards (any format)."""
    from assets_pkg.splits.discovery import parse_shard_name, shard_key

    folder = output_folder(warehouse, split)
    out = {}
    if folder.is_dir():
        for p in sorted(folder.iterdir()):
            if p.name.startswith("."):
                continue
            parsed = parse_shard_name(p.name)
            if isinstance(parsed, str):
                out[p.name] = p  # not a shard name: shard_mapping reports it
            else:
                out[shard_key(parsed[0])] = p
    return out


def count_file_rows(con, path: Path) -> int:
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    return sum(b.num_rows for b in _text_batches(path))


def _text_batches(path: Path):
    from assets_pkg.reader import StreamingReader

    return StreamingReader(path, continue_on_error=False).to_record_batch_reader()


def files_relation(con, files: list[Path], columns: list[str] | None = None):
    """One relation over output shard files (parquet scanned by DuckDB, text via the reader)."""
    files = [Path(f) for f in files]
    cols = ", ".join(quote_ident(c) for c in columns) if columns else "*"
    if not files:
        return None
    if all(f.suffix == ".parquet" for f in files):
        rel = con.read_parquet([str(f) for f in files], union_by_name=True)
        return rel.project(cols) if columns else rel
    parts = []
    for i, f in enumerate(files):
        name = f"__files_{i}"
        rel = con.from_arrow(_text_batches(f))
        rel.create_view(name, replace=True)
        parts.append(f"SELECT {cols} FROM {name}")
    return con.sql(" UNION ALL BY NAME ".join(parts))
