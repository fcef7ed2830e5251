"""Streaming reader for CSV/TSV/JSONL/Parquet (optionally gzip): Arrow batches in bounded
memory, a rejects table instead of silently dropped rows, stats and progress.

See docs/foundation.md ("Streaming reader") for the API other packages code against.
"""

from assets_pkg.reader.errors import ReaderError, ReaderOptionError, RejectedRowError, RejectThresholdExceeded
from assets_pkg.reader.progress import ProgressEvent, format_progress
from assets_pkg.reader.rejects import REJECTS_SCHEMA
from assets_pkg.reader.sniff import SniffedFormat, sniff_format
from assets_pkg.reader.stats import Chunk, ReadStats
from assets_pkg.reader.streaming import StreamingReader

__all__ = [
    "REJECTS_SCHEMA",
    "Chunk",
    "ProgressEvent",
    "ReadStats",
    "ReaderError",
    "ReaderOptionError",
    "RejectThresholdExceeded",
    "RejectedRowError",
    "SniffedFormat",
    "StreamingReader",
    "format_progress",
    "sniff_format",
]
