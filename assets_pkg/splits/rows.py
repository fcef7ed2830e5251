"""What every split pass shares: the split and drop-reason names, the text each row's
customer, date and label are compared as, and running a statement against a shard so
that its errors name the shard's file (no dagster import).
"""

import duckdb
import pyarrow as pa

from assets_pkg.duck import quote_ident
from assets_pkg.splits.discovery import Shard
from assets_pkg.splits.params import SplitParams
from assets_pkg.splits.shard_io import ShardError

SPLITS = ("train", "val", "oot")
DROP_REASONS = ("dropped_null_customer", "dropped_bad_date", "dropped_label", "dropped_policy")


def empty_table(schema: pa.Schema) -> pa.Table:
    """An empty table of ``schema`` (``Schema.empty_table()`` and ``pa.array([])`` import
    pandas, which a split run otherwise never loads)."""
    return pa.Table.from_batches([], schema=schema)


def text_key_sql(expr: str) -> str:
    """``expr`` as the text every pass compares: ``NULLIF(TRIM(CAST(expr AS VARCHAR)), '')``.

    DuckDB's ``trim`` removes the Unicode space separators (U+0020, U+00A0, U+2000..., the
    only ASCII one is the space). An ASCII value (as many bytes as characters) that neither
    starts nor ends with a space is therefore its own trim: testing that first is cheaper
    per row than trimming every value of a high-cardinality id column, and gives the same
    text (a property test compares both)."""
    x = f"CAST({expr} AS VARCHAR)"
    return (f"NULLIF(CASE WHEN {x} LIKE ' %' OR {x} LIKE '% ' OR strlen({x}) <> length({x}) "
            f"THEN TRIM({x}) ELSE {x} END, '')")


def main_label_sql(params: SplitParams) -> str | None:
    """The main label of a row as the original builds it: with several TARGETS, the
    row-wise maximum of the targets other than TARGETS[MAIN_TASK_INDEX] (``greatest``
    skips NULLs like pandas' ``max(axis=1)``: NULL only when every other target is NULL);
    otherwise the main target column as it is. None: unlabelled."""
    if not params.labelled:
        return None
    derived = params.derived_targets
    if derived:
        return f"greatest({', '.join(quote_ident(t) for t in derived)})"
    return quote_ident(params.main_target)


def label_changed_sql(params: SplitParams) -> str:
    """True where the derived main label differs from the main target column's own value
    (the rows the original reports as changed); false without a derivation."""
    if not params.derived_targets:
        return "false"
    return f"({text_key_sql(quote_ident(params.main_target))} IS DISTINCT FROM {text_key_sql(main_label_sql(params))})"


def norm_sql(params: SplitParams) -> str:
    """Columns every pass derives from a shard: customer text, timestamp, label text
    (NULL for every row when unlabelled: no label processing)."""
    c, d = (quote_ident(x) for x in (params.group_id_column, params.date_column))
    label = main_label_sql(params)
    label_text = text_key_sql(label) if label is not None else "NULL::VARCHAR"
    return f"{text_key_sql(c)} AS __c, TRY_CAST({d} AS TIMESTAMP) AS __d, {label_text} AS __l"


def quiet(con) -> None:
    """No DuckDB progress bar on the terminal (Dagster logs carry progress)."""
    con.execute("SET enable_progress_bar = false")


def shard_error(shard: Shard, exc: Exception) -> ShardError:
    """A DuckDB error as a ShardError that names the shard's file."""
    text = str(exc)
    return ShardError(text if str(shard.path) in text else f"{shard.path}: {text}")


def run_on_shard(con, sql: str, shard: Shard, parameters=None):
    try:
        return con.execute(sql, parameters or [])
    except duckdb.Error as exc:
        raise shard_error(shard, exc) from exc
