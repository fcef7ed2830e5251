"""What the reader yields (Chunk) and what it reports about a whole read (ReadStats)."""

from dataclasses import dataclass, field

import pyarrow as pa


@dataclass(frozen=True)
class Chunk:
    chunk_id: int  # 0-based, in file order
    rows: int  # rows in ``batch``
    errors: int  # rows rejected while producing this chunk
    processing_ms: float  # wall time spent producing it (read, parse, convert)
    batch: pa.RecordBatch
    memory_bytes: int = 0  # Arrow memory the chunk's columns hold


@dataclass
class ReadStats:
    """Counts of one read. Every physical line read is in exactly one of header_lines,
    skipped_lines (``skip_rows`` and blank lines), rejected_lines (all lines of each
    rejected record) and row_lines (all lines of each returned row): ``line_identity_holds``.
    ``total_rows`` <= ``row_lines``; they differ by the extra lines of quoted values that
    span lines. Parquet counts rows as lines."""

    total_chunks: int = 0
    total_rows: int = 0
    total_errors: int = 0  # rejected records (each may span several lines)
    lines_read: int = 0
    header_lines: int = 0
    skipped_lines: int = 0
    rejected_lines: int = 0
    row_lines: int = 0
    chunks_with_errors: int = 0
    error_chunk_ids: list = field(default_factory=list)  # chunk_id of each chunk with rejects    avg_chunk_ms: float = 0.0
    peak_memory_mb: float = 0.0  # peak RSS of the process so far
    file_metadata: dict = field(default_factory=dict)  # path, size_bytes, format, compression, encoding, columns
    seconds: float = 0.0
    rows_per_second: float = 0.0

    @property
    def data_lines(self) -> int:
        """Lines that were rows or rejects: what the reject rate is a share of."""
        return self.row_lines + self.rejected_lines

    @property
    def reject_rate(self) -> float:
        return self.rejected_lines / self.data_lines if self.data_lines else 0.0

    @property
    def line_identity_holds(self) -> bool:
        return self.lines_read == self.header_lines + self.skipped_lines + self.rejected_lines + self.row_lines

    def line_counts(self) -> dict:
        """The line identity's terms: lines_read = header + skipped + rejected + row lines."""
        return {
            "lines_read": self.lines_read,
            "header_lines": self.header_lines,
            "skipped_lines": self.skipped_lines,
            "rejected_lines": self.rejected_lines,
            "row_lines": self.row_lines,
            "rows": self.total_rows,
        }

    def as_metadata(self) -> dict:
        """Flat numbers for Dagster metadata / JSON logs."""
        return {
            **self.line_counts(),
            "total_chunks": self.total_chunks,
            "total_rows": self.total_rows,
            "total_errors": self.total_errors,
            "chunks_with_errors": self.chunks_with_errors,
            "error_chunk_ids": list(self.error_chunk_ids[:100]),
            "avg_chunk_ms": round(self.avg_chunk_ms, 2),
            "peak_memory_mb": self.peak_memory_mb,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second, 1),
        }
