"""One parsed block: its good rows, its rejects, and the map from rows back to lines."""

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa

from assets_pkg.reader.errors import AccountingError
from assets_pkg.reader.rejects import Reject


@dataclass(frozen=True)
class LineTotals:
    """How a stretch of physical lines was used: every line is in exactly one of these."""

    lines: int
    row_lines: int  # lines that became rows (a multi-line record: all its lines)
    rejected_lines: int  # lines of rejected records
    skipped_lines: int  # blank lines skipped


@dataclass
class ParsedBlock:
    """Rows are numbered by *record*: a record is one physical line, except that a CSV
    value in quotes may span lines. ``record_lines`` maps records to lines when it does."""

    table: pa.Table  # good rows, final types
    rejects: list[Reject]  # sorted by line, lines absolute once placed by parse_in_order
    first_line: int  # physical line (or parquet row) of the block's first line
    bytes_read: int  # file bytes consumed when the block was read
    # Records (1-based within the block) that produced no row. Every other record is one
    # row, in order: that is how rows map to lines.
    rejected_records: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    skipped_records: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))  # blank lines
    line_count: int = 0  # physical lines the block covered
    # Line (1-based within the block) where record i+1 starts; None: record n is line n.
    record_lines: np.ndarray | None = None

    def __post_init__(self):
        self.excluded_records = merge_sorted(self.rejected_records, self.skipped_records)
        records = self.line_count if self.record_lines is None else len(self.record_lines)
        if self.table.num_rows + len(self.excluded_records) != records:
            # Rows map to lines by position: a miscount would misplace every later line.
            raise AccountingError(
                f"{self.table.num_rows} rows + {len(self.excluded_records)} rejected or skipped records "
                f"!= {records} records in {self.line_count} lines"
            )

    def shifted(self, first_line: int) -> "ParsedBlock":
        """The same block numbered from ``first_line`` (parsers number blocks from 1)."""
        offset = first_line - self.first_line
        if offset == 0:
            return self
        return replace(self, rejects=[replace(r, line=r.line + offset) for r in self.rejects], first_line=first_line)

    def record_of_rows(self, rows) -> np.ndarray:
        """Record (1-based in the block) of each good row (position in ``table``)."""
        rows = np.asarray(rows, dtype=np.int64)
        # Good records before excluded record j: d_j = excluded_j - 1 - j. Row k sits
        # after every excluded record with d_j <= k.
        d = self.excluded_records - 1 - np.arange(len(self.excluded_records))
        return 1 + rows + np.searchsorted(d, rows, side="right")

    def line_of_rows(self, rows) -> np.ndarray:
        """Physical line where each good row (position in ``table``) starts."""
        return self.first_line - 1 + record_to_line(self.record_of_rows(rows), self.record_lines)

    def line_totals(self, records: int | None = None) -> LineTotals:
        """Line accounting of the block's first ``records`` records (default: all)."""
        if self.record_lines is None:
            n = self.line_count if records is None else records
            rejected = int(np.count_nonzero(self.rejected_records <= n))
            lines = n
        else:
            n = len(self.record_lines) if records is None else records
            ends = np.append(self.record_lines[1:], self.line_count + 1)
            lengths = ends - self.record_lines
            chosen = self.rejected_records[self.rejected_records <= n]
            rejected = int(lengths[chosen - 1].sum())
            lines = int(lengths[:n].sum())
        skipped = int(np.count_nonzero(self.skipped_records <= n))  # a blank record is one line
        return LineTotals(lines, lines - rejected - skipped, rejected, skipped)


def record_to_line(records, record_lines: np.ndarray | None) -> np.ndarray:
    records = np.asarray(records, dtype=np.int64)
    return records if record_lines is None else record_lines[records - 1]


def merge_sorted(*arrays) -> np.ndarray:
    parts = [np.asarray(a, dtype=np.int64) for a in arrays if len(a)]
    if not parts:
        return np.empty(0, dtype=np.int64)
    return np.unique(np.concatenate(parts))


PARSER_THREADS = 2


def parse_in_order(
    blocks: Iterable, parse: Callable, first_line: int, threads: int = PARSER_THREADS, in_flight: int | None = None
) -> Iterator[ParsedBlock]:
    """Parse blocks in worker threads (Arrow releases the GIL), yield them in file order
    with their line numbers. At most ``in_flight`` blocks (default ``threads + 1``) are
    read and not yet yielded, which bounds memory: the next block is read while
    ``threads`` are being parsed. More in flight lets the workers run ahead while the
    consumer is busy with a chunk (e.g. writing it)."""
    in_flight = max(threads + 1, in_flight or 0)
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="reader-parse")
    pending: deque = deque()
    next_line = first_line

    def placed(future) -> ParsedBlock:
        nonlocal next_line
        block = future.result().shifted(next_line)
        next_line += block.line_count
        return block

    try:
        for block in blocks:
            pending.append(pool.submit(parse, block))
            if len(pending) >= in_flight:
                yield placed(pending.popleft())
        while pending:
            yield placed(pending.popleft())
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)
