"""Turn parsed blocks (a few MiB each) into chunks of ``chunk_size`` rows.

Small parse blocks are faster (they stay in CPU cache and keep both parser threads
busy on small files), but consumers want batches near ``chunk_size``: a Parquet writer
makes one row group per batch. So consecutive block tables are gathered and cut into
``chunk_size`` batches; a chunk is also emitted once the gathered data passes
``max_bytes``, so wide rows cannot make a chunk outgrow the memory budget.
"""

import time
from collections.abc import Iterator

import pyarrow as pa

from assets_pkg.reader.stats import Chunk, ReadStats


class ChunkBuilder:
    def __init__(self, chunk_size: int, max_bytes: int, stats: ReadStats):
        self.chunk_size = chunk_size
        self.max_bytes = max_bytes
        self.stats = stats
        self.chunk_ms: list[float] = []
        self._tables: list[pa.Table] = []
        self._rows = 0
        self._bytes = 0
        self._errors = 0  # rejects since the last chunk, reported on the next one
        self._ms = 0.0

    def add(self, table: pa.Table, errors: int, ms: float) -> Iterator[Chunk]:
        """Take a block's good rows; yield the chunks that are complete."""
        self._errors += errors
        self._ms += ms
        if table.num_rows:
            self._tables.append(table)
            self._rows += table.num_rows
            self._bytes += table.nbytes
        if self._bytes >= self.max_bytes:
            yield from self._emit(keep_partial=False)
        elif self._rows >= self.chunk_size:
            yield from self._emit(keep_partial=True)

    def flush(self) -> Iterator[Chunk]:
        """Yield whatever is gathered (at the end of the read or before an error)."""
        if self._rows:
            yield from self._emit(keep_partial=False)

    def _emit(self, keep_partial: bool) -> Iterator[Chunk]:
        started = time.perf_counter()
        table = self._tables[0] if len(self._tables) == 1 else pa.concat_tables(self._tables)
        full = (self._rows // self.chunk_size) * self.chunk_size if keep_partial else self._rows
        rest = table.slice(full)
        table = table.slice(0, full)
        if table.num_columns and table.column(0).num_chunks > 1:
            table = table.combine_chunks()  # one contiguous batch per chunk, not block-sized pieces
        batches = [b for b in table.to_batches(max_chunksize=self.chunk_size) if b.num_rows]
        self._tables = [rest] if rest.num_rows else []
        self._rows = rest.num_rows
        self._bytes = rest.nbytes if rest.num_rows else 0
        ms = (self._ms + (time.perf_counter() - started) * 1000) / max(len(batches), 1)
        errors, self._errors, self._ms = self._errors, 0, 0.0
        for i, batch in enumerate(batches):
            chunk = Chunk(self.stats.total_chunks, batch.num_rows, errors if i == 0 else 0, round(ms, 3), batch,
                          batch.nbytes)
            self.stats.total_chunks += 1
            self.stats.total_rows += batch.num_rows
            if chunk.errors:
                self.stats.chunks_with_errors += 1
                self.stats.error_chunk_ids.append(chunk.chunk_id)
            self.chunk_ms.append(ms)
            yield chunk
