"""Parquet shard IO manager: exactly one file per partition under the warehouse.

Layout (DESIGN.md section 3): ``<warehouse>/<asset key path>/<partition file>`` where a
shard key (digits) becomes ``part-NNNNN.<ext>``, a month ``YYYY-MM.<ext>``, a day
``YYYY-MM-DD.<ext>`` and a multi-partition key one ``<dim>=<value>`` folder per leading
dimension. Unpartitioned assets live at ``<warehouse>/<asset key path>.<ext>``.

Writes stream (never collect the result in Python) and publish atomically; an empty
result deletes the partition's old file so sparse numbering stays truthful.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import dagster as dg
import pyarrow as pa
from pydantic import Field

from assets_pkg import layout
from assets_pkg.dagster_layer import add_partition_metadata, run_level
from assets_pkg.io.formats import FORMATS, file_extension, write_table
from assets_pkg.storage import as_path
from assets_pkg.storage.arrow import read_table


class Formatted(NamedTuple):
    """Return ``Formatted(value, "csv")`` to choose an output format at run time."""

    value: Any
    format: str


def partition_file_stem(partition_key: str, partitions_def=None) -> str:
    """The file name (without extension) of one partition, folders included: the
    partitions definition picks the partition kind, :mod:`assets_pkg.layout` the name."""
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        # One folder per leading dimension; a time dimension goes last so it names the file.
        values = partitions_def.get_partition_key_from_str(partition_key).keys_by_dimension
        dims = sorted(
            partitions_def.partitions_defs,
            key=lambda d: (isinstance(d.partitions_def, dg.TimeWindowPartitionsDefinition), d.name),
        )
        last = dims[-1]
        return layout.multi_stem([(d.name, values[d.name]) for d in dims[:-1]],
                                 partition_file_stem(values[last.name], last.partitions_def))
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return time_window_file_stem(partition_key, partitions_def)
    return layout.partition_stem(partition_key)


_STEM_FORMAT_BY_CRON = {
    "0 0 1 * *": "%Y-%m",  # monthly
    "0 0 * * *": "%Y-%m-%d",  # daily
    "0 * * * *": "%Y-%m-%dT%H",  # hourly
}


def time_window_file_stem(partition_key: str, partitions_def) -> str:
    """Months are ``YYYY-MM`` and days ``YYYY-MM-DD`` whatever key format the asset uses."""
    fmt = _STEM_FORMAT_BY_CRON.get(partitions_def.cron_schedule)
    if fmt is None:
        return partition_key.replace(":", "")
    return partitions_def.time_window_for_partition_key(partition_key).start.strftime(fmt)


def partition_path(asset_key_path, partition_key: str | None, fmt: str = "parquet",
                   partitions_def=None, base_dir: Path | None = None) -> Path:
    """Where one partition (or the unpartitioned asset) of ``asset_key_path`` lives."""
    ext = file_extension(fmt)
    if partition_key is None:
        return layout.asset_file(asset_key_path, ext, base_dir)
    return layout.partition_file(asset_key_path, partition_file_stem(partition_key, partitions_def), ext, base_dir)


def existing_partition_file(asset_key_path, partition_key: str | None, partitions_def=None,
                            base_dir: Path | None = None) -> Path | None:
    """The partition's file in whichever format it was written, or None."""
    for fmt in FORMATS:
        path = partition_path(asset_key_path, partition_key, fmt, partitions_def, base_dir)
        if path.exists():
            return path
    return None


