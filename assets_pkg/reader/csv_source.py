"""CSV/TSV blocks -> typed Arrow tables plus rejects with exact line numbers.

Each line-aligned block is parsed by ``pyarrow.csv.read_csv`` in a worker thread
(``parsed.parse_in_order``: two parsing, so both cores work, while the next is read).
Single-threaded parsing *inside* a block is deliberate: then Arrow reports the line
number of every ragged row, and with blank lines kept as rows (``ignore_empty_lines=False``)
every line of a block is either a parsed row or a ragged row, so rows map back to lines.

Types: a block is first parsed straight into its final types (the fast path). Only if
that fails is it parsed again as text and converted column by column with
``casting.convert_table``, which finds exactly the rows whose values do not convert;
those become ``type_error`` rejects. Invalid UTF-8 lines become ``encoding_error``
rejects. Quoted values may contain line breaks: blocks are never cut inside quotes, and
``record_lines`` maps records (what Arrow numbers) back to physical lines; a reject's
line is the line its record starts on.
"""

import csv
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from assets_pkg.reader import rejects as rj
from assets_pkg.reader.casting import casts, convert_table, normalize_strings
from assets_pkg.reader.errors import ReaderError
from assets_pkg.reader.linemap import (
    blank_out_lines,
    invalid_utf8_lines,
    line_range_text,
    lines_to_records,
    newline_positions,
    record_span,
    record_starts,
    record_text,
)
from assets_pkg.reader.options import ReaderOptions
from assets_pkg.reader.parsed import ParsedBlock, merge_sorted, parse_in_order, record_to_line
from assets_pkg.reader.quotes import scan_records
from assets_pkg.reader.sniff import SniffedFormat
from assets_pkg.reader.textblocks import TextBlock, TextBlocks, count_lines

_TEXT_INFERENCE_ORDER = (pa.int64(), pa.bool_(), pa.date32(), pa.timestamp("s"), pa.timestamp("ns"), pa.float64())
_OTHER_DELIMITERS = (",", "\t", ";", "|")
_DELIMITER_NAMES = {",": "','", "\t": "'\\t' (tab)", ";": "';'", "|": "'|'"}


