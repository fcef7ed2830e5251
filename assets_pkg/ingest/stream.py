"""Stream one text file into bounded Parquet shards plus a rejects file.

The output folder is built beside the final one and swapped in only when complete
(``atomic_dir(replace=True)``), so a failed or killed ingest leaves the previous result (or
nothing), never a partial shard set.
"""

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow.parquet as pq

from assets_pkg.io.atomic import atomic_dir
from assets_pkg.obs import peak_rss_mb
from assets_pkg.reader import StreamingReader

REJECTS_FILE = "rejects.parquet"


@dataclass(frozen=True)
class IngestResult:
    source: str
    output_dir: str
    rows: int
    rejects: int
    shards: int
    bytes: int
    seconds: float
    rows_per_second: float
    peak_rss_mb: float

    @property
    def reject_rate(self) -> float:
        total = self.rows + self.rejects
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
    reader = StreamingReader(source, **reader_options)
    output_dir = Path(output_dir)
    rows = shards = 0
    with atomic_dir(output_dir, replace=True) as work:
        writer, shard_fill = None, 0
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
        reader.write_rejects(work / REJECTS_FILE)
    seconds = time.perf_counter() - started
    size = sum(p.stat().st_size for p in output_dir.iterdir())
    return IngestResult(
        source=str(source),
        output_dir=str(output_dir),
        rows=rows,
        rejects=reader.stats.total_errors,
        shards=shards,
        bytes=size,
        seconds=round(seconds, 3),
        rows_per_second=round(rows / seconds, 1) if seconds > 0 else 0.0,
        peak_rss_mb=peak_rss_mb(),
    )