class ShardedParquetIOManager(dg.ConfigurableIOManager):
    """One Parquet (or csv/tsv) file per partition, written atomically and streamed.

    Returned values may be a pyarrow Table or RecordBatchReader, a pandas DataFrame, a
    DuckDB relation or ``Formatted(value, fmt)``; a run over several partitions returns
    ``{partition_key: value}``. Inputs load as a pyarrow Table, or as the list of existing
    partition files when the input's metadata says ``{"load_as": "paths"}``.
    """

    base_dir: str | None = Field(
        default=None, description="Warehouse folder; default <ASSETS_PKG_DATA_DIR>/warehouse."
    )

    def _base(self) -> Path:
        return as_path(self.base_dir) if self.base_dir else layout.warehouse()

    # -- writing ---------------------------------------------------------------------------
    def handle_output(self, context: dg.OutputContext, obj) -> None:
        if obj is None:
            return
        key_path = context.asset_key.path
        default_fmt = context.definition_metadata.get("io_format", "parquet")
        if not context.has_asset_partitions:
            result = self._write_one(key_path, None, None, obj, default_fmt)
            context.add_output_metadata(self._metadata([result]))
            return
        keys = list(context.asset_partition_keys)
        values = self._values_by_partition(obj, keys, context.asset_key)
        partitions_def = context.asset_partitions_def
        # in the order the asset returned them: a dict of lazy values is computed as it is
        # written, and the asset may compute the next ones ahead in that order
        results = [
            self._write_one(key_path, key, partitions_def, values[key], default_fmt) for key in values
        ]
        context.add_output_metadata(self._metadata(results))
        if len(results) > 1 and context.has_asset_key:
            # each partition's own rows, bytes and file (the totals above are labelled run/...)
            add_partition_metadata(context.step_context, {key: self._metadata([(key, path, result)])
                                                          for key, path, result in results},
                                   asset_key=context.asset_key)

    def write_partition(self, asset_key_path, partition_key: str, partitions_def, value,
                        fmt: str = "parquet") -> dict:
        """Write one partition's value as :meth:`handle_output` does (a fan-out step writes
        its own partitions this way); the partition's metadata."""
        return self._metadata([self._write_one(asset_key_path, partition_key, partitions_def, value, fmt)])

    def _values_by_partition(self, obj, keys: list[str], asset_key) -> Mapping[str, Any]:
        if isinstance(obj, Mapping):
            unknown = sorted(set(obj) - set(keys))
            missing = sorted(set(keys) - set(obj))
            if unknown or missing:
                raise dg.Failure(
                    f"{asset_key.to_user_string()}: the returned dict must have exactly the run's "
                    f"partition keys; missing {missing[:10]}, unexpected {unknown[:10]}"
                )
            return obj
        if len(keys) != 1:
            raise dg.Failure(
                f"{asset_key.to_user_string()}: a run over {len(keys)} partitions must return "
                "{partition_key: value}, one value per partition"
            )
        return {keys[0]: obj}

    def _write_one(self, key_path, partition_key, partitions_def, value, default_fmt):
        fmt = default_fmt
        if isinstance(value, Formatted):
            value, fmt = value.value, value.format
        path = partition_path(key_path, partition_key, fmt, partitions_def, self._base())
        result = write_table(value, path, fmt)
        # A partition has one file: drop a copy left in another format by an earlier run.
        for other in FORMATS:
            if other != fmt:
                partition_path(key_path, partition_key, other, partitions_def, self._base()).unlink(
                    missing_ok=True
                )
        return partition_key, path, result

    @staticmethod
    def _metadata(results) -> dict:
        rows = sum(r.rows for _, _, r in results)
        size = sum(r.bytes for _, _, r in results)
        meta = {"dagster/row_count": rows, "bytes": size}
        if len(results) == 1:
            _, path, result = results[0]
            meta["path"] = dg.MetadataValue.path(str(path))
            meta["file_written"] = result.path is not None
        else:
            meta["partitions"] = len(results)
            meta["files_written"] = sum(1 for _, _, r in results if r.path is not None)
        return run_level(meta, len(results))

    # -- reading ---------------------------------------------------------------------------
    def existing_file(self, asset_key_path, partition_key: str | None, partitions_def=None):
        """The partition's file in whichever format it was written, or None."""
        return existing_partition_file(asset_key_path, partition_key, partitions_def, self._base())

    def load_input(self, context: dg.InputContext):
        key_path = context.asset_key.path
        if context.has_asset_partitions:
            partitions_def = context.asset_partitions_def
            candidates = [self.existing_file(key_path, key, partitions_def) for key in context.asset_partition_keys]
        else:
            candidates = [existing_partition_file(key_path, None, None, self._base())]
        paths = [p for p in candidates if p is not None]
        if (context.definition_metadata or {}).get("load_as") == "paths":
            return paths
        return read_tables(paths)


def read_tables(paths: list[Path]) -> pa.Table:
    """Concatenate partition files (local or in the object store) into one Table (small
    inputs; big ones use paths)."""
    tables = []
    for path in map(as_path, paths):
        if path.suffix == ".parquet":
            tables.append(read_table(path))
        else:
            from assets_pkg.reader import StreamingReader

            tables.append(StreamingReader(path, continue_on_error=False).to_record_batch_reader().read_all())
    if not tables:
        return pa.table({})
    return pa.concat_tables(tables, promote_options="default")
