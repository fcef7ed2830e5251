"""DuckDB as a Dagster resource: in-memory connections with bounded memory and spilling."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb
from pydantic import Field, PrivateAttr

from assets_pkg.duck import connect
from assets_pkg.settings import get_settings


class DuckDBResource(dg.ConfigurableResource):
    """Hands out in-memory DuckDB connections; storage stays in Parquet files.

    ``memory_limit`` bounds each connection (DuckDB spills to the data root's tmp folder
    beyond it); ``threads`` defaults to the machine's 2 cores. ``get_connection()`` is a
    context manager that closes its connection (dagster-duckdb's contract); a connection
    from ``connect()`` is closed when the step ends, so none outlives the step that used it.
    """

    memory_limit: str = Field(
        default_factory=lambda: get_settings().duckdb_memory_limit,
        description="DuckDB memory_limit per connection, e.g. '2GB' (env DUCKDB_MEMORY_LIMIT).",
    )
    threads: int = Field(
        default_factory=lambda: get_settings().duckdb_threads,
        description="DuckDB worker threads (env DUCKDB_THREADS).",
    )

    _handed_out: list = PrivateAttr(default_factory=list)

    def _new(self) -> duckdb.DuckDBPyConnection:
        return connect(memory_limit=self.memory_limit, threads=self.threads)

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A connection for the rest of the step (closed at its end)."""
        con = self._new()
        self._handed_out.append(con)
        return con

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        con = self._new()
        try:
            yield con
        finally:
            con.close()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        handed_out, self._handed_out = self._handed_out, []
        for con in handed_out:
            try:
                con.close()
            except duckdb.Error:
                pass  # closed already by its user
