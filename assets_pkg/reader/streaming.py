"""StreamingReader: the one way the project reads CSV/TSV/JSONL/Parquet (+ gzip).

It yields ``Chunk`` objects (an Arrow RecordBatch of at most ``chunk_size`` rows plus
counts and timing), keeps bad rows in ``rejects`` instead of dropping them, stops when
the reject share passes ``error_threshold``, and reports progress. Memory is bounded by
``memory_limit_mb`` (which sets the parse block size) and ``chunk_size``, never by the
file size. Each iteration is a fresh pass over the file (rejects and stats reset).
"""

import asyncio
import time
from dataclasses import replace
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from assets_pkg.io.atomic import atomic_path
from assets_pkg.obs import peak_rss_mb
from assets_pkg.storage import as_path
from assets_pkg.reader.chunking import ChunkBuilder
from assets_pkg.reader.csv_source import CsvSource
from assets_pkg.reader.errors import AccountingError, ReaderOptionError, RejectedRowError, RejectThresholdExceeded
from assets_pkg.reader.jsonl_source import JsonlSource
from assets_pkg.reader.options import validate_options
from assets_pkg.reader.parquet_source import ParquetSource
from assets_pkg.reader.progress import ProgressTracker, default_sink
from assets_pkg.reader.rejects import Reject, rejects_table
from assets_pkg.reader.sniff import detect_encoding, sniff_format
from assets_pkg.reader.stats import Chunk, ReadStats

# Below this many rows seen, one early reject would look like a huge rate: the threshold
# is checked mid-read only after this many rows, and always at the end.
MIN_ROWS_FOR_RATE = 1000
_SOURCES = {"csv": CsvSource, "tsv": CsvSource, "jsonl": JsonlSource, "parquet": ParquetSource}


