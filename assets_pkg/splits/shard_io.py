"""Open one input shard as a DuckDB relation, streaming.

Parquet shards are scanned by DuckDB directly; csv/tsv (and anything gzipped) go through
the project's streaming reader, whose Arrow batches DuckDB consumes as they come. Column
names containing ``__DOT__`` are renamed to ``.`` (as the original script did); header-less
text shards take their names from the inbox's ``_signature.txt``.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from assets_pkg import layout
from assets_pkg.duck import quote_ident
from assets_pkg.splits import staging
from assets_pkg.splits.discovery import Shard
from assets_pkg.splits.params import DOT_MARKER, SplitParams
from assets_pkg.reader.sniff import open_binary
from assets_pkg.storage import as_path
from assets_pkg.storage.arrow import parquet_file
from assets_pkg.storage.objects import local_copy


class ShardError(ValueError):
    """A shard the split cannot use; the message names the file (and column)."""


@dataclass
class OpenedShard:
    shard: Shard
    relation: duckdb.DuckDBPyRelation | None  # None: the file holds no rows at all
    reader: object | None = None  # StreamingReader for text shards (rejects, stats)
    columns: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)  # DuckDB type names, same order
    stage_writer: staging.StageWriter | None = None  # pass 1: the parsed rows being staged
    staged_rejected: int | None = None  # pass 2: read from a stage; pass 1's rejected lines

    @property
    def rejected_lines(self) -> int:
        """Lines the streaming reader rejected (known once the relation was consumed)."""
        if self.staged_rejected is not None:
            return self.staged_rejected
        if self.reader is None:
            return 0
        return int(self.reader.stats.rejected_lines)

    def source_rows(self) -> int | None:
        """Rows the shard holds, counted from the source rather than from what arrived:
        a Parquet footer's row count, or the text reader's data lines (lines read less
        header, skipped lines and the extra lines of quoted values spanning lines). None
        for a shard read from a stage (pass 2), whose count pass 1 recorded."""
        if self.staged_rejected is not None:
            return None
        if self.reader is None:
            if self.shard.format == "parquet" and not self.shard.compressed:
                return parquet_file(self.shard.path).metadata.num_rows
            return None
        st = self.reader.stats
        continuation = st.row_lines - st.total_rows
        return st.lines_read - st.header_lines - st.skipped_lines - continuation

    def commit_stage(self, rows: int) -> None:
        """Publish the staged rows (pass 1, after the whole shard was read and accepted;
        ``rows``: the rows the profile counted, which the stage must hold)."""
        if self.stage_writer is not None:
            self.stage_writer.commit(self.rejected_lines, rows)
            self.stage_writer = None

    def discard_stage(self) -> None:
        if self.stage_writer is not None:
            self.stage_writer.discard()
            self.stage_writer = None

    def rejects_sample(self, limit: int = 5) -> list[dict]:
        if self.reader is None or self.rejected_lines == 0:
            return []
        return self.reader.rejects.slice(0, limit).to_pylist()


def renamed(name: str) -> str:
    return name.replace(DOT_MARKER, ".")


def open_shard(con: duckdb.DuckDBPyConnection, shard: Shard, params: SplitParams,
               signature: list[str] | None = None, progress_callback=None,
               stage: Path | None = None, write_stage: bool = False) -> OpenedShard:
    """A relation over the shard with the split's columns validated (names the file).

    ``stage`` (text shards only, see :mod:`assets_pkg.splits.staging`): with
    ``write_stage`` the parsed rows are also staged there as they are read (publish them
    with :meth:`OpenedShard.commit_stage`); without, a current stage is read instead of
    parsing the input."""
    path = as_path(shard.path)
    try:
        st = path.stat()  # one request on an object store, not exists() then stat()
    except FileNotFoundError:
        raise ShardError(f"{path}: shard file disappeared") from None
    if st.st_size == 0:
        return OpenedShard(shard, None)
    reader = None
    writer = None
    staged_rejected = None
    if shard.format == "parquet" and not shard.compressed:
        try:
            relation = con.read_parquet(str(local_copy(path, st)))
        except duckdb.Error as exc:
            raise ShardError(f"{path}: cannot read parquet shard: {exc}") from exc
    else:
        loaded = staging.load(stage, staging.identity(shard, signature)) if stage and not write_stage else None
        if loaded is not None:
            batches, staged_rejected = loaded
            relation = con.from_arrow(batches)
        else:
            if stage and write_stage:
                writer = staging.StageWriter(stage, staging.identity(shard, signature))  # before reading
            relation, reader = _text_relation(con, shard, signature, params, progress_callback, writer)
            if relation is None:
                if writer is not None:
                    writer.discard()
                return OpenedShard(shard, None, reader)
    try:
        return _validated(shard, params, relation, reader, writer, staged_rejected)
    except BaseException:
        if writer is not None:
            writer.discard()
        raise


def _validated(shard: Shard, params: SplitParams, relation, reader, writer, staged_rejected) -> OpenedShard:
    path = shard.path
    columns = list(relation.columns)
    if any(DOT_MARKER in c for c in columns):
        relation = relation.project(", ".join(f"{quote_ident(c)} AS {quote_ident(renamed(c))}" for c in columns))
        columns = [renamed(c) for c in columns]
    required = [
        ("DATE_COLUMN", params.date_column),
        ("GROUP_ID_COLUMN", params.group_id_column),
        *(("TARGETS", t) for t in params.targets),
        *((("LABEL_FIELD", params.label_field),) if params.label_field and not params.targets else ()),
    ]
    for setting, column in required:
        if column not in columns:
            raise ShardError(
                f"{path}: column {column!r} ({setting}) is missing; the shard has {', '.join(columns) or 'no columns'}"
            )
    return OpenedShard(shard, relation, reader, columns, [str(t) for t in relation.types], writer, staged_rejected)


def _text_relation(con, shard: Shard, signature, params: SplitParams, progress_callback, writer=None):
    from assets_pkg.reader import ReaderError, StreamingReader

    # the reader's budget plus DuckDB's memory_limit keep a step inside ~512 MB
    options = dict(file_format="auto", error_threshold=params.error_threshold, continue_on_error=True,
                   memory_limit_mb=128)
    if progress_callback is not None:
        options.update(report_progress=True, progress_callback=progress_callback)
    path = shard.path
    if signature and shard.format in ("csv", "tsv"):
        path = _with_header(shard, signature)
    try:
        reader = StreamingReader(path, **options)
        batches = reader.to_record_batch_reader()
    except ReaderError as exc:
        raise ShardError(f"{shard.path}: {exc}") from exc
    except (OSError, EOFError) as exc:
        raise ShardError(f"{shard.path}: cannot read shard: {exc}") from exc
    if len(batches.schema) == 0:
        return None, reader
    batches = _guarded(batches, shard)
    return con.from_arrow(writer.tee(batches) if writer is not None else batches), reader


def _guarded(batches: pa.RecordBatchReader, shard: Shard) -> pa.RecordBatchReader:
    """Re-raise read errors met while DuckDB pulls batches with the shard's name on them."""

    def gen():
        try:
            yield from batches
        except ShardError:
            raise
        except Exception as exc:  # reader errors, truncated gzip (EOFError), bad bytes
            raise ShardError(f"{shard.path}: {type(exc).__name__}: {exc}") from exc

    return pa.RecordBatchReader.from_batches(batches.schema, gen())


def _with_header(shard: Shard, signature: list[str]) -> Path:
    """A header-less text shard, streamed (decompressed) into a temp copy that starts with
    the signature's column names. The streaming reader has no header-less mode; the copy
    goes to the data root's tmp folder and is removed when the process exits or the next
    copy of the same shard is made."""
    import atexit
    import gzip
    import shutil

    delimiter = "\t" if shard.format == "tsv" else ","
    folder = layout.scratch_dir("splits_headers")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{os.getpid()}-{shard.key}.{shard.format}"
    try:
        with open_binary(as_path(shard.path), 8 << 20) as raw, open(target, "wb") as dst:
            src = gzip.GzipFile(fileobj=raw) if shard.compressed else raw
            dst.write((delimiter.join(signature) + "\n").encode("utf-8"))
            shutil.copyfileobj(src, dst, 1 << 20)
    except (OSError, EOFError) as exc:
        target.unlink(missing_ok=True)
        raise ShardError(f"{shard.path}: cannot read shard: {exc}") from exc
    atexit.register(lambda: target.unlink(missing_ok=True))
    return target
