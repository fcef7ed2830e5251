"""Event normalisation and the streaming part writer.

Every source yields ``pyarrow.RecordBatch`` in :data:`PART_SCHEMA` (timestamp int64 ms,
event_id, level, message, attributes = JSON text of every other field). The writer buffers
batches and writes a new ``part-NNNNN.parquet`` whenever ``FLUSH_ROWS`` rows or
``FLUSH_BYTES`` bytes are buffered, then clears the buffer: memory stays bounded by one
part whatever the window size.
"""

import functools
import json
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from assets_pkg.duck import quote_ident
from assets_pkg.io.atomic import naming_path
from assets_pkg.logs.store import PART_SCHEMA, LogsError, part_name
from assets_pkg.obs import Stopwatch, log_event
from assets_pkg.settings import SettingError, env_int
from assets_pkg.storage import as_path

CORE_FIELDS = ("timestamp", "event_id", "level", "message")
DEFAULT_FLUSH_ROWS = 100_000
DEFAULT_FLUSH_BYTES = 64 * 2**20


def flush_rows_setting(value: int | None = None) -> int:
    rows = env_int("FLUSH_ROWS", DEFAULT_FLUSH_ROWS) if value is None else int(value)
    if rows < 1:
        raise SettingError(f"FLUSH_ROWS={rows} must be at least 1")
    return rows


def flush_bytes_setting(value: int | None = None) -> int:
    size = env_int("FLUSH_BYTES", DEFAULT_FLUSH_BYTES) if value is None else int(value)
    if size < 1:
        raise SettingError(f"FLUSH_BYTES={size} must be at least 1")
    return size


class EventFormatError(LogsError, ValueError):
    """An event that cannot be stored (no integer timestamp, ...)."""


# --- normalisation ---------------------------------------------------------------------


def events_to_batch(events: list[dict]) -> pa.RecordBatch:
    """Python event dicts (the HTTP API's JSON) -> one batch in PART_SCHEMA."""
    ts, ids, levels, messages, attrs = [], [], [], [], []
    for event in events:
        stamp = event.get("timestamp")
        if isinstance(stamp, bool) or not isinstance(stamp, int):
            raise EventFormatError(
                f"event {event.get('event_id')!r} has timestamp {stamp!r}; expected integer milliseconds"
            )
        ts.append(stamp)
        ids.append(_text(event.get("event_id")))
        levels.append(_text(event.get("level")))
        messages.append(_text(event.get("message")))
        extra = {k: v for k, v in event.items() if k not in CORE_FIELDS}
        attrs.append(json.dumps(extra, separators=(",", ":"), default=str) if extra else "{}")
    return pa.RecordBatch.from_arrays(
        [
            pa.array(ts, pa.int64()),
            pa.array(ids, pa.string()),
            pa.array(levels, pa.string()),
            pa.array(messages, pa.string()),
            pa.array(attrs, pa.string()),
        ],
        schema=PART_SCHEMA,
    )


def _text(value):
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value)


