"""Rejected rows: collected with their physical line, kind, reason and raw text."""

from dataclasses import dataclass

import pyarrow as pa

REJECTS_SCHEMA = pa.schema(
    [
        pa.field("line", pa.int64()),
        pa.field("error_type", pa.string()),
        pa.field("error", pa.string()),
        pa.field("raw", pa.string()),
    ]
)
# Raw text is kept for diagnosis, not to rebuild a huge line; longer lines are cut.
MAX_RAW_CHARS = 10_000

# error_type values
RAGGED_ROW = "ragged_row"
TYPE_ERROR = "type_error"
JSON_ERROR = "json_error"
SCHEMA_ERROR = "schema_error"
ENCODING_ERROR = "encoding_error"
UNTERMINATED_QUOTE = "unterminated_quote"
LINE_BREAK = "line_break"


@dataclass(frozen=True)
class Reject:
    line: int  # 1-based physical line in the (decompressed) file; header is line 1. Parquet: 1-based row.
    error_type: str
    error: str
    raw: str


def truncate_raw(text: str) -> str:
    return text if len(text) <= MAX_RAW_CHARS else text[:MAX_RAW_CHARS] + "...[truncated]"


def rejects_table(rejects: list[Reject]) -> pa.Table:
    if not rejects:
        # Built without Python values: pyarrow imports pandas (~0.3 s, ~40 MB) the first
        # time it converts any, and a clean read never needs to.
        return pa.Table.from_arrays([pa.nulls(0, f.type) for f in REJECTS_SCHEMA], schema=REJECTS_SCHEMA)
    return pa.table(
        {
            "line": pa.array([r.line for r in rejects], pa.int64()),
            "error_type": pa.array([r.error_type for r in rejects], pa.string()),
            "error": pa.array([r.error for r in rejects], pa.string()),
            "raw": pa.array([r.raw for r in rejects], pa.string()),
        },
        schema=REJECTS_SCHEMA,
    )