class StreamingReader:
    """Stream a tabular file as Arrow record batches with rejects, stats and progress.

    >>> reader = StreamingReader("data.csv.gz", column_types={"amount": pa.float64()})
    >>> for chunk in reader:
    ...     handle(chunk.batch)
    >>> reader.rejects, reader.stats
    """

    def __init__(
        self,
        file_path: str | Path,
        file_format: str = "auto",
        encoding: str = "utf-8",
        chunk_size: int = 100_000,
        memory_limit_mb: float = 256,
        columns: Sequence[str] | None = None,
        column_types: Mapping[str, pa.DataType] | None = None,
        skip_rows: int = 0,
        max_rows: int | None = None,
        skip_empty: bool = True,
        strip_whitespace: bool = True,
        continue_on_error: bool = True,
        error_threshold: float = 0.05,
        report_progress: bool = False,
        progress_interval: float = 5.0,
        progress_callback: Callable | None = None,
        delimiter: str | None = None,
        max_quoted_lines: int = 1000,
        skip_data_rows: int = 0,
    ):
        self.options = validate_options(
            file_path, file_format, encoding, chunk_size, memory_limit_mb, columns, column_types, skip_rows,
            max_rows, skip_empty, strip_whitespace, continue_on_error, error_threshold, report_progress,
            progress_interval, progress_callback, delimiter, max_quoted_lines, skip_data_rows,
        )
        self.path = self.options.file_path
        if self.options.encoding.lower() == "auto":
            self.options = replace(self.options, encoding=detect_encoding(self.path))
        self.format = sniff_format(self.path, self.options.file_format, self.options.encoding, self.options.skip_rows)
        self.size_bytes = self.path.stat().st_size
        self._schema: pa.Schema | None = None
        self._rejects: list[Reject] = []
        self._stats = ReadStats(file_metadata=self._file_metadata(None))

    # -- public API ----------------------------------------------------------------------
    @property
    def schema(self) -> pa.Schema:
        """Schema of every batch (reads the header / first block once to know it)."""
        if self._schema is None:
            source = self._open_source()
            try:
                self._schema = source.schema
            finally:
                source.close()
        return self._schema

    @property
    def rejects(self) -> pa.Table:
        """Rejected rows so far: line (int64), error_type, error, raw."""
        return rejects_table(self._rejects)

    @property
    def stats(self) -> ReadStats:
        return self._stats

    def __iter__(self) -> Iterator[Chunk]:
        return self._read()

    async def __aiter__(self) -> AsyncIterator[Chunk]:
        """``async for chunk in reader``: each blocking step runs in a worker thread."""
        done = object()
        chunks = self._read()
        try:
            while True:
                chunk = await asyncio.to_thread(next, chunks, done)
                if chunk is done:
                    return
                yield chunk
        finally:
            await asyncio.to_thread(chunks.close)

    def to_record_batch_reader(self) -> pa.RecordBatchReader:
        """The chunks as a ``pyarrow.RecordBatchReader`` (feed DuckDB or ``write_table``)."""
        return pa.RecordBatchReader.from_batches(self.schema, (chunk.batch for chunk in self._read()))

    def write_rejects(self, path: str | Path) -> Path | None:
        """Write the rejects table as Parquet, atomically; nothing (None) when there are none."""
        if not self._rejects:
            return None
        path = as_path(path)
        with atomic_path(path) as tmp:
            pq.write_table(self.rejects, tmp)
        return path

    # -- the read loop -------------------------------------------------------------------
    def _open_source(self):
        return _SOURCES[self.format.format](self.options, self.format)

    def _file_metadata(self, schema: pa.Schema | None) -> dict:
        return {
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "format": self.format.format,
            "compression": self.format.compression,
            "encoding": self.options.encoding,
            "delimiter": self.options.delimiter or self.format.delimiter,
            "columns": schema.names if schema is not None else None,
        }

    def _progress(self) -> ProgressTracker:
        opts = self.options
        sink = opts.progress_callback or (default_sink() if opts.report_progress else None)
        return ProgressTracker(str(self.path), self.size_bytes, opts.progress_interval, sink)

    def _read(self) -> Iterator[Chunk]:
        opts = self.options
        self._rejects = []
        stats = self._stats = ReadStats()
        started = time.perf_counter()
        progress = self._progress()
        source = self._open_source()
        self._schema = source.schema
        stats.file_metadata = self._file_metadata(source.schema)
        stats.header_lines = source.header_lines
        stats.skipped_lines = source.preamble_lines
        stats.lines_read = source.header_lines + source.preamble_lines
        chunks = ChunkBuilder(opts.chunk_size, max(opts.block_bytes * 4, int(opts.memory_limit_mb * 2**20 / 8)), stats)
        rows = 0
        sized = False  # chunk_size checked against the memory budget (on the first rows)
        blocks = None
        try:
            if opts.max_rows == 0:
                return
            blocks = source.parsed_blocks()
            while True:
                block_started = time.perf_counter()
                block = self._next_block(blocks)
                if block is None:
                    break
                table, block_rejects, totals = block.table, block.rejects, block.line_totals()
                if not sized and table.num_rows >= MIN_ROWS_FOR_RATE:  # enough rows for a typical size
                    self._check_chunk_fits(table)
                    sized = True
                if opts.max_rows is not None and rows + table.num_rows >= opts.max_rows:
                    table, block_rejects, totals = self._cut_at_max_rows(block, opts.max_rows - rows)
                if block_rejects and not opts.continue_on_error:
                    first_bad = block_rejects[0]
                    yield from chunks.add(self._rows_before_line(block, table, first_bad.line), 0, 0.0)
                    yield from chunks.flush()
                    self._rejects.append(first_bad)
                    stats.total_errors += 1
                    raise RejectedRowError(self.path, first_bad.line, first_bad.error_type, first_bad.error)
                self._rejects.extend(block_rejects)
                stats.total_errors += len(block_rejects)
                stats.lines_read += totals.lines
                stats.row_lines += totals.row_lines
                stats.rejected_lines += totals.rejected_lines
                stats.skipped_lines += totals.skipped_lines
                rows += table.num_rows
                for chunk in chunks.add(table, len(block_rejects), (time.perf_counter() - block_started) * 1000):
                    yield chunk
                    progress.update(block.bytes_read, stats.total_rows)
                self._check_threshold(final=False)
                if opts.max_rows is not None and rows >= opts.max_rows:
                    break
            self._check_threshold(final=True)
            yield from chunks.flush()
            if not stats.line_identity_holds:
                raise AccountingError(f"{self.path}: lines do not add up: {stats.line_counts()}")
            progress.finish(source.bytes_read(), stats.total_rows)
        finally:
            if blocks is not None:
                blocks.close()  # stop the parser threads now, not when garbage is collected
            source.close()
            stats.seconds = time.perf_counter() - started
            stats.avg_chunk_ms = sum(chunks.chunk_ms) / len(chunks.chunk_ms) if chunks.chunk_ms else 0.0
            stats.peak_memory_mb = peak_rss_mb()
            stats.rows_per_second = stats.total_rows / stats.seconds if stats.seconds > 0 else 0.0

    def _next_block(self, blocks):
        try:
            return next(blocks, None)
        except AccountingError as exc:
            line = self._stats.lines_read + 1
            raise AccountingError(f"{self.path}: in the block starting near line {line}: {exc}") from None

    @staticmethod
    def _rows_before_line(block, table: pa.Table, line: int) -> pa.Table:
        if table.num_rows == 0:
            return table
        lines = block.line_of_rows(np.arange(table.num_rows))
        return table.slice(0, int(np.searchsorted(lines, line)))

    @staticmethod
    def _cut_at_max_rows(block, keep: int):
        """The first ``keep`` rows, the rejects before the last of them, and the line
        totals of the records up to it (the lines after it count as not read)."""
        table = block.table.slice(0, keep)
        if keep == 0:
            return table, [], block.line_totals(records=0)
        last_record = int(block.record_of_rows([keep - 1])[0])
        last_line = int(block.line_of_rows([keep - 1])[0])
        return table, [r for r in block.rejects if r.line < last_line], block.line_totals(records=last_record)

    def _check_chunk_fits(self, table: pa.Table) -> None:
        """A chunk of ``chunk_size`` rows, at the average size of the first block's rows
        (at least 1,000 of them, so one long line does not decide), must fit in
        ``memory_limit_mb``: else the budget cannot hold one chunk and the read stops here,
        naming both options (the chunk builder cuts chunks at an eighth of the budget for
        wide rows; this is the case where even that would hide a misconfiguration)."""
        opts = self.options
        per_row = table.nbytes / table.num_rows
        need_mb = opts.chunk_size * per_row / 2**20
        if need_mb > opts.memory_limit_mb:
            fit = max(1, int(opts.memory_limit_mb * 2**20 / per_row))
            raise ReaderOptionError(
                "memory_limit_mb",
                f"{self.path}: one chunk of chunk_size={opts.chunk_size:,} rows takes about {need_mb:,.0f} MiB "
                f"({per_row:,.0f} bytes a row in the first rows), more than memory_limit_mb={opts.memory_limit_mb}; "
                f"lower chunk_size to at most {fit:,} or raise memory_limit_mb to {int(need_mb) + 1}",
            )

    def _check_threshold(self, final: bool) -> None:
        stats = self._stats
        seen = stats.data_lines
        if not stats.rejected_lines or (not final and seen < MIN_ROWS_FOR_RATE):
            return
        if stats.reject_rate > self.options.error_threshold:
            raise RejectThresholdExceeded(self.path, stats.rejected_lines, seen, self.options.error_threshold)
