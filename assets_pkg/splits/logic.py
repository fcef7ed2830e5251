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

from assets_pkg.duck import quote_ident
from assets_pkg.splits.discovery import Shard
from assets_pkg.splits.params import SplitParams
from assets_pkg.splits.shard_io import OpenedShard, ShardError, open_shard

SPLITS = ("train", "val", "oot")
DROP_REASONS = ("dropped_null_customer", "dropped_bad_date", "dropped_label", "dropped_policy")
STAT_PREFIX = "stat:"
PROFILE_SCHEMA = pa.schema(
    [
        ("shard", pa.string()),
        ("source", pa.string()),
        ("kind", pa.string()),  # pre | post | stat:<name>
        ("customer", pa.string()),
        ("label", pa.string()),
        ("n", pa.int64()),
    ]
)
ALLOCATION_SCHEMA = pa.schema([("customer", pa.string()), ("side", pa.string()), ("u", pa.float64())])
TWO_64 = float(2**64)


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
def _norm_sql(params: SplitParams) -> str:
    """Columns every pass derives from a shard: customer text, timestamp, label text."""
    c, d, m = (quote_ident(x) for x in (params.group_id_column, params.date_column, params.main_target))
    return (
        f"NULLIF(TRIM(CAST({c} AS VARCHAR)), '') AS __c, "
        f"TRY_CAST({d} AS TIMESTAMP) AS __d, "
        f"({d} IS NOT NULL AND TRIM(CAST({d} AS VARCHAR)) <> '') AS __d_given, "
        f"NULLIF(TRIM(CAST({m} AS VARCHAR)), '') AS __l"
    )


def _run(con, sql: str, shard: Shard, parameters=None):
    try:
        return con.execute(sql, parameters or [])
    except duckdb.Error as exc:
        text = str(exc)
        raise ShardError(text if str(shard.path) in text else f"{shard.path}: {text}") from exc


def _bad_date_guard(con, table: str, shard: Shard, params: SplitParams, rows_in: int) -> int:
    bad = con.execute(
        f"SELECT count(*) FROM {table} WHERE __c IS NOT NULL AND __d IS NULL"
    ).fetchall()[0][0]
    if rows_in and bad / rows_in > params.error_threshold:
        sample = [
            r[0]
            for r in con.execute(
                f"SELECT DISTINCT __d_raw FROM {table} WHERE __c IS NOT NULL AND __d IS NULL LIMIT 5"
            ).fetchall()
        ]
        raise ShardError(
            f"{shard.path}: {bad} of {rows_in} rows have a missing or unparseable date in column "
            f"{params.date_column!r} (DATE_COLUMN), more than error_threshold={params.error_threshold:.0%}; "
            f"examples: {sample}"
        )
    return int(bad)


def profile_shard(con, shard: Shard, params: SplitParams, signature=None, progress_callback=None) -> pa.Table:
    """Pass 1 for one shard: (customer, pre|post, label) -> rows, plus row statistics.

    Only rows that survive the validity and label filters are profiled per customer, so
    the allocation can predict exactly how many rows pass 2 will put in each split.
    """
    opened = open_shard(con, shard, params, signature, progress_callback)
    stats = {"rows_in": 0, "dropped_null_customer": 0, "dropped_bad_date": 0, "dropped_label": 0}
    rows: list[tuple] = []
    if opened.relation is not None:
        d = quote_ident(params.date_column)
        opened.relation.create_view("__src", replace=True)
        _run(con, f"CREATE OR REPLACE TEMP TABLE __p AS SELECT {_norm_sql(params)}, CAST({d} AS VARCHAR) AS __d_raw FROM __src", shard)
        rows_in = con.execute("SELECT count(*) FROM __p").fetchall()[0][0]
        stats["rows_in"] = int(rows_in)
        stats["dropped_bad_date"] = _bad_date_guard(con, "__p", shard, params, rows_in + opened.rejected_lines)
        (stats["dropped_null_customer"], stats["dropped_label"]) = con.execute(
            "SELECT count(*) FILTER (WHERE __c IS NULL), "
            "count(*) FILTER (WHERE __c IS NOT NULL AND __d IS NOT NULL AND __l IS NULL) FROM __p"
        ).fetchall()[0]
        rows = con.execute(
            "SELECT CASE WHEN __d < CAST(? AS TIMESTAMP) THEN 'pre' ELSE 'post' END AS kind, "
            "__c AS customer, __l AS label, count(*) AS n FROM __p "
            "WHERE __c IS NOT NULL AND __d IS NOT NULL AND __l IS NOT NULL GROUP BY ALL ORDER BY ALL",
            [params.split_date],
        ).fetchall()
        con.execute("DROP TABLE __p")
        con.execute("DROP VIEW __src")
    stats["rows_in"] += opened.rejected_lines
    stats["rejected_lines"] = opened.rejected_lines
    st = Path(shard.path).stat()
    stats["file_bytes"] = st.st_size
    stats["file_mtime_ns"] = st.st_mtime_ns
    kinds = [r[0] for r in rows] + [STAT_PREFIX + k for k in stats]
    n = len(kinds)
    return pa.table(
        {
            "shard": [shard.key] * n,
            "source": [shard.name] * n,
            "kind": kinds,
            "customer": [r[1] for r in rows] + [None] * len(stats),
            "label": [r[2] for r in rows] + [None] * len(stats),
            "n": [int(r[3]) for r in rows] + [int(v) for v in stats.values()],
        },
        schema=PROFILE_SCHEMA,
    )


