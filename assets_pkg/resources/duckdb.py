"""DuckDB as a Dagster resource: in-memory connections with bounded memory and spilling."""

import duckdb
import dagster as dg
from pydantic import Field

from assets_pkg.duck import connect
from assets_pkg.settings import get_settings


class DuckDBResource(dg.ConfigurableResource):
    """Hands out in-memory DuckDB connections; storage stays in Parquet files.

    ``memory_limit`` bounds each connection (DuckDB spills to the data root's tmp folder
    beyond it); ``threads`` defaults to the machine's 2 cores.
    """

    memory_limit: str = Field(
        default_factory=lambda: get_settings().duckdb_memory_limit,
        description="DuckDB memory_limit per connection, e.g. '2GB' (env DUCKDB_MEMORY_LIMIT).",
    )
    threads: int = Field(
        default_factory=lambda: get_settings().duckdb_threads,
        description="DuckDB worker threads (env DUCKDB_THREADS).",
    )

    def connect(self) -> duckdb.DuckDBPyConnection:
        return connect(memory_limit=self.memory_limit, threads=self.threads)
