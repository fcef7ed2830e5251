"""A PyTorch ``IterableDataset`` over one split's shard files.

Each DataLoader worker reads a disjoint subset of the shards (shard ``i`` goes to worker
``i % num_workers``), so with any number of workers every row is yielded exactly once per
epoch. Parquet shards are read batch by batch with pyarrow; csv/tsv shards through the
project's streaming reader. Rows come out as ``{column: value}`` dicts (numbers as Python
scalars, which the default collate turns into tensors), or as whole Arrow batches converted
to ``{column: tensor | list}`` with ``batch_rows``.
"""

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import IterableDataset, get_worker_info
from upath import UPath

from assets_pkg.splits.outputs import shard_output_files
from assets_pkg.splits.rows import SPLITS
from assets_pkg.storage import as_path, is_remote
from assets_pkg.storage.arrow import parquet_file


def split_files(split: str, warehouse: Path | str | None = None) -> list[Path]:
    """The shard files of ``split`` (train | val | oot), in shard-number order."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if warehouse is None:
        from assets_pkg.settings import get_settings

        warehouse = get_settings().warehouse
    return [p for k, p in sorted(shard_output_files(as_path(warehouse), split).items()) if k.isdigit()]


class SplitShardDataset(IterableDataset):
    """Iterate the rows of a split's shards; DataLoader workers read disjoint shards."""

    def __init__(self, split: str | None = None, files=None, warehouse=None, columns=None,
                 batch_rows: int | None = None, read_rows: int = 65_536):
        super().__init__()
        if files is None:
            if split is None:
                raise ValueError("give a split name or a list of files")
            files = split_files(split, warehouse)
        self.files = [as_path(f) for f in files]
        self.columns = list(columns) if columns else None
        self.batch_rows = batch_rows
        self.read_rows = read_rows

    def worker_files(self) -> list[Path]:
        info = get_worker_info()
        if info is None:
            return list(self.files)
        return self.files[info.id :: info.num_workers]

    def _batches(self, path: Path) -> Iterator[pa.RecordBatch]:
        path = own_client(path)
        if path.suffix == ".parquet":
            if is_remote(path) and get_worker_info() is not None:
                source = pq.ParquetFile(path.open("rb", cache_type="readahead", block_size=8 << 20))
            else:
                source = parquet_file(path)
            yield from source.iter_batches(batch_size=self.read_rows, columns=self.columns)
            return
        from assets_pkg.reader import StreamingReader

        reader = StreamingReader(path, continue_on_error=False, columns=self.columns)
        yield from reader.to_record_batch_reader()

    def __iter__(self):
        for path in self.worker_files():
            for batch in self._batches(path):
                if self.batch_rows:
                    for start in range(0, batch.num_rows, self.batch_rows):
                        yield to_tensors(batch.slice(start, self.batch_rows))
                else:
                    yield from batch.to_pylist()


def own_client(path):
    """``path`` with an object-store client of this process. DataLoader workers are forked,
    and neither the parent's fsspec client (its event loop stays in the parent) nor
    pyarrow's S3 client (the AWS SDK) survives a fork: a worker opens its files through
    a client it makes itself (fsspec makes new clients in a new process)."""
    if not is_remote(path) or get_worker_info() is None:
        return path
    return UPath(str(path), **path.storage_options)


def to_tensors(batch: pa.RecordBatch) -> dict:
    """Numeric columns -> tensors, others -> Python lists."""
    out = {}
    for name, column in zip(batch.schema.names, batch.columns):
        if pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_boolean(column.type):
            out[name] = torch.from_numpy(column.to_numpy(zero_copy_only=False).copy())
        else:
            out[name] = column.to_pylist()
    return out
