"""Reader options: one frozen dataclass, validated once, each error naming its parameter."""

import codecs
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from upath import UPath

from assets_pkg.reader.errors import ReaderOptionError
from assets_pkg.storage import as_path

FILE_FORMATS = ("auto", "csv", "tsv", "jsonl", "ndjson", "parquet")


@dataclass(frozen=True)
class ReaderOptions:
    file_path: Path
    file_format: str = "auto"
    encoding: str = "utf-8"
    chunk_size: int = 100_000
    memory_limit_mb: float = 256
    columns: tuple[str, ...] | None = None
    column_types: Mapping[str, pa.DataType] | None = None
    skip_rows: int = 0
    max_rows: int | None = None
    skip_empty: bool = True
    strip_whitespace: bool = True
    continue_on_error: bool = True
    error_threshold: float = 0.05
    report_progress: bool = False
    progress_interval: float = 5.0
    progress_callback: Callable | None = None
    delimiter: str | None = None
    max_quoted_lines: int = 1000
    skip_data_rows: int = 0

    @property
    def block_bytes(self) -> int:
        """Bytes of text parsed at once: a sixteenth of the memory budget, 256 KiB to
        2 MiB. Three blocks are in flight (one read ahead, two parsing, each costing
        about 3x its size as Arrow columns) next to the chunk being gathered. Blocks
        larger than 2 MiB measured slower (CPU cache, and fewer blocks to spread over
        both cores on small files); chunking.ChunkBuilder joins them into chunks."""
        budget = int(self.memory_limit_mb * 2**20 / 16)
        return max(256 * 1024, min(budget, 2 * 2**20))


    @property
    def blocks_in_flight(self) -> int:
        """Blocks read ahead and parsed ahead of the consumer (at least 3). Nine sixteenths
        of the budget go to them, at about 3x a block's size each (text, then Arrow
        columns); at most 8. With the 2 MiB block cap, budgets above 32 MiB get more than
        3, which keeps both parser threads busy while the consumer handles a chunk."""
        share = self.memory_limit_mb * 2**20 * 9 / 16
        return max(3, min(8, int(share // (3 * self.block_bytes))))


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise ReaderOptionError(name, f"expected True or False, got {value!r}")


def validate_options(
    file_path,
    file_format,
    encoding,
    chunk_size,
    memory_limit_mb,
    columns,
    column_types,
    skip_rows,
    max_rows,
    skip_empty,
    strip_whitespace,
    continue_on_error,
    error_threshold,
    report_progress,
    progress_interval,
    progress_callback,
    delimiter,
    max_quoted_lines=1000,
    skip_data_rows=0,
) -> ReaderOptions:
    """Check every option and return them frozen; raise ReaderOptionError naming the first bad one."""
    if not isinstance(file_path, (str, os.PathLike, UPath)) or str(file_path) == "":
        raise ReaderOptionError("file_path", f"expected a path, got {file_path!r}")
    if not isinstance(file_format, str):
        raise ReaderOptionError("file_format", f"expected a string, got {file_format!r}")
    fmt = file_format.lower().removesuffix(".gz")
    if fmt not in FILE_FORMATS:
        raise ReaderOptionError(
            "file_format", f"{file_format!r} is not one of {', '.join(FILE_FORMATS)} (optionally with .gz)"
        )
    if not isinstance(encoding, str):
        raise ReaderOptionError("encoding", f"expected a codec name, got {encoding!r}")
    try:
        if encoding.lower() != "auto":
            codecs.lookup(encoding)
    except LookupError:
        raise ReaderOptionError("encoding", f"unknown encoding {encoding!r} (try 'utf-8', 'latin-1' or 'auto')") from None
    if not _is_int(chunk_size) or chunk_size <= 0:
        raise ReaderOptionError("chunk_size", f"expected a positive integer number of rows, got {chunk_size!r}")
    if isinstance(memory_limit_mb, bool) or not isinstance(memory_limit_mb, (int, float)) or not memory_limit_mb > 0:
        raise ReaderOptionError("memory_limit_mb", f"expected a positive number of MiB, got {memory_limit_mb!r}")
    if columns is not None:
        if isinstance(columns, str) or not isinstance(columns, Sequence) or not columns:
            raise ReaderOptionError("columns", f"expected a non-empty list of column names, got {columns!r}")
        if not all(isinstance(c, str) for c in columns):
            raise ReaderOptionError("columns", f"every column name must be a string, got {list(columns)!r}")
        duplicates = sorted({c for c in columns if list(columns).count(c) > 1})
        if duplicates:
            raise ReaderOptionError("columns", f"column {duplicates[0]!r} is listed twice")
        columns = tuple(columns)
    if column_types is not None:
        if not isinstance(column_types, Mapping):
            raise ReaderOptionError("column_types", f"expected a dict of column name -> pyarrow type, got {column_types!r}")
        for name, dtype in column_types.items():
            if not isinstance(dtype, pa.DataType):
                raise ReaderOptionError("column_types", f"type of column {name!r} must be a pyarrow DataType, got {dtype!r}")
            try:
                pc.cast(pa.nulls(0, pa.string()), dtype)  # pa.array([]) would import pandas
            except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
                raise ReaderOptionError(
                    "column_types", f"column {name!r}: text cannot be converted to {dtype}"
                ) from None
        column_types = dict(column_types)
    if not _is_int(skip_rows) or skip_rows < 0:
        raise ReaderOptionError("skip_rows", f"expected an integer >= 0, got {skip_rows!r}")
    if not _is_int(skip_data_rows) or skip_data_rows < 0:
        raise ReaderOptionError("skip_data_rows", f"expected an integer >= 0, got {skip_data_rows!r}")
    if max_rows is not None and (not _is_int(max_rows) or max_rows < 0):
        raise ReaderOptionError("max_rows", f"expected None or an integer >= 0, got {max_rows!r}")
    _require_bool("skip_empty", skip_empty)
    _require_bool("strip_whitespace", strip_whitespace)
    _require_bool("continue_on_error", continue_on_error)
    _require_bool("report_progress", report_progress)
    if isinstance(error_threshold, bool) or not isinstance(error_threshold, (int, float)) or not 0 <= error_threshold <= 1:
        raise ReaderOptionError("error_threshold", f"expected a share between 0 and 1, got {error_threshold!r}")
    if isinstance(progress_interval, bool) or not isinstance(progress_interval, (int, float)) or not progress_interval > 0:
        raise ReaderOptionError("progress_interval", f"expected a positive number of seconds, got {progress_interval!r}")
    if progress_callback is not None and not callable(progress_callback):
        raise ReaderOptionError("progress_callback", f"expected a callable, got {progress_callback!r}")
    if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\r\n\""):
        raise ReaderOptionError("delimiter", f"expected one character (not a quote or line break), got {delimiter!r}")
    if not _is_int(max_quoted_lines) or max_quoted_lines < 1:
        raise ReaderOptionError(
            "max_quoted_lines", f"expected a positive number of lines a quoted value may span, got {max_quoted_lines!r}"
        )
    return ReaderOptions(
        file_path=as_path(file_path),
        file_format=file_format.lower(),
        encoding=encoding,
        chunk_size=chunk_size,
        memory_limit_mb=memory_limit_mb,
        columns=columns,
        column_types=column_types,
        skip_rows=skip_rows,
        max_rows=max_rows,
        skip_empty=skip_empty,
        strip_whitespace=strip_whitespace,
        continue_on_error=continue_on_error,
        error_threshold=float(error_threshold),
        report_progress=report_progress,
        progress_interval=float(progress_interval),
        progress_callback=progress_callback,
        delimiter=delimiter,
        max_quoted_lines=max_quoted_lines,
        skip_data_rows=skip_data_rows,
    )
