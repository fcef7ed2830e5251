"""The allocation: known customers -> train|val, the ONE global label map, the output
schema and what pass 2 must produce per shard; and the split manifest (no dagster import).

A customer with a pre-split row in any shard is *known* and goes to its hashed side
(:mod:`assets_pkg.splits.hashing`). Labels (optional: none
without ``TARGETS`` and ``LABEL_FIELD``): with several ``TARGETS`` the main label is the
row-wise maximum of the targets other than ``TARGETS[MAIN_TASK_INDEX]`` (as the original
builds it), with one the target itself (``TARGETS`` defaults to ``LABEL_FIELD``); the
output column ``LABEL_FIELD`` (default: the main target's own column) holds it. When every label value seen in pass 1 (all shards) is numeric it
is kept as a number; otherwise it is coded through one label map: sorted distinct values
-> 0..n-1.
"""

import datetime as dt
import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from assets_pkg.splits.hashing import FRACTION_SQL
from assets_pkg.splits.outputs import parquet_relation
from assets_pkg.splits.params import SplitParams
from assets_pkg.splits.profile import PROFILE_SCHEMA, STAT_PREFIX
from assets_pkg.splits.rows import DROP_REASONS, SPLITS, empty_table, quiet
from assets_pkg.storage import as_path, is_remote, local_scratch
from assets_pkg.storage.arrow import fetch

# no TARGETS, no LABEL_FIELD: no label column is coded or written
UNLABELLED = {"mode": "none", "type": None, "map": {}}
ALLOCATION_SCHEMA = pa.schema([("customer", pa.string()), ("side", pa.string()), ("u", pa.float64())])


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
    paths = [as_path(p) for p in profile_paths]
    if not paths or not is_remote(paths[0]):
        return _build_allocation(con, paths, params, previous_state)
    # profiles in an object store: one concurrent download each into scratch, then DuckDB
    # scans them as local files, bounded by its memory limit like the local root (a pyarrow
    # dataset scan buffers read-ahead batches outside that limit: +200 MB at 10M rows);
    # the three scans below then read local bytes instead of three rounds of ranged GETs
    with tempfile.TemporaryDirectory(dir=local_scratch("splits_profiles")) as folder:
        local = fetch({f"{i:05d}-{p.name}": p for i, p in enumerate(paths)}, Path(folder))
        shown = {str(copy): str(p) for copy, p in zip(local.values(), paths)}
        try:
            return _build_allocation(con, list(local.values()), params, previous_state, shown)
        finally:
            con.execute("DROP VIEW IF EXISTS __prof")


def _build_allocation(con, paths: list, params: SplitParams, previous_state: dict | None,
                      shown: dict | None = None) -> Allocation:
    paths = [str(p) for p in paths]
    _check_profile_schema(paths, shown or {})
    if paths:
        # a view, not a table: each query scans only the columns it needs, memory stays bounded
        parquet_relation(con, [as_path(p) for p in paths]).create_view("__prof", replace=True)
    else:
        con.from_arrow(empty_table(PROFILE_SCHEMA)).create_view("__prof", replace=True)
    strict = params.excludes_known
    # one scan of the per-customer rows: every customer once, known = any pre-split row
    con.execute(
        "CREATE OR REPLACE TEMP TABLE __cust AS SELECT customer, bool_or(pre > 0) AS known, bool_or(post > 0) AS has_post "
        "FROM __prof WHERE kind = 'customer' GROUP BY customer"
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE __alloc2 AS
        SELECT customer, CASE WHEN u < ? THEN 'train' ELSE 'val' END AS side, u
        FROM (SELECT customer, {FRACTION_SQL} AS u FROM __cust WHERE known)""",
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
    labels = (label_spec([r[4] for r in small if r[2] == "label" and r[4] is not None]) if params.labelled
              else UNLABELLED)
    register_labels(con, labels)
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


def _check_profile_schema(paths: list[str], shown: dict) -> None:
    """Every profile must have this code's columns (reads only the footers): a profile
    written by an older version (one row per customer and pre|post, no ``pre``/``post``
    columns) would otherwise be misread. ``shown``: local copy -> the object it came from."""
    from assets_pkg.storage.arrow import parquet_file

    def names(path: str) -> list[str]:
        return parquet_file(as_path(path)).schema_arrow.names

    old = [p for p in paths if not set(PROFILE_SCHEMA.names) <= set(names(p))]
    if old:
        raise ValueError(
            f"{len(old)} splits/shard_profile file(s) have an older layout (columns "
            f"{', '.join(names(old[0]))}; expected {', '.join(PROFILE_SCHEMA.names)}), e.g. {shown.get(old[0], old[0])}; "
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


def register_labels(con, labels: dict) -> None:
    table = pa.table(
        {"value": list(labels["map"].keys()), "code": list(labels["map"].values())},
        schema=pa.schema([("value", pa.string()), ("code", pa.int32())]),
    )
    con.execute("DROP TABLE IF EXISTS __labels")
    con.from_arrow(table).create("__labels")


def _expectations(con, params: SplitParams, labels: dict, schema: list, small: list[tuple]) -> dict:
    """Per shard: rows expected in each split and per drop reason, and a fingerprint.

    One scan of the per-customer profile rows joined with the allocation gives, per shard
    and side (train | val | none), the pre-split and post-split rows and customers and an
    order-independent digest of (customer, side, has pre rows, has post rows), hashed
    column by column (cheaper than concatenating the columns into one string).
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


def manifest_for(allocation: Allocation, params: SplitParams) -> dict:
    """The split manifest: settings, label map, per-shard rows per split, customers per
    split, label rate per split, input files with size and mtime, fingerprints."""
    state = allocation.state
    shards = state["shards"]
    totals = {}
    for entry in shards.values():
        for k, v in entry["rows"].items():
            totals[k] = totals.get(k, 0) + v
    totals["rows_in"] = sum(e["rows_in"] for e in shards.values())
    labelled = {"label_rate": {}} if params.labelled else {}  # filled by pass 2 (update_label_rates)
    return {
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "split_date": params.split_date,
        "train_ratio": params.train_ratio,
        "random_seed": params.random_seed,
        "oot_policy": params.oot_policy,
        "output_format": params.output_format,
        "hash": "md5(f'{RANDOM_SEED}:{customer}')[:8] big-endian / 2**64 < TRAIN_RATIO -> train",
        "label_field": params.label_field,
        "main_target": params.main_target,
        "targets": list(params.target_columns),
        "main_label_from": list(params.derived_targets),  # empty: the main target as it is
        "label_changed": sum(e["stats"].get("label_changed", 0) for e in shards.values()),
        **state,
        "rows": totals,
        **labelled,
        "input_files": {
            k: {
                "file": e["source"],
                "bytes": e["stats"].get("file_bytes"),
                "mtime": dt.datetime.fromtimestamp(e["stats"].get("file_mtime_ns", 0) / 1e9, dt.timezone.utc)
                .isoformat(timespec="seconds"),
            }
            for k, e in sorted(shards.items())
        },
    }
