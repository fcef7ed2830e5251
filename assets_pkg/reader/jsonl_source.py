"""JSON lines blocks -> typed Arrow tables plus rejects with exact line numbers.

The schema is fixed by the first block (Arrow's inference) plus ``column_types``, and
every later block is parsed against it, so all batches share one schema. A block that
fails is bisected by lines until the bad lines are isolated; each becomes a reject:
``json_error`` (not valid JSON / not an object), ``schema_error`` (a field the schema
does not have; pass ``columns=`` to read a subset), ``type_error`` (a value of the wrong
type). Blank lines are always skipped.
"""

import itertools
import json
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from assets_pkg.reader import rejects as rj
from assets_pkg.reader.casting import normalize_strings
from assets_pkg.reader.errors import ReaderError
from assets_pkg.reader.linemap import blank_out_lines, invalid_utf8_lines, line_range_text, newline_positions
from assets_pkg.reader.options import ReaderOptions
from assets_pkg.reader.parsed import ParsedBlock, merge_sorted, parse_in_order
from assets_pkg.reader.sniff import SniffedFormat
from assets_pkg.reader.textblocks import TextBlock, TextBlocks, count_lines

_LEAF_LINES = 4
_INFER_LINES = 10_000


def _blank_line_numbers(data: bytes) -> np.ndarray:
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines = lines[:-1]
    return np.asarray([i + 1 for i, line in enumerate(lines) if not line.strip()], dtype=np.int64)