class BatchNormalizer:
    """Arrow batches with arbitrary columns (e.g. parsed JSONL) -> PART_SCHEMA batches.

    Core columns are cast; every other column is packed into ``attributes`` as JSON text
    by DuckDB (``to_json(struct_pack(...))``), which stays vectorised.
    """

    def __init__(self):
        self._con: duckdb.DuckDBPyConnection | None = None

    def normalize(self, batch: pa.RecordBatch, source: str = "") -> pa.RecordBatch:
        names = batch.schema.names
        if "timestamp" not in names:
            raise EventFormatError(f"{source or 'events'}: no 'timestamp' field (columns: {', '.join(names)})")
        n = batch.num_rows
        ts = batch.column("timestamp")
        if not pa.types.is_integer(ts.type):
            try:
                ts = pc.cast(ts, pa.int64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise EventFormatError(
                    f"{source or 'events'}: 'timestamp' must be integer milliseconds ({ts.type}): {exc}"
                ) from None
        elif ts.type != pa.int64():
            ts = pc.cast(ts, pa.int64())
        if ts.null_count:
            raise EventFormatError(f"{source or 'events'}: {ts.null_count} event(s) without a timestamp")
        arrays = [ts]
        for name in ("event_id", "level", "message"):
            if name in names:
                col = batch.column(name)
                arrays.append(col if col.type == pa.string() else pc.cast(col, pa.string()))
            else:
                arrays.append(pa.nulls(n, pa.string()))
        extra = [c for c in names if c not in CORE_FIELDS]
        if extra:
            arrays.append(self._attributes(batch.select(extra)))
        else:
            arrays.append(_repeat_text("{}", n))
        return pa.RecordBatch.from_arrays(arrays, schema=PART_SCHEMA)

    def _attributes(self, extra: pa.RecordBatch) -> pa.Array:
        fast = _flat_json_objects(extra)
        if fast is not None:
            return fast
        return self._attributes_duckdb(extra)

    def _attributes_duckdb(self, extra: pa.RecordBatch) -> pa.Array:
        if self._con is None:
            self._con = duckdb.connect(":memory:")
            self._con.execute("SET threads = 1")
            self._con.execute("SET memory_limit = '64MB'")
        fields = ", ".join(f"{quote_ident(c)} := {quote_ident(c)}" for c in extra.schema.names)
        table = pa.Table.from_batches([extra])
        self._con.register("extra_batch", table)
        try:
            result = self._con.sql(
                f"SELECT CAST(to_json(struct_pack({fields})) AS VARCHAR) AS a FROM extra_batch"
            ).to_arrow_table()
        finally:
            self._con.unregister("extra_batch")
        col = result.column(0).combine_chunks()
        return col if col.type == pa.string() else pc.cast(col, pa.string())

    def close(self):
        if self._con is not None:
            self._con.close()
            self._con = None


@functools.lru_cache(maxsize=256)
def arrow_literal(value: str | int) -> pa.Scalar:
    """A string / int64 Arrow scalar built from buffers, for compute kernels.

    Passing a Python value (``pc.less(ts, 5)``, ``pa.scalar(...)``) makes pyarrow import
    pandas the first time (~0.3 s and ~40 MB of a cold fetch that never needs it)."""
    if isinstance(value, str):
        data = value.encode()
        offsets = np.array([0, len(data)], dtype=np.int32)
        return pa.StringArray.from_buffers(1, pa.py_buffer(offsets), pa.py_buffer(data))[0]
    return pa.Array.from_buffers(pa.int64(), 1, [None, pa.py_buffer(np.array([value], dtype=np.int64))])[0]


def _string_bytes(col: pa.Array) -> np.ndarray:
    """The UTF-8 bytes of a string array's values (a view, no copy)."""
    offsets = np.frombuffer(col.buffers()[1], dtype=np.int32, count=len(col) + 1, offset=col.offset * 4)
    data = col.buffers()[2]
    if data is None or offsets[-1] == offsets[0]:
        return np.empty(0, dtype=np.uint8)
    return np.frombuffer(data, dtype=np.uint8)[offsets[0]:offsets[-1]]


def _json_value(col: pa.Array) -> tuple[pa.Array, bool] | None:
    """JSON text of each value of a flat column (null -> null), or None when not flat/simple.

    The flag says the text still needs its surrounding quotes (strings without nulls: the
    caller folds the quotes into the separators, one string join less)."""
    t = col.type
    if pa.types.is_boolean(t):
        text = pc.if_else(col, arrow_literal("true"), arrow_literal("false"))
    elif pa.types.is_integer(t):
        text = pc.cast(col, pa.string())
    elif pa.types.is_floating(t):
        if not pc.all(pc.is_finite(col)).as_py() in (True, None):
            return None  # NaN / inf are not JSON
        text = pc.cast(col, pa.string())
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        col = pc.cast(col, pa.string())
        # One numpy pass over the raw bytes says whether any value needs escaping (usually
        # none does, and then the values are used as they are).
        raw = _string_bytes(col)
        if len(raw) and (raw < 0x20).any():
            return None  # newlines, tabs, ...: let DuckDB escape them
        if len(raw) and ((raw == 0x22) | (raw == 0x5C)).any():
            col = pc.replace_substring(pc.replace_substring(col, "\\", "\\\\"), '"', '\\"')
        if not col.null_count:
            return col, True
        text = pc.binary_join_element_wise(arrow_literal('"'), col, arrow_literal('"'), arrow_literal(""))
    elif pa.types.is_null(t):
        return _repeat_text("null", len(col)), False
    else:
        return None
    return (pc.fill_null(text, arrow_literal("null")) if text.null_count else text), False


def _repeat_text(text: str, n: int) -> pa.Array:
    """``n`` copies of ``text`` as a string array, built from buffers."""
    data = text.encode()
    offsets = np.arange(0, (n + 1) * len(data), len(data), dtype=np.int32)[: n + 1]
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data * n))


def _flat_json_objects(extra: pa.RecordBatch) -> pa.Array | None:
    """``{"a":1,"b":"x"}`` per row with Arrow kernels (one string join for the whole
    object), for flat scalar columns only."""
    pieces: list = []
    literal = ""  # text between two value columns
    for i, name in enumerate(extra.schema.names):
        value = _json_value(extra.column(i))
        if value is None:
            return None
        text, quote = value
        literal += ("{" if i == 0 else ",") + json.dumps(name) + ":" + ('"' if quote else "")
        pieces.extend([arrow_literal(literal), text])
        literal = '"' if quote else ""
    pieces.append(arrow_literal(literal + "}"))
    return pc.binary_join_element_wise(*pieces, arrow_literal(""))


