"""Pass 2: label every row of a shard and assign it to train, val or oot (no dagster import).

Pre-split rows go to their customer's side. Post-split rows go to ``oot`` unless the
customer is in train (``exclude_train``) or known at all (``exclude_known``); those are
counted as ``dropped_policy``. Per shard: ``rows_in = train + val + oot + dropped_* +
rejected_lines``, and the rows per split must equal what pass 1 predicted (the allocation's
expectations): a shard that changed since is refused.
"""

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from assets_pkg.duck import current_setting, quote_ident, setting
from assets_pkg.io.atomic import publish_files
from assets_pkg.splits.allocation import register_labels
from assets_pkg.splits.discovery import Shard
from assets_pkg.splits.params import SplitParams
from assets_pkg.splits.rows import DROP_REASONS, SPLITS, norm_sql, quiet, run_on_shard
from assets_pkg.splits.shard_io import OpenedShard, ShardError, open_shard
from assets_pkg.storage import as_path, is_remote, local_scratch
from assets_pkg.storage.objects import remove_files


def joins_built_on_allocation(con):
    """Within this block DuckDB builds each hash join on its right side as written (the
    allocation, the label map) instead of flipping it.

    DuckDB knows no row count for a streamed (text) shard and then builds the join's hash
    table on the shard (every row with all its columns: more memory, and slower) instead
    of the customers table. ``build_side_probe_side`` is the optimizer
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
            return run_on_shard(con, sql, shard, parameters).fetchall()
    finally:
        con.execute(f"DROP VIEW IF EXISTS {_pass2_view(shard)}")


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
    register_labels(con, state["labels"])


def _pass2_view(shard: Shard) -> str:
    return f"__src2_{shard.key}"


def _label_sql(labels: dict) -> str:
    if labels["mode"] == "numeric":
        return f"TRY_CAST(__l AS DOUBLE)::{labels['type']}"
    return "__lm.code"


def _prepare_labelled(con, opened: OpenedShard, params: SplitParams, labels: dict, schema,
                      fail_fast: bool) -> str:
    """Register the shard (cast to the global output schema) as ``__src2_<key>`` (views are
    shared by every cursor, and two shards may be split at once) and return the
    SELECT that labels each row and assigns ``__split``. With ``fail_fast`` a label or a
    pre-split customer the allocation never saw raises inside DuckDB (``error()``)."""
    label_col = params.output_label
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
    if not params.labelled:
        star = f"t.* EXCLUDE ({', '.join(exclude)})"
    elif label_col in columns:
        star = f"t.* EXCLUDE ({', '.join(exclude)}) REPLACE ({_label_sql(labels)} AS {quote_ident(label_col)})"
    else:
        star = f"t.* EXCLUDE ({', '.join(exclude)}), {_label_sql(labels)} AS {quote_ident(label_col)}"
    label_join = "LEFT JOIN __labels __lm ON __lm.value = t.__l" if labels["mode"] == "map" else ""
    unseen = {"map": "(__lm.code IS NULL)", "numeric": "(TRY_CAST(__l AS DOUBLE) IS NULL)"}.get(labels["mode"], "false")
    stale = "The shard changed after splits/shard_profile ran; re-materialize its profile and splits/customer_allocation"
    if fail_fast:
        on_unseen = f"error('label value never seen in pass 1: ' || t.__l || '. {stale}')"
        on_unallocated = f"coalesce(a.side, error('pre-split customer missing from the allocation: ' || t.__c || '. {stale}'))"
    else:
        on_unseen = "'unseen_label:' || t.__l"
        on_unallocated = "coalesce(a.side, 'unallocated:' || t.__c)"
    return f"""
        WITH t AS (SELECT *, {norm_sql(params)} FROM {_pass2_view(opened.shard)})
        SELECT {star},
            CASE WHEN t.__c IS NULL THEN 'dropped_null_customer'
                 WHEN t.__d IS NULL THEN 'dropped_bad_date'
                 {"WHEN t.__l IS NULL THEN 'dropped_label'" if params.labelled else ""}
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
    file is then published with ``io.atomic.publish_files``; a split without rows deletes its old file.

    Returns the counts; rows per split come from the written files, the drop counts from
    pass 1 (``expected``), and written rows must equal pass 1's prediction.
    """
    import shutil
    import uuid

    quiet(con)
    opened: OpenedShard = open_shard(con, shard, params, signature, progress_callback, stage=stage_path)
    written = {k: 0 for k in SPLITS}
    sizes = {k: 0 for k in SPLITS}
    remote = is_remote(targets["train"])
    # DuckDB writes into a temp folder beside the outputs (local root: published by rename),
    # or in local scratch (object-store root: each file then uploaded in one PUT)
    parent = local_scratch("splits_pass2") if remote else as_path(targets["train"]).parent.parent
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
        finished, empty = {}, []
        for split in SPLITS:
            final = as_path(targets[split])
            files = list((tmp / f"__split={split}").glob("*.parquet")) if tmp.exists() else []
            if files and written[split]:
                finished[files[0]] = final
            else:
                empty.append(final)
        # object store: the splits' PUTs at once (each one complete object), before the
        # caller writes the state sidecar that marks them current
        publish_files(finished)
        remove_files(empty)
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
