"""One parsed block: its good rows, its rejects, and the map from rows back to lines."""

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from assets_pkg.reader.rejects import Reject


@dataclass
class ParsedBlock:
    table: pa.Table  # good rows, final types
    rejects: list[Reject]  # sorted by line
    first_line: int  # physical line (or parquet row) of the block's first line
    bytes_read: int  # file bytes consumed when the block was read
    # Lines of the block that produced no row (rejects, skipped blank lines), sorted,
    # absolute. Every other line is one row, in order: that is how rows map to lines.
    excluded_lines: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    def line_of_rows(self, rows: np.ndarray) -> np.ndarray:
        """Physical line of each good-row position in ``table``."""
        rows = np.asarray(rows, dtype=np.int64)
        # Good lines before excluded line j: d_j = excluded_j - first_line - j. Row k sits
        # after every excluded line with d_j <= k.
        d = self.excluded_lines - self.first_line - np.arange(len(self.excluded_lines))
        return self.first_line + rows + np.searchsorted(d, rows, side="right")


def merge_sorted(*arrays) -> np.ndarray:
    parts = [np.asarray(a, dtype=np.int64) for a in arrays if len(a)]
    if not parts:
        return np.empty(0, dtype=np.int64)
    return np.unique(np.concatenate(parts))