# --- the part writer -------------------------------------------------------------------

# Dictionary-encode only the columns that repeat (level; attributes often do): trying a
# dictionary on unique event ids / messages / timestamps costs time, then falls back and
# leaves bigger files. Ascending timestamps delta-encode to a few bits each. Measured on
# 100k events: about half the write time and a third of the bytes of the defaults.
# Page checksums: zstd has no checksum of its own, so a flipped byte in a data page can
# decode to wrong values silently; the deep check verifies every page's CRC.
PART_ENCODING = {
    "use_dictionary": ["level", "attributes"],
    "column_encoding": {"timestamp": "DELTA_BINARY_PACKED"},
    "write_page_checksum": True,
}


class PartWriter:
    """Buffer PART_SCHEMA batches; write ``part-NNNNN.parquet`` files into ``folder``."""

    def __init__(
        self,
        folder: Path,
        flush_rows: int,
        flush_bytes: int,
        logger=None,
        log_fields: dict | None = None,
        compression: str = "zstd",
        published_folder: Path | None = None,
    ):
        self.folder = Path(folder)
        # Where the parts will be once the segment is published: the path the events name.
        self.published_folder = as_path(published_folder) if published_folder is not None else self.folder
        self.flush_rows = max(1, int(flush_rows))
        self.flush_bytes = max(1, int(flush_bytes))
        self.logger = logger
        self.log_fields = dict(log_fields or {})
        self.compression = compression
        self._buffer: list[pa.RecordBatch] = []
        self._buffer_rows = 0
        self._buffer_bytes = 0
        self.parts: list[Path] = []
        self.part_rows: dict[str, int] = {}
        self.rows = 0
        self.bytes = 0
        self.ts_min: int | None = None
        self.ts_max: int | None = None
        self.max_buffer_rows = 0  # the largest buffer ever held (tests assert the bound)

    def write(self, batch: pa.RecordBatch) -> None:
        offset = 0
        row_bytes = batch.nbytes / batch.num_rows if batch.num_rows else 0
        while offset < batch.num_rows:
            room = self.flush_rows - self._buffer_rows
            if row_bytes:  # also cut big batches at FLUSH_BYTES, not only between batches
                room = min(room, max(1, int((self.flush_bytes - self._buffer_bytes) / row_bytes)))
            piece = batch.slice(offset, room)
            offset += piece.num_rows
            self._buffer.append(piece)
            self._buffer_rows += piece.num_rows
            self._buffer_bytes += piece.nbytes
            self.max_buffer_rows = max(self.max_buffer_rows, self._buffer_rows)
            if self._buffer_rows >= self.flush_rows or self._buffer_bytes >= self.flush_bytes:
                self.flush()

    def flush(self, allow_empty: bool = False) -> Path | None:
        if not self._buffer_rows and not allow_empty:
            return None
        index = len(self.parts)
        path = self.folder / part_name(index)
        watch = Stopwatch()
        log_event("flush_start", self.logger, **self.log_fields, part=index, rows=self._buffer_rows,
                  buffer_bytes=self._buffer_bytes)
        table = pa.Table.from_batches(self._buffer, schema=PART_SCHEMA)
        try:
            pq.write_table(table, path, compression=self.compression, **PART_ENCODING)
        except OSError as exc:
            # The caller logs cache_write_failed (it knows the segment) and names the remedy.
            raise naming_path(exc, path) from exc
        size = path.stat().st_size
        self.parts.append(path)
        self.part_rows[path.name] = table.num_rows
        if table.num_rows:
            bounds = pc.min_max(table.column("timestamp"))
            lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
            self.ts_min = lo if self.ts_min is None else min(self.ts_min, lo)
            self.ts_max = hi if self.ts_max is None else max(self.ts_max, hi)
        self.rows += table.num_rows
        self.bytes += size
        log_event("flush_complete", self.logger, **self.log_fields, part=index, rows=table.num_rows, bytes=size,
                  duration_ms=round(watch.seconds * 1000), path=str(self.published_folder / path.name))
        # Clear the buffer: nothing of this part stays in memory.
        self._buffer = []
        self._buffer_rows = 0
        self._buffer_bytes = 0
        del table
        return path

    def close(self) -> None:
        """Flush what is left; a window without events still gets one zero-row part."""
        if self._buffer_rows or not self.parts:
            self.flush(allow_empty=True)
