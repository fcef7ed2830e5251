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

    @field_validator("shard_rows", "chunk_size", "memory_limit_mb")
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
