"""Stream one text file into bounded Parquet shards plus a rejects file.

The output folder is built beside the final one and swapped in only when complete
(``atomic_dir(replace=True)``), so a failed or killed ingest leaves the previous result (or
nothing), never a partial shard set. The folder also holds ``lines.json``, the reader's
line identity for the source (lines read = header + skipped + rejected + row lines), which
the ``reject_rate`` check reads back.

When the reject threshold stops a read, the rejects found so far are still saved, beside the
output folder (``<folder>.rejects.parquet``; the folder itself keeps its previous result),
and the error names that file.
"""

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow.parquet as pq

from assets_pkg.inbox import check_unchanged, identity
from assets_pkg.io.atomic import atomic_dir, atomic_write_json
from assets_pkg.obs import peak_rss_mb
from assets_pkg.reader import RejectThresholdExceeded, StreamingReader
from assets_pkg.storage import as_path, is_remote
from assets_pkg.storage.objects import read_commit

REJECTS_FILE = "rejects.parquet"
LINES_FILE = "lines.json"


def failed_rejects_path(output_dir: Path) -> Path:
    """Where the rejects of a read stopped by the threshold go: beside the output folder."""
    return output_dir.parent / f"{output_dir.name}.rejects.parquet"


@dataclass(frozen=True)
class IngestResult:
    source: str
    output_dir: str
    rows: int
    rejects: int  # rejected lines (a rejected quoted record spanning lines counts each line)
    lines_read: int
    header_lines: int
    skipped_lines: int
    row_lines: int
    shards: int
    bytes: int
    seconds: float
    rows_per_second: float
    peak_rss_mb: float

    @property
    def reject_rate(self) -> float:
        """Rejected lines as a share of the data lines (rows and rejects)."""
        total = self.row_lines + self.rejects
        return self.rejects / total if total else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "reject_rate": round(self.reject_rate, 6)}


def stream_file_to_shards(source: Path, output_dir: Path, shard_rows: int = 1_000_000,
                          **reader_options) -> IngestResult:
    """Read ``source`` with the streaming reader; write ``part-NNNNN.parquet`` shards of at
    most ``shard_rows`` rows and ``rejects.parquet`` (when any) into ``output_dir``."""
    if shard_rows <= 0:
        raise ValueError(f"shard_rows must be positive, got {shard_rows}")
    started = time.perf_counter()
    source = as_path(source)
    before = identity(source)  # a file still being copied in must not be published half read
    reader = StreamingReader(source, **reader_options)
    output_dir = as_path(output_dir)
    try:
        with atomic_dir(output_dir, replace=True) as work:
            rows, shards = _write_shards(reader, work, shard_rows)
            reader.write_rejects(work / REJECTS_FILE)
            atomic_write_json(work / LINES_FILE, reader.stats.line_counts())
            check_unchanged(source, before)  # raising here leaves the previous folder in place
    except RejectThresholdExceeded as exc:
        saved = reader.write_rejects(failed_rejects_path(output_dir))
        raise exc.with_rejects_file(saved) if saved else exc
    failed_rejects_path(output_dir).unlink(missing_ok=True)  # a later good read supersedes it
    seconds = time.perf_counter() - started
    size = folder_bytes(output_dir)
    stats = reader.stats
    return IngestResult(
        source=str(source),
        output_dir=str(output_dir),
        rows=rows,
        rejects=stats.rejected_lines,
        lines_read=stats.lines_read,
        header_lines=stats.header_lines,
        skipped_lines=stats.skipped_lines,
        row_lines=stats.row_lines,
        shards=shards,
        bytes=size,
        seconds=round(seconds, 3),
        rows_per_second=round(rows / seconds, 1) if seconds > 0 else 0.0,
        peak_rss_mb=peak_rss_mb(),
    )


def folder_bytes(folder) -> int:
    """Bytes of a published output folder (an object-store folder: its committed parts)."""
    if is_remote(folder):
        return sum((read_commit(folder) or {"parts": {}})["parts"].values())
    return sum(p.stat().st_size for p in folder.iterdir())


def _write_shards(reader: StreamingReader, work: Path, shard_rows: int) -> tuple[int, int]:
    """Write the reader's chunks as ``part-NNNNN.parquet`` files of at most ``shard_rows``."""
    rows = shards = shard_fill = 0
    writer = None
    try:
        for chunk in reader:
            batch = chunk.batch
            offset = 0
            while offset < batch.num_rows:
                if writer is None:
                    writer = pq.ParquetWriter(work / f"part-{shards:05d}.parquet", batch.schema, compression="zstd")
                    shards += 1
                    shard_fill = 0
                take = min(batch.num_rows - offset, shard_rows - shard_fill)
                writer.write_batch(batch.slice(offset, take))
                offset += take
                shard_fill += take
                rows += take
                if shard_fill >= shard_rows:
                    writer.close()
                    writer = None
    finally:
        if writer is not None:
            writer.close()
    return rows, shards
