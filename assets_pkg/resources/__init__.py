"""Dagster resources shared by every domain."""

from assets_pkg.resources.duckdb import DuckDBResource

__all__ = ["DuckDBResource"]