def profile_stats(profile: pa.Table) -> dict:
    """{stat name: value} of one shard's profile (rows_in, dropped_*, rejected_lines, ...)."""
    out = {}
    for kind, n in zip(profile.column("kind").to_pylist(), profile.column("n").to_pylist()):
        if kind.startswith(STAT_PREFIX):
            out[kind[len(STAT_PREFIX):]] = n
    return out


# --------------------------------------------------------------------------------------------
# allocation
# --------------------------------------------------------------------------------------------
@dataclass
class Allocation:
    customers: pa.Table  # customer, side, u  (known customers only)
    state: dict  # params, label map, per-shard expectations and fingerprints (JSON-able)

    @property
    def label_mode(self) -> str:
        return self.state["labels"]["mode"]


def build_allocation(con, profile_paths: list[Path], params: SplitParams, previous_state: dict | None = None) -> Allocation:
    """Known customers -> train/val, the global label map, and what pass 2 must produce.

    ``state["shards"][key]`` holds the expected rows per split and drop reason (pass 2 and
    the row_accounting check compare against it) and a fingerprint of everything the
    shard's output depends on (settings, its customers' sides, its labels' codes): an
    output built under another fingerprint is stale.
    """
    paths = [str(p) for p in profile_paths]
    if paths:
        con.execute("CREATE OR REPLACE TEMP TABLE __prof AS SELECT * FROM read_parquet(?, union_by_name = true)", [paths])
    else:
        con.execute("DROP TABLE IF EXISTS __prof")
        con.from_arrow(PROFILE_SCHEMA.empty_table()).create("__prof")
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE __alloc AS
        SELECT customer, {_FRACTION_SQL} AS u FROM (SELECT DISTINCT customer FROM __prof WHERE kind = 'pre')""",
        [params.random_seed],
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE __alloc2 AS SELECT customer, CASE WHEN u < ? THEN 'train' ELSE 'val' END AS side, u "
        "FROM __alloc ORDER BY customer",
        [params.train_ratio],
    )
    customers = con.sql("SELECT customer, side, u FROM __alloc2 ORDER BY customer").to_arrow_table()
    customers = customers.cast(ALLOCATION_SCHEMA)

    labels = label_spec([r[0] for r in con.execute(
        "SELECT DISTINCT label FROM __prof WHERE kind IN ('pre', 'post') AND label IS NOT NULL").fetchall()])
    _register_labels(con, labels)
    shards = _expectations(con, params, labels)
    state = {
        "params": params.allocation_key(),
        "params_digest": params.digest(),
        "labels": labels,
        "shards": shards,
        "customers": {
            "known": customers.num_rows,
            "train": int(sum(1 for s in customers.column("side").to_pylist() if s == "train")),
        },
    }
    state["customers"]["val"] = state["customers"]["known"] - state["customers"]["train"]
    state["customers"]["oot"] = con.execute(
        "SELECT count(DISTINCT p.customer) FROM __prof p LEFT JOIN __alloc2 a USING (customer) "
        "WHERE p.kind = 'post' AND NOT (coalesce(a.side = 'train', false) OR (? AND a.side IS NOT NULL))",
        [params.oot_policy == "exclude_known"],
    ).fetchall()[0][0]
    if previous_state:
        old = previous_state.get("shards", {})
        state["changed_shards"] = sorted(
            k for k, v in shards.items() if k in old and old[k].get("fingerprint") != v["fingerprint"]
        )
    else:
        state["changed_shards"] = []
    con.execute("DROP TABLE __alloc")
    return Allocation(customers, state)


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


def _expectations(con, params: SplitParams, labels: dict) -> dict:
    """Per shard: rows expected in each split and per drop reason, and a fingerprint."""
    strict = params.oot_policy == "exclude_known"
    rows = con.execute(
        f"""
        WITH r AS (
            SELECT p.shard, p.source, p.kind, p.customer, p.label, p.n, a.side,
                CASE WHEN p.kind = 'pre' THEN a.side
                     WHEN a.side = 'train' OR (? AND a.side IS NOT NULL) THEN 'dropped_policy'
                     ELSE 'oot' END AS dest
            FROM __prof p LEFT JOIN __alloc2 a USING (customer)
            WHERE p.kind IN ('pre', 'post')
        )
        SELECT shard, dest, sum(n)::BIGINT, count(DISTINCT customer)
        FROM r GROUP BY ALL ORDER BY ALL
        """,
        [strict],
    ).fetchall()
    stats = con.execute(
        "SELECT shard, any_value(source), kind, sum(n)::BIGINT FROM __prof WHERE kind LIKE 'stat:%' GROUP BY shard, kind ORDER BY ALL"
    ).fetchall()
    fingerprints = dict(
        con.execute(
            """
            SELECT p.shard, md5(string_agg(p.kind || '|' || p.customer || '|' || coalesce(a.side, '-') || '|' || p.label,
                                           ',' ORDER BY p.kind, p.customer, p.label))
            FROM __prof p LEFT JOIN __alloc2 a USING (customer)
            WHERE p.kind IN ('pre', 'post') GROUP BY p.shard
            """
        ).fetchall()
    )
    shards: dict[str, dict] = {}
    for shard, source, kind, n in stats:
        entry = shards.setdefault(shard, _empty_expectation())
        entry["source"] = source
        entry["stats"][kind[len(STAT_PREFIX):]] = int(n)
    for shard, dest, n, customers in rows:
        entry = shards.setdefault(shard, _empty_expectation())
        key = dest if dest in SPLITS or dest == "dropped_policy" else "unallocated"
        entry["rows"][key] = int(n)
        if dest in SPLITS:
            entry["customers"][dest] = int(customers)
    label_digest = hashlib.md5(json.dumps(labels, sort_keys=True).encode()).hexdigest()
    for shard, entry in shards.items():
        s = entry["stats"]
        entry["rows"]["dropped_null_customer"] = s.get("dropped_null_customer", 0)
        entry["rows"]["dropped_bad_date"] = s.get("dropped_bad_date", 0)
        entry["rows"]["dropped_label"] = s.get("dropped_label", 0)
        entry["rows"]["rejected_lines"] = s.get("rejected_lines", 0)
        entry["rows_in"] = s.get("rows_in", 0)
        entry["fingerprint"] = hashlib.md5(
            f"{params.digest()}|{label_digest}|{params.output_format}|{fingerprints.get(shard, '')}".encode()
        ).hexdigest()
    return shards


def _empty_expectation() -> dict:
    return {
        "source": None,
        "rows": {k: 0 for k in (*SPLITS, *DROP_REASONS)},
        "customers": {k: 0 for k in SPLITS},
        "stats": {},
    }


def label_rates(con, labels: dict, params: SplitParams) -> dict:
    """Label statistics per split, predicted from the profiles: rows per label value and,
    for numeric labels, the mean (the positive rate of a 0/1 label)."""
    strict = params.oot_policy == "exclude_known"
    rows = con.execute(
        """SELECT dest, label, sum(n)::BIGINT FROM (
             SELECT p.label, p.n,
                CASE WHEN p.kind = 'pre' THEN a.side
                     WHEN a.side = 'train' OR (? AND a.side IS NOT NULL) THEN NULL
                     ELSE 'oot' END AS dest
             FROM __prof p LEFT JOIN __alloc2 a USING (customer) WHERE p.kind IN ('pre', 'post'))
           WHERE dest IS NOT NULL GROUP BY ALL ORDER BY ALL""",
        [strict],
    ).fetchall()
    out: dict = {}
    for dest, label, n in rows:
        entry = out.setdefault(dest, {"rows": 0, "by_label": {}})
        entry["rows"] += int(n)
        entry["by_label"][label] = int(n)
    for entry in out.values():
        total = entry["rows"] or 1
        if labels["mode"] == "numeric":
            entry["mean"] = round(sum(float(k) * v for k, v in entry["by_label"].items()) / total, 6)
        entry["share"] = {k: round(v / total, 6) for k, v in entry["by_label"].items()}
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
    con.execute("DROP TABLE IF EXISTS __alloc2")
    if isinstance(customers, pa.Table):
        con.from_arrow(customers).create("__alloc2")
    else:
        con.execute("CREATE TEMP TABLE __alloc2 AS SELECT customer, side FROM read_parquet(?)", [str(customers)])
    _register_labels(con, state["labels"])


def split_shard(con, shard: Shard, params: SplitParams, labels: dict, signature=None,
                progress_callback=None) -> ShardSplit:
    """Pass 2 for one shard: label, assign, and keep the rows in a temp table.

    Needs :func:`load_allocation` first. Raises ShardError when the shard holds a label or a
    pre-split customer the allocation never saw (the shard changed after pass 1).
    """
    opened: OpenedShard = open_shard(con, shard, params, signature, progress_callback)
    counts = {"rows_in": 0, **{k: 0 for k in SPLITS}, **{k: 0 for k in DROP_REASONS}}
    table = f"__split_{shard.key}"
    if opened.relation is None:
        counts["rejected_lines"] = opened.rejected_lines
        counts["rows_in"] = opened.rejected_lines
        return ShardSplit(shard, counts)
    label_col = params.label_field
    opened.relation.create_view("__src2", replace=True)
    exclude = ["__c", "__d", "__d_given", "__l"]
    if label_col in opened.columns:
        star = f"t.* EXCLUDE ({', '.join(exclude)}) REPLACE ({_label_sql(labels)} AS {quote_ident(label_col)})"
    else:
        star = f"t.* EXCLUDE ({', '.join(exclude)}), {_label_sql(labels)} AS {quote_ident(label_col)}"
    strict = params.oot_policy == "exclude_known"
    label_join = "LEFT JOIN __labels __lm ON __lm.value = t.__l" if labels["mode"] == "map" else ""
    unseen = "(__lm.code IS NULL)" if labels["mode"] == "map" else "(TRY_CAST(__l AS DOUBLE) IS NULL)"
    sql = f"""
        CREATE OR REPLACE TEMP TABLE {table} AS
        WITH t AS (SELECT *, {_norm_sql(params)} FROM __src2)
        SELECT {star},
            CASE WHEN t.__c IS NULL THEN 'dropped_null_customer'
                 WHEN t.__d IS NULL THEN 'dropped_bad_date'
                 WHEN t.__l IS NULL THEN 'dropped_label'
                 WHEN {unseen} THEN 'unseen_label:' || t.__l
                 WHEN t.__d < CAST($split AS TIMESTAMP) THEN coalesce(a.side, 'unallocated:' || t.__c)
                 WHEN a.side = 'train' OR ($strict AND a.side IS NOT NULL) THEN 'dropped_policy'
                 ELSE 'oot' END AS __split
        FROM t LEFT JOIN __alloc2 a ON a.customer = t.__c {label_join}
    """
    _run(con, sql, shard, {"split": params.split_date, "strict": strict})
    con.execute("DROP VIEW __src2")
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


def accounting_ok(counts: dict) -> bool:
    """rows_in = train + val + oot + every drop reason + rejected lines."""
    parts = sum(counts.get(k, 0) for k in (*SPLITS, *DROP_REASONS, "rejected_lines"))
    return counts.get("rows_in", 0) == parts


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


def fsize(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
