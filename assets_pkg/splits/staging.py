"""Parsed text shards kept from pass 1 for pass 2, so a csv/tsv shard is parsed once.

Pass 1 parses a text shard with the streaming reader anyway; the batches DuckDB profiles
are also written, as they pass, to an uncompressed Arrow IPC file (about the size of the
csv, ~16 ms per 500k rows: a fraction of a parse). Pass 2 reads that file batch by batch
instead of parsing the csv again, and can then split it on a worker like a Parquet shard.

A stage is always a local file: beside the outputs on a local root, in the process's local
scratch on an object-store root (never uploaded; a pass 2 in another process finds none and
parses the input). A staged file is only a cache; the input shard stays the source of truth:
* it is published (atomic rename) with a JSON sidecar, written last, that records the
  input's name, size, mtime and header signature as they were *before* pass 1 read it, and
  the reader's rejected-line count. A stage without its sidecar, or whose sidecar no longer
  matches the input, is never used: pass 2 parses the input instead;
* a killed pass 1 leaves only a hidden temp name (the shard's next pass 1 removes it once
  it is ten minutes old);
* pass 2 removes the stage once the shard's outputs are published, so disk use is bounded
  by the shards between their two passes.
"""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from assets_pkg.io.atomic import atomic_write_json, publish_file, remove_stale_temps, temp_sibling
from assets_pkg.splits.discovery import Shard
from assets_pkg.storage import as_path

STAGE_VERSION = 1  # bump when what the reader produces for the same input changes
ABANDONED_AFTER_S = 600  # a killed pass 1's temp file is cleared once this old


class StageError(ValueError):
    """A published stage that cannot be read back (removed when found)."""


def sidecar(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + ".json")


def identity(shard: Shard, signature: list[str] | None) -> dict:
    """What a stage must match to stand for the input shard."""
    st = as_path(shard.path).stat()
    return {"source": shard.name, "bytes": st.st_size, "mtime_ns": st.st_mtime_ns,
            "signature": list(signature) if signature and shard.format in ("csv", "tsv") else None,
            "version": STAGE_VERSION}


class StageWriter:
    """Tee a shard's record batches into a temp IPC file; :meth:`commit` publishes it."""

    def __init__(self, path: Path, ident: dict):
        self.path, self.ident = Path(path), ident
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove(self.path)  # an older stage of this shard never outlives a new pass 1
        # a killed pass 1's temp; a live writer touches its temp far more often than this
        remove_stale_temps(self.path.parent, beside=self.path, older_than_s=ABANDONED_AFTER_S)
        self.tmp = temp_sibling(self.path)
        self._writer = None
        self._sink = None
        self.rows = 0

    def tee(self, batches: pa.RecordBatchReader) -> pa.RecordBatchReader:
        def gen():
            for batch in batches:
                if self._writer is None:
                    self._sink = pa.OSFile(str(self.tmp), "wb")
                    self._writer = ipc.new_file(self._sink, batches.schema)
                self._writer.write_batch(batch)
                self.rows += batch.num_rows
                yield batch

        return pa.RecordBatchReader.from_batches(batches.schema, gen())

    def commit(self, rejected_lines: int, rows: int) -> None:
        """Publish the stage once the whole shard went through :meth:`tee`: ``rows`` is how
        many rows the consumer counted; a stage that does not hold exactly those is dropped."""
        if self._writer is None or self.rows != rows:  # nothing worth staging, or not all of it
            self.discard()
            return
        self._close()
        publish_file(self.tmp, self.path)
        atomic_write_json(sidecar(self.path), {**self.ident, "rows": self.rows, "rejected_lines": int(rejected_lines)})

    def discard(self) -> None:
        self._close()
        Path(self.tmp).unlink(missing_ok=True)

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._sink.close()
            self._writer = self._sink = None


def _sidecar_meta(path: Path) -> dict | None:
    try:
        return json.loads(sidecar(Path(path)).read_text())
    except (OSError, ValueError):
        return None


def _matches(meta: dict, ident: dict) -> bool:
    return {k: meta.get(k) for k in ident} == ident


def load(path: Path, ident: dict) -> tuple[pa.RecordBatchReader, int] | None:
    """(rows as a stream, rejected lines) of a stage that matches ``ident``; None when there
    is none, it is stale or its footer cannot be read (then it is removed: the input is
    parsed instead). Batches are read one at a time with plain reads, not memory-mapped:
    pages of a mapping would stay resident (and counted) until the whole file is done."""
    path = Path(path)
    meta = _sidecar_meta(path)
    if meta is None:
        return None
    source = None
    try:
        if not _matches(meta, ident):
            raise LookupError("stale")
        source = pa.OSFile(str(path), "rb")
        file = ipc.open_file(source)
        if file.num_record_batches == 0:
            raise LookupError("empty")
    except (LookupError, OSError, pa.ArrowInvalid):
        if source is not None:
            source.close()
        remove(path)
        return None

    def batches():
        try:
            for i in range(file.num_record_batches):
                yield file.get_batch(i)
        except (OSError, pa.ArrowException) as exc:
            remove(path)  # the next run parses the input instead
            raise StageError(f"{path}: staged rows of {ident['source']} are unreadable ({exc}); "
                             "the stage was removed, run the split again") from exc
        finally:
            source.close()

    return pa.RecordBatchReader.from_batches(file.schema, batches()), int(meta.get("rejected_lines", 0))


def is_current(path: Path, ident: dict) -> bool:
    """A stage for ``ident`` exists (sidecar check only: cheap)."""
    meta = _sidecar_meta(path)
    return meta is not None and _matches(meta, ident) and Path(path).exists()


def remove(path: Path) -> None:
    """Drop a stage: sidecar first, so a half-removed stage is never taken for current."""
    sidecar(Path(path)).unlink(missing_ok=True)
    Path(path).unlink(missing_ok=True)
