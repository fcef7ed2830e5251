"""Parquet -> batches of at most ``chunk_size`` rows, with the same type conversion and
rejects as the text formats. A reject's ``line`` is the 1-based row number in the file
(Parquet has no lines) and ``raw`` is the row as JSON.

A gzipped Parquet file cannot be read in place (Parquet needs random access), so it is
first decompressed to a temporary file beside the system temp dir, streamed, then removed.
"""

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
from isal import igzip

from assets_pkg.reader import rejects as rj
from assets_pkg.reader.casting import convert_table, normalize_strings
from assets_pkg.reader.errors import ReaderError
from assets_pkg.reader.options import ReaderOptions
from assets_pkg.reader.parsed import ParsedBlock
from assets_pkg.reader.sniff import SniffedFormat, open_binary
from assets_pkg.storage.arrow import parquet_file
from assets_pkg.reader.textblocks import DECOMPRESS_ERRORS


class ParquetSource:
    def __init__(self, opts: ReaderOptions, sniffed: SniffedFormat):
        self.opts = opts
        self.path = opts.file_path
        self._tmp: Path | None = None
        self.total_bytes = self.path.stat().st_size
        read_path = self.path
        if sniffed.compression == "gzip":
            read_path = self._decompress()
        try:
            self.file = parquet_file(read_path, memory_map=False, buffer_size=1 << 20)
        except (pa.ArrowInvalid, OSError) as exc:
            self.close()
            raise ReaderError(f"{self.path}: not a readable Parquet file: {exc}") from None
        self.total_rows = self.file.metadata.num_rows
        file_schema = self.file.schema_arrow
        available = file_schema.names
        if len(set(available)) != len(available):
            dup = next(n for n in available if available.count(n) > 1)
            self.close()
            raise ReaderError(f"{self.path}: duplicate column name {dup!r}")
        for option, names in (("columns", opts.columns or ()), ("column_types", opts.column_types or {})):
            for name in names:
                if name not in available:
                    self.close()
                    raise ReaderError(
                        f"{self.path}: column {name!r} named in {option} does not exist; available columns: {', '.join(available)}"
                    )
        self.columns = list(opts.columns) if opts.columns is not None else list(available)
        declared = opts.column_types or {}
        self.schema = pa.schema([pa.field(c, declared.get(c, file_schema.field(c).type)) for c in self.columns])
        self._casts = {c: declared[c] for c in self.columns if c in declared and declared[c] != file_schema.field(c).type}
        self._rows_done = 0
        self.header_lines = 0
        self.preamble_lines = 0  # rows skipped by skip_rows

    def _decompress(self) -> Path:
        fd, name = tempfile.mkstemp(suffix=".parquet", prefix="reader-")
        self._tmp = Path(name)
        try:
            with open(fd, "wb") as out, open_binary(self.path, 8 << 20) as raw, igzip.IGzipFile(fileobj=raw) as src:
                shutil.copyfileobj(src, out, 4 << 20)
        except (EOFError, *DECOMPRESS_ERRORS) as exc:
            self.close()
            raise ReaderError(f"{self.path}: cannot decompress gzip (truncated or corrupt): {exc}") from None
        return self._tmp

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None

    def bytes_read(self) -> int:
        # Parquet is read by row group, not sequentially: report the share of rows read.
        if not self.total_rows:
            return self.total_bytes
        return int(self.total_bytes * self._rows_done / self.total_rows)

    def parsed_blocks(self) -> Iterator[ParsedBlock]:
        row = 0  # 0-based row in the file of the next batch
        batch_rows = max(1, min(self.opts.chunk_size, 1 << 20))
        to_skip = self.opts.skip_rows + self.opts.skip_data_rows  # no header: both skip first rows
        try:
            for batch in self.file.iter_batches(batch_size=batch_rows, columns=self.columns, use_threads=True):
                first_row = row
                row += batch.num_rows
                self._rows_done = row
                if to_skip:
                    drop = min(to_skip, batch.num_rows)
                    self.preamble_lines += drop
                    batch, first_row, to_skip = batch.slice(drop), first_row + drop, to_skip - drop
                    if batch.num_rows == 0:
                        continue
                yield self._convert(pa.Table.from_batches([batch]), first_row)
        except OSError as exc:
            raise ReaderError(f"{self.path}: Parquet data is corrupt near row {row + 1}: {exc}") from None

    def _convert(self, table: pa.Table, first_row: int) -> ParsedBlock:
        if self.opts.strip_whitespace:
            table = pa.Table.from_arrays(
                [normalize_strings(c.combine_chunks(), True) if pa.types.is_string(c.type) else c for c in table.columns],
                names=table.column_names,
            )
        rejects: list[rj.Reject] = []
        excluded = np.empty(0, dtype=np.int64)
        if self._casts:
            original = table
            table, failures = convert_table(table, self._casts)
            if failures:
                rows = sorted(failures)
                for pos in rows:
                    column, value, target = failures[pos]
                    raw = json.dumps(original.slice(pos, 1).to_pylist()[0], default=str)
                    rejects.append(rj.Reject(first_row + pos + 1, rj.TYPE_ERROR, f"column {column!r}: cannot convert {value!r} to {target}", rj.truncate_raw(raw)))
                excluded = np.asarray(rows, dtype=np.int64) + 1  # 1-based rows within the batch
        return ParsedBlock(table, rejects, first_row + 1, self.bytes_read(), rejected_records=excluded,
                           line_count=len(excluded) + table.num_rows)
