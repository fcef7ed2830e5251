"""`--backfill-filter SQL`: a predicate over the account source columns, checked before use
(no dagster import).

The filter is user text spliced into a WHERE clause, so it is accepted only when it is
one boolean expression over the source columns (key, month, base_ts and the value
columns, with the types the summary gives them: the month as 'YYYY-MM' text, base_ts a
TIMESTAMP). DuckDB parses it (one expression: no statement, no semicolon, no comment, no
subquery, no function that reads files or settings) and binds it against an empty
relation holding exactly those columns, with external access off, so a reference to any
other column or table fails there and nothing is read.
"""

import json

import duckdb

from assets_pkg.duck import quote_ident
from assets_pkg.summary.config import SummarySettings

FLAG = "--backfill-filter"
# functions that read files, the network, the environment or the catalog: never in a filter
DENIED_FUNCTIONS = ("read_", "glob", "parquet_", "sniff_csv", "query", "getenv", "current_setting",
                    "duckdb_", "pragma_", "sql_auto_complete", "json_execute_serialized_sql", "iceberg_",
                    "delta_", "http", "load", "install")
DENIED_CLASSES = ("SUBQUERY",)


class RecordFilterError(ValueError):
    """The filter is not a predicate over the source columns; the message names the flag."""


def source_columns(cfg: SummarySettings) -> dict[str, str]:
    """Source column -> the DuckDB type the filter sees it as."""
    cols = {cfg.key_column: cfg.key_type, cfg.month_column: "VARCHAR", cfg.timestamp_column: "TIMESTAMP"}
    cols.update({c: cfg.value_type(c) for c in cfg.all_value_columns})
    return cols


def _empty_source(cfg: SummarySettings) -> str:
    cols = ", ".join(f"NULL::{t} AS {quote_ident(c)}" for c, t in source_columns(cfg).items())
    return f"SELECT {cols} LIMIT 0"


def _walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def validate_filter(cfg: SummarySettings, text: str) -> str:
    """The filter, stripped, if it is a predicate over the source columns; else
    :class:`RecordFilterError` saying why."""
    expr = (text or "").strip()
    if not expr:
        raise RecordFilterError(f"{FLAG} is empty")
    for token, what in ((";", "a semicolon (one expression, not statements)"), ("--", "a comment"),
                        ("/*", "a comment")):
        if token in expr:
            raise RecordFilterError(f"{FLAG} {expr!r}: contains {what}")
    con = duckdb.connect(config={"enable_external_access": False})
    try:
        sql = f"SELECT 1 FROM ({_empty_source(cfg)}) WHERE ({expr})"
        tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])
        if tree.get("error"):
            raise RecordFilterError(f"{FLAG} {expr!r}: not an SQL expression ({tree.get('error_message')})")
        if len(tree["statements"]) != 1:
            raise RecordFilterError(f"{FLAG} {expr!r}: one expression expected, not statements")
        where = tree["statements"][0]["node"].get("where_clause")
        for node in _walk(where):
            if node.get("class") in DENIED_CLASSES:
                raise RecordFilterError(f"{FLAG} {expr!r}: subqueries are not allowed (a predicate over the "
                                        f"source columns {list(source_columns(cfg))})")
            name = str(node.get("function_name", "")).lower() if node.get("class") == "FUNCTION" else ""
            if name and name.startswith(DENIED_FUNCTIONS):
                raise RecordFilterError(f"{FLAG} {expr!r}: function {name}() is not allowed in a filter "
                                        "(it reads files, settings or the catalog)")
        try:
            con.execute(sql).fetchall()
        except duckdb.Error as exc:
            first = str(exc).splitlines()[0]
            raise RecordFilterError(f"{FLAG} {expr!r}: {first} (the filter may use only the source columns "
                                    f"{list(source_columns(cfg))})") from None
    finally:
        con.close()
    return expr


def _matching(cfg: SummarySettings, view: str, good_rows_sql: str, expr: str) -> str:
    """The good records of the summary's source ``view`` (see
    :class:`assets_pkg.summary.source.Source`) that pass ``expr``, evaluated over the
    source columns as the summary types them: ``__key``, ``__month`` (month index)."""
    aliases = {cfg.key_column: "key", cfg.month_column: "_month_raw", cfg.timestamp_column: "ts"}
    aliases.update({c: f"v{i}" for i, c in enumerate(cfg.all_value_columns)})
    named = ", ".join(f"{src} AS {quote_ident(col)}" for col, src in aliases.items())
    # validate_filter bound expr to the source columns only, so the helper columns are out of its reach
    return (f"SELECT * FROM (SELECT key AS __key, month_idx AS __month, ({good_rows_sql}) AS __good, "
            f"{named} FROM {view}) WHERE __good AND ({expr})")


def matching_accounts_sql(cfg: SummarySettings, view: str, good_rows_sql: str, expr: str) -> str:
    """The distinct keys of the matching records in month indexes ``$lo..$hi``."""
    return (f"SELECT DISTINCT __key FROM ({_matching(cfg, view, good_rows_sql, expr)}) "
            "WHERE __month BETWEEN $lo AND $hi ORDER BY 1")


def matching_months_sql(cfg: SummarySettings, view: str, good_rows_sql: str, expr: str) -> str:
    """The earliest month index of a matching record (NULL: none)."""
    return f"SELECT min(__month) FROM ({_matching(cfg, view, good_rows_sql, expr)})"
