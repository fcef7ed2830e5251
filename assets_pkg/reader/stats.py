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


@dataclass
class ReadStats:
    total_chunks: int = 0
    total_rows: int = 0
    total_errors: int = 0
    chunks_with_errors: int = 0
    avg_chunk_ms: float = 0.0
    peak_memory_mb: float = 0.0  # peak RSS of the process so far
    file_metadata: dict = field(default_factory=dict)  # path, size_bytes, format, compression, encoding, columns
    seconds: float = 0.0
    rows_per_second: float = 0.0

    def as_metadata(self) -> dict:
        """Flat numbers for Dagster metadata / JSON logs."""
        return {
            "total_chunks": self.total_chunks,
            "total_rows": self.total_rows,
            "total_errors": self.total_errors,
            "chunks_with_errors": self.chunks_with_errors,
            "avg_chunk_ms": round(self.avg_chunk_ms, 2),
            "peak_memory_mb": self.peak_memory_mb,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second, 1),
        }
