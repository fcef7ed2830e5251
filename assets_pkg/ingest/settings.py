"""Ingest settings, declared once (no dagster import); ``IngestConfig`` in ``assets.py`` is
derived from this declaration."""

from pydantic import field_validator

from assets_pkg.settings import SettingsModel, setting


class IngestSettings(SettingsModel):
    """How inbox files are streamed into Parquet shards."""

    shard_rows: int = setting(1_000_000, env="INGEST_SHARD_ROWS",
                              description="Rows per output Parquet shard (env INGEST_SHARD_ROWS).")
    chunk_size: int = setting(100_000, env="CHUNK_SIZE", description="Rows per streamed chunk (env CHUNK_SIZE).")
    memory_limit_mb: int = setting(256, env="MEMORY_LIMIT_MB",
                                   description="Reader memory budget in MiB (env MEMORY_LIMIT_MB).")
    error_threshold: float = setting(0.05, env="ERROR_THRESHOLD",
                                     description="Reject share above which a file's ingest fails (env ERROR_THRESHOLD).")
    reject_warn_rate: float = setting(
        0.01, env="REJECT_WARN_RATE",
        description="Reject share above which the reject_rate check warns (env REJECT_WARN_RATE).")
    # the streaming reader's other options, each as the reader documents it
    file_format: str = setting("auto", description="auto | csv | tsv | jsonl | parquet (gzip is detected).")
    encoding: str = setting("utf-8", description="Text encoding, or 'auto' (BOM, else UTF-8, Windows-1252, Latin-1).")
    columns: tuple[str, ...] = setting((), description="Keep only these columns (empty: all).")
    skip_rows: int = setting(0, description="Lines to skip before the header (a preamble).")
    skip_data_rows: int = setting(0, description="Data lines to skip right after the header.")
    max_rows: int = setting(0, description="Stop after this many rows (0: no limit).")
    skip_empty: bool = setting(True, description="Skip rows whose selected columns are all empty (blank lines too).")
    strip_whitespace: bool = setting(True, description="Strip spaces around header names and values.")
    continue_on_error: bool = setting(True, description="Collect bad rows as rejects (False: stop at the first).")
    delimiter: str = setting("", description="Field delimiter, one character (empty: from the name and content).")
    max_quoted_lines: int = setting(1000, description="Lines a quoted value may span before its quote counts as "
                                                      "unterminated.")
    progress_interval: float = setting(5.0, description="Seconds between progress lines in the run's log.")

    def reader_options(self) -> dict:
        """The StreamingReader keyword arguments these settings stand for."""
        return {
            "file_format": self.file_format, "encoding": self.encoding, "chunk_size": self.chunk_size,
            "memory_limit_mb": self.memory_limit_mb, "columns": list(self.columns) or None,
            "skip_rows": self.skip_rows, "skip_data_rows": self.skip_data_rows,
            "max_rows": self.max_rows or None, "skip_empty": self.skip_empty,
            "strip_whitespace": self.strip_whitespace, "continue_on_error": self.continue_on_error,
            "error_threshold": self.error_threshold, "delimiter": self.delimiter or None,
            "max_quoted_lines": self.max_quoted_lines, "progress_interval": self.progress_interval,
        }

    @field_validator("shard_rows", "chunk_size", "memory_limit_mb", "max_quoted_lines")
    @classmethod
    def _positive(cls, value):
        if value < 1:
            raise ValueError("must be at least 1")
        return value

    @field_validator("error_threshold", "reject_warn_rate")
    @classmethod
    def _share(cls, value):
        if not 0.0 <= value <= 1.0:
            raise ValueError("must be between 0 and 1")
        return value