class JsonlSource:
    def __init__(self, opts: ReaderOptions, sniffed: SniffedFormat):
        self.opts = opts
        self.path = opts.file_path
        self.text = TextBlocks(self.path, sniffed.compression == "gzip", opts.encoding, opts.block_bytes)
        self._first_table: pa.Table | None = None
        self.header_lines = 0
        self.preamble_lines = 0  # lines skipped by skip_rows
        try:
            for _ in range(opts.skip_rows + opts.skip_data_rows):  # no header: both skip first lines
                if self.text.read_line() is None:
                    break
                self.preamble_lines += 1
            self._blocks = self.text.blocks()
            self._first = next(self._blocks, None)
            self.file_schema = self._infer_schema()
        except BaseException:
            self.text.close()
            raise
        available = self.file_schema.names
        if opts.columns is not None:
            missing = [c for c in opts.columns if c not in available]
            if missing:
                raise ReaderError(
                    f"{self.path}: column {missing[0]!r} requested in columns does not exist in the first "
                    f"{self.opts.block_bytes // 1024} KiB of the file; available columns: {', '.join(available)}"
                )
        self.columns = list(opts.columns) if opts.columns is not None else list(available)
        self.schema = pa.schema([self.file_schema.field(c) for c in self.columns])

    def close(self) -> None:
        self._first_table = None
        self.text.close()

    def bytes_read(self) -> int:
        return self.text.bytes_read()

    def _infer_schema(self) -> pa.Schema:
        declared = dict(self.opts.column_types or {})
        if self._first is None:
            if declared:
                return pa.schema(list(declared.items()))
            raise ReaderError(f"{self.path}: no JSON lines to read (file_path); cannot tell its columns")
        # lines of invalid UTF-8 would make invalid field names; they are rejects anyway
        sample = blank_out_lines(self._first.data, invalid_utf8_lines(self._first.data))
        try:
            table = self._parse(sample, explicit=pa.schema(list(declared.items())) if declared else None, infer_rest=True)
            # Every line of the first block parsed, with the types the schema is made of:
            # this is the block's parse too (parse_block uses it instead of parsing twice).
            self._first_table = table
        except pa.ArrowInvalid:
            # A bad line in the first block: infer from the lines that agree with each other.
            good = [line for line in sample.split(b"\n")[:_INFER_LINES] if _is_json_object(line)]
            accepted: list[bytes] = []
            self._accept_consistent(accepted, good)
            if not accepted:
                if declared:  # every column declared: the bad lines become rejects
                    return pa.schema(list(declared.items()))
                raise ReaderError(f"{self.path}: no valid JSON object in the first lines") from None
            table = self._parse(b"\n".join(accepted), explicit=None, infer_rest=True)
        fields = []
        for field in table.schema:
            dtype = declared.get(field.name, field.type)
            fields.append(pa.field(field.name, pa.string() if pa.types.is_null(dtype) else dtype))
        for name, dtype in declared.items():
            if name not in table.schema.names:
                fields.append(pa.field(name, dtype))
        return pa.schema(fields)

    def _accept_consistent(self, accepted: list[bytes], lines: list[bytes]) -> None:
        """Add to ``accepted`` the lines that parse together with it (bisecting conflicts)."""
        if not lines:
            return
        try:
            self._parse(b"\n".join(accepted + lines), explicit=None, infer_rest=True)
            accepted.extend(lines)
        except pa.ArrowInvalid:
            if len(lines) > 1:
                mid = len(lines) // 2
                self._accept_consistent(accepted, lines[:mid])
                self._accept_consistent(accepted, lines[mid:])

    def _parse(self, data: bytes, explicit: pa.Schema | None, infer_rest: bool = False) -> pa.Table:
        parse = pajson.ParseOptions(
            explicit_schema=explicit,
            unexpected_field_behavior="infer" if infer_rest else ("ignore" if self.opts.columns is not None else "error"),
        )
        return pajson.read_json(
            pa.BufferReader(data),
            read_options=pajson.ReadOptions(use_threads=False, block_size=max(len(data) + 1, 1 << 16)),
            parse_options=parse,
        )

    def _finish(self, table: pa.Table) -> pa.Table:
        """Columns in schema order; fields absent from a block are all-null columns."""
        arrays = []
        for field in self.schema:
            if field.name in table.column_names:
                column = table.column(field.name)
                if column.type != field.type:
                    column = pc.cast(column, field.type)
            else:
                column = pa.nulls(table.num_rows, field.type)
            if self.opts.strip_whitespace and pa.types.is_string(field.type):
                column = normalize_strings(column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column, True)
            arrays.append(column)
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def parsed_blocks(self) -> Iterator[ParsedBlock]:
        blocks = itertools.chain([self._first] if self._first is not None else [], self._blocks)
        return parse_in_order(blocks, self.parse_block, self.text.next_line, in_flight=self.opts.blocks_in_flight)

    def parse_block(self, block: TextBlock) -> ParsedBlock:
        data = block.data
        rejects: list[rj.Reject] = []
        bad_rel: list[int] = []
        table = None
        bad_utf8 = invalid_utf8_lines(data)
        if bad_utf8:
            # pyarrow.json would carry invalid UTF-8 into string columns: reject the lines
            newlines = newline_positions(data)
            for line in bad_utf8:
                raw = line_range_text(data, newlines, line, line)
                rejects.append(rj.Reject(line, rj.ENCODING_ERROR, "invalid UTF-8 (pass encoding= e.g. 'latin-1' if the file is not UTF-8)", rj.truncate_raw(raw)))
            bad_rel.extend(bad_utf8)
            data = blank_out_lines(data, bad_utf8)
        elif block is self._first:
            table, self._first_table = self._first_table, None
        try:
            if table is None:
                table = self._parse(data, self.file_schema)
        except pa.ArrowInvalid:
            lines = data.split(b"\n")
            if data.endswith(b"\n"):
                lines = lines[:-1]
            good: list[int] = []
            self._bisect(lines, 0, len(lines), good, bad_rel, rejects, 1)
            table = self._parse(b"\n".join(lines[i] for i in good), self.file_schema) if good else self.file_schema.empty_table()
        # Every line is a row, a reject or a blank line: only when rows and rejects fall
        # short of the lines is there a blank line to find.
        line_count = count_lines(data)
        needs_scan = table.num_rows + len(rejects) != line_count
        blanks = _blank_line_numbers(data) if needs_scan else np.empty(0, dtype=np.int64)
        if bad_utf8:
            blanks = np.setdiff1d(blanks, bad_utf8)  # emptied here, not blank in the file
        rejects.sort(key=lambda r: r.line)
        # Numbered from line 1 here; parse_in_order shifts to the file's line numbers.
        return ParsedBlock(self._finish(table), rejects, 1, block.bytes_read,
                           rejected_records=merge_sorted(bad_rel), skipped_records=blanks, line_count=line_count)

    def _bisect(self, lines, lo, hi, good, bad_rel, rejects, first_line) -> None:
        """Append indices of parseable lines in [lo, hi) to ``good``, rejects for the others."""
        if hi - lo == 1 and not lines[lo].strip():
            return  # a blank line: skipped, neither a row nor a reject
        try:
            self._parse(b"\n".join(lines[lo:hi]), self.file_schema)
            good.extend(i for i in range(lo, hi) if lines[i].strip())
            return
        except pa.ArrowInvalid as exc:
            if hi - lo > _LEAF_LINES:
                mid = (lo + hi) // 2
                self._bisect(lines, lo, mid, good, bad_rel, rejects, first_line)
                self._bisect(lines, mid, hi, good, bad_rel, rejects, first_line)
                return
            if hi - lo == 1:
                rejects.append(self._reject(lines[lo], first_line + lo, exc))
                bad_rel.append(lo + 1)
                return
        for i in range(lo, hi):
            self._bisect(lines, i, i + 1, good, bad_rel, rejects, first_line)

    def _reject(self, line: bytes, line_no: int, exc: Exception) -> rj.Reject:
        raw = rj.truncate_raw(line.removesuffix(b"\r").decode("utf-8", errors="backslashreplace"))
        try:
            value = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            kind = rj.ENCODING_ERROR if isinstance(err, UnicodeDecodeError) else rj.JSON_ERROR
            return rj.Reject(line_no, kind, f"not valid JSON: {err}", raw)
        if not isinstance(value, dict):
            return rj.Reject(line_no, rj.JSON_ERROR, f"not a JSON object: {type(value).__name__}", raw)
        message = str(exc).removeprefix("JSON parse error: ")
        unexpected = sorted(set(value) - set(self.file_schema.names))
        if unexpected and self.opts.columns is None:
            return rj.Reject(
                line_no, rj.SCHEMA_ERROR,
                f"field {unexpected[0]!r} is not in the schema inferred from the first lines "
                f"({', '.join(self.file_schema.names)}); pass columns= to read a subset", raw,
            )
        return rj.Reject(line_no, rj.TYPE_ERROR, message, raw)


def _is_json_object(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