class CsvSource:
    """Header, schema and parsed blocks of one CSV/TSV file."""

    def __init__(self, opts: ReaderOptions, sniffed: SniffedFormat):
        self.opts = opts
        self.path = opts.file_path
        self.delimiter = opts.delimiter or sniffed.delimiter or ","
        self.text = TextBlocks(self.path, sniffed.compression == "gzip", opts.encoding, opts.block_bytes)
        self.header_lines = 0
        self.preamble_lines = 0  # lines skipped by skip_rows
        try:
            # skip_rows: lines before the header (a preamble, e.g. a protein file's 13 metadata
            # lines); skip_data_rows: data lines right after it
            self.preamble_lines = self._skip(opts.skip_rows)
            self.file_columns = self._read_header()
            self.header_lines = 1
            self.preamble_lines += self._skip(opts.skip_data_rows)
            self.columns = self._select_columns()
            n_fields = len(self.file_columns)
            self.text.scan_records = lambda data, at_eof: scan_records(
                data, self.delimiter, n_fields, opts.max_quoted_lines, at_eof
            )
            self._blocks = self.text.blocks()
            self._first = next(self._blocks, None)
            self._first_prepared = self._prepare(self._first) if self._first is not None else None
            self._first_result = None
            self.schema = self._infer_schema()
        except BaseException:
            self.text.close()
            raise
        self.types = {f.name: f.type for f in self.schema}
        self._text_types = {name: pa.string() for name in self.columns}
        self._casts = {name: t for name, t in self.types.items() if t != pa.string()}

    def close(self) -> None:
        self.text.close()

    def bytes_read(self) -> int:
        return self.text.bytes_read()

    def _skip(self, lines: int) -> int:
        skipped = 0
        while skipped < lines and self.text.read_line() is not None:
            skipped += 1
        return skipped

    # -- header and schema -------------------------------------------------------------
    def _read_header(self) -> list[str]:
        self.header_line = line = self.text.next_line
        header = self.text.read_line()
        if header is None or not header.strip():
            hint = f" (after skip_rows={self.opts.skip_rows} lines)" if self.opts.skip_rows else ""
            raise ReaderError(f"{self.path}: line {line} (the header{hint}) is empty; expected column names")
        try:
            text = header.decode("utf-8")
        except UnicodeDecodeError:
            raise ReaderError(
                f"{self.path}: line {line} (the header) is not valid UTF-8; pass encoding= (e.g. 'latin-1' or 'auto')"
            ) from None
        names = next(csv.reader([text], delimiter=self.delimiter))
        if self.opts.strip_whitespace:
            names = [n.strip() for n in names]
        if len(names) == 1:
            for other in _OTHER_DELIMITERS:
                if other != self.delimiter and other in names[0]:
                    raise ReaderError(
                        f"{self.path}: the header (line {line}) is one column {names[0][:80]!r} containing "
                        f"{_DELIMITER_NAMES[other]}: the delimiter is probably {_DELIMITER_NAMES[other]}, not "
                        f"{_DELIMITER_NAMES.get(self.delimiter, repr(self.delimiter))}; pass delimiter={other!r}"
                        + (" or file_format='tsv'" if other == "\t" else "")
                    )
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise ReaderError(f"{self.path}: duplicate column name {name!r} in the header (line {line})")
            seen.add(name)
        return names

    def _select_columns(self) -> list[str]:
        available = self.file_columns
        if self.opts.columns is not None:
            missing = [c for c in self.opts.columns if c not in available]
            if missing:
                raise ReaderError(
                    f"{self.path}: column {missing[0]!r} requested in columns does not exist; "
                    f"available columns: {', '.join(available)}"
                )
        for name in self.opts.column_types or {}:
            if name not in available:
                raise ReaderError(
                    f"{self.path}: column {name!r} named in column_types does not exist; "
                    f"available columns: {', '.join(available)}"
                )
        return list(self.opts.columns) if self.opts.columns is not None else list(available)

    def _infer_schema(self) -> pa.Schema:
        """Declared types win; the rest are inferred from the first block.

        Normally Arrow infers them while parsing the first block exactly as every block
        is parsed, and that parse is kept as the first block's result (no second pass).
        With ``strip_whitespace`` (or a first block that does not parse typed) the
        values are read as text and each column gets the first of int64, bool, date32,
        timestamp[s], timestamp[ns], float64 that all its values convert to. An
        all-empty column would infer as ``null`` and reject every later value, and
        invalid UTF-8 infers as binary: both become string."""
        declared = {n: t for n, t in (self.opts.column_types or {}).items() if n in self.columns}
        undeclared = [c for c in self.columns if c not in declared]
        inferred: dict[str, pa.DataType] = {}
        parsed = None
        if undeclared and self._first is not None:
            data = self._first_prepared.data
            try:
                parsed = self._read(data, declared)
                inferred = {name: parsed[0].schema.field(name).type for name in undeclared}
            except pa.ArrowInvalid:
                parsed = None
            if parsed is None:
                inferred = self._infer_from_text(data, undeclared)
            elif self.opts.strip_whitespace:
                # Arrow sees " 5 " as text: only columns with spaces around a value are
                # inferred again from their stripped text (the common case costs nothing)
                padded = [n for n in undeclared if pa.types.is_string(inferred[n]) and _padded(parsed[0].column(n))]
                if padded:
                    inferred.update(self._infer_from_text(data, padded))
        fields = []
        for name in self.columns:
            dtype = declared.get(name) or inferred.get(name, pa.string())
            if pa.types.is_null(dtype) or (name not in declared and pa.types.is_binary(dtype)):
                dtype = pa.string()
            fields.append(pa.field(name, dtype))
        schema = pa.schema(fields)
        if parsed is not None and parsed[0].schema == schema:
            self._first_result = parsed
        return schema

    def _infer_from_text(self, data, undeclared: list[str]) -> dict[str, pa.DataType]:
        text_types = {name: pa.string() for name in self.columns}
        try:
            table = self._read(data, text_types)[0]
        except pa.ArrowInvalid:
            return {}
        inferred = {}
        for name in undeclared:
            values = normalize_strings(table.column(name).combine_chunks(), self.opts.strip_whitespace).drop_null()
            inferred[name] = next((t for t in _TEXT_INFERENCE_ORDER if len(values) and casts(values, t)), pa.string())
        return inferred

    # -- blocks --------------------------------------------------------------------------
    def parsed_blocks(self) -> Iterator[ParsedBlock]:
        blocks = itertools.chain([self._first] if self._first is not None else [], self._blocks)
        return parse_in_order(blocks, self.parse_block, self.text.next_line)

    def _read(self, data: bytes, types: dict) -> tuple[pa.Table, list]:
        invalid: list[tuple[int, int, int, str]] = []

        def on_invalid_row(row) -> str:
            invalid.append((row.number, row.expected_columns, row.actual_columns, row.text))
            return "skip"

        table = pacsv.read_csv(
            pa.BufferReader(pa.py_buffer(data)),
            read_options=pacsv.ReadOptions(column_names=self.file_columns, use_threads=False, block_size=len(data) + 1),
            parse_options=pacsv.ParseOptions(
                delimiter=self.delimiter, invalid_row_handler=on_invalid_row, ignore_empty_lines=False
            ),
            convert_options=pacsv.ConvertOptions(
                include_columns=self.columns,
                column_types=types,
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
        return table, invalid

    def _type_hint(self, column: str) -> str:
        if column in (self.opts.column_types or {}):
            return ""
        return f" (type inferred from the first block; pass column_types={{{column!r}: pa.string()}} or another type to change it)"

    def _empty_rows(self, table: pa.Table) -> np.ndarray:
        """Positions of rows whose every column is null (skip_empty). A column without
        nulls (O(1) to ask) proves there is none: the common case costs no scan."""
        if not self.opts.skip_empty or table.num_rows == 0 or table.num_columns == 0:
            return np.empty(0, dtype=np.int64)
        if any(column.null_count == 0 for column in table.columns):
            return np.empty(0, dtype=np.int64)
        empty = pc.is_null(table.column(0))
        for column in table.columns[1:]:
            empty = pc.and_(empty, pc.is_null(column))
        return np.flatnonzero(empty.to_numpy(zero_copy_only=False)).astype(np.int64)

    def _prepare(self, block: TextBlock) -> "PreparedText":
        """The block as the parser may see it: lines the record scan refused (an
        unterminated quote, a lone carriage return) and records holding invalid UTF-8
        are emptied - their line numbers kept - and become rejects. Invalid UTF-8 empties
        its whole record: emptying one line of a quoted value would re-pair its quotes."""
        data = block.data
        line_count = count_lines(data)
        spans = list(block.spans)
        records = record_starts(spans, line_count)
        found = [(line, line, rj.UNTERMINATED_QUOTE, self._unterminated_message()) for line in block.unterminated]
        found += [(line, line, rj.LINE_BREAK, _LINE_BREAK_MESSAGE) for line in block.bare_cr]
        for line in invalid_utf8_lines(data):
            first, last = record_span(line, records, line_count)
            found.append((first, last, rj.ENCODING_ERROR, _ENCODING_MESSAGE))
        if not found:
            return PreparedText(data, line_count, records)
        newlines = newline_positions(data)
        rejects, bad_lines, taken = [], [], set()
        for first, last, kind, message in sorted(found, key=lambda f: f[0]):
            if first in taken:
                continue  # one reject per line, the first reason found
            taken.add(first)
            rejects.append(rj.Reject(first, kind, message, rj.truncate_raw(line_range_text(data, newlines, first, last))))
            bad_lines.extend(range(first, last + 1))
            if last > first:  # emptied, its lines are separate records now
                spans.remove((first, last))
        return PreparedText(blank_out_lines(data, bad_lines), line_count, record_starts(spans, line_count),
                            rejects, np.asarray(sorted(bad_lines), dtype=np.int64))

    def _unterminated_message(self) -> str:
        return (
            "a quote opened on this line does not close as a CSV value must: within "
            f"max_quoted_lines={self.opts.max_quoted_lines} lines, before the end of the file, followed by "
            "the delimiter or the end of a line, in a record with the header's number of fields; "
            "the line is rejected and reading resumes on the next line"
        )

    def parse_block(self, block: TextBlock) -> ParsedBlock:
        typed_fast_path = True
        cached = None
        if block is self._first:  # prepared and parsed already while inferring the schema
            prepared, self._first_prepared = self._first_prepared, None
            cached, self._first_result = self._first_result, None
        else:
            prepared = self._prepare(block)
        data, records = prepared.data, prepared.records
        while cached is None:
            try:
                if typed_fast_path:
                    table, invalid = self._read(data, self.types)
                else:
                    table, invalid = self._read(data, self._text_types)
                break
            except pa.ArrowInvalid as exc:
                if typed_fast_path:
                    typed_fast_path = False  # a value failed its type: find which, as text
                    continue
                raise ReaderError(f"{self.path}: cannot parse a block of {len(data):,} bytes: {exc}") from None
        if cached is not None:
            table, invalid = cached

        # Everything below counts records (1-based in the block); ``records`` turns them
        # into physical lines where a quoted value spans lines.
        invalid_rec = np.asarray(sorted(n for n, *_ in invalid), dtype=np.int64)
        if self.opts.strip_whitespace and (not typed_fast_path or _may_be_padded(data, self.delimiter)):
            # typed: only text columns (a number with spaces around it failed its type and
            # came here as text); as text, every column before it is converted
            table = pa.Table.from_arrays(
                [normalize_strings(table.column(n).combine_chunks(), True)
                 if not typed_fast_path or pa.types.is_string(table.schema.field(n).type) else table.column(n)
                 for n in table.column_names],
                names=table.column_names,
            )
        bad_text_rec = lines_to_records(prepared.bad_lines, records, starts_only=True)
        # skip_empty: a row whose every (selected) column is empty - a blank line included
        blank_rec = np.setdiff1d(_records_of_rows(self._empty_rows(table), invalid_rec), bad_text_rec)
        drop_rec = merge_sorted(bad_text_rec, blank_rec)
        # Row position of a (non-ragged) record = record - 1 - ragged records before it.
        drop_rows = drop_rec - 1 - np.searchsorted(invalid_rec, drop_rec)
        failures: dict = {}
        if typed_fast_path:
            if len(drop_rows):
                keep = np.ones(table.num_rows, dtype=bool)
                keep[drop_rows] = False
                table = table.filter(pa.array(keep))
        else:
            table, failures = convert_table(table, self._casts, drop_rows)

        # Lines are numbered from 1 here; parse_in_order shifts them to the file's lines.
        def line_of(record: int) -> int:
            return int(record_to_line([record], records)[0])

        rejects = [
            rj.Reject(line_of(n), rj.RAGGED_ROW, f"expected {exp} fields, found {act}", rj.truncate_raw(text))
            for n, exp, act, text in invalid
        ]
        rejects += prepared.rejects
        failure_rec = np.empty(0, dtype=np.int64)
        if failures:
            rows = np.asarray(sorted(failures), dtype=np.int64)
            failure_rec = _records_of_rows(rows, invalid_rec)
            newlines = newline_positions(data)
            for row, rec in zip(rows.tolist(), failure_rec.tolist()):
                column, value, target = failures[row]
                rejects.append(
                    rj.Reject(line_of(rec), rj.TYPE_ERROR, f"column {column!r}: cannot convert {value!r} to {target}{self._type_hint(column)}",
                              rj.truncate_raw(record_text(data, newlines, rec, records)))
                )
        rejects.sort(key=lambda r: r.line)
        return ParsedBlock(
            table=table, rejects=rejects, first_line=1, bytes_read=block.bytes_read,
            rejected_records=merge_sorted(invalid_rec, bad_text_rec, failure_rec), skipped_records=blank_rec,
            line_count=prepared.line_count, record_lines=records,
        )


_ASCII_SPACES = (b" ", b"\t", b"\x0b", b"\x0c")


def _may_be_padded(data, delimiter: str) -> bool:
    """Whether any value of the block can have whitespace around it: an ASCII block with
    no space, tab (unless it is the delimiter), vertical tab or form feed has none, and
    ``bytes.find`` answers that far faster than trimming every text column."""
    if not data.isascii():
        return True  # Unicode whitespace too
    return any(data.find(space) >= 0 for space in _ASCII_SPACES if space != delimiter.encode())


def _padded(column) -> bool:
    """Whether any value of a text column has whitespace around it."""
    trimmed = pc.utf8_trim_whitespace(column)
    return bool(pc.any(pc.not_equal(column, trimmed)).as_py())


def _records_of_rows(rows: np.ndarray, invalid_rec: np.ndarray) -> np.ndarray:
    """Records (1-based) of parsed row positions, ragged records being skipped by the parser."""
    d = invalid_rec - 1 - np.arange(len(invalid_rec))
    return 1 + rows + np.searchsorted(d, rows, side="right")


_ENCODING_MESSAGE = "invalid UTF-8 (pass encoding= e.g. 'latin-1' if the file is not UTF-8)"
_LINE_BREAK_MESSAGE = (
    "a carriage return (\\r) inside the line, which CSV parsers read as a line break; the whole line is rejected"
)


@dataclass(frozen=True)
class PreparedText:
    data: bytes | bytearray
    line_count: int
    records: np.ndarray | None  # line where each record starts (None: one line each)
    rejects: list = field(default_factory=list)
    bad_lines: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))  # emptied lines
