"""`defs`: every domain's Definitions merged, plus the resources they share.

Each domain package exposes ``<domain>.definitions.defs``; this module only merges them and
supplies the two shared resources (``io_manager`` and ``duckdb``) and the executor
``ASSETS_PKG_EXECUTOR`` names (``assets_pkg.cluster``). The default executes in process:
one run costs seconds of start-up, and DuckDB already uses both cores inside a step.
"""

import importlib

import dagster as dg

from assets_pkg.cluster import executor_def
from assets_pkg.dagster_layer import bind_used_resources
from assets_pkg.domains import DOMAINS
from assets_pkg.io.parquet_io_manager import ShardedParquetIOManager
from assets_pkg.resources.duckdb import DuckDBResource


def domain_definitions() -> list[dg.Definitions]:
    found = []
    for name in DOMAINS:
        module_name = f"assets_pkg.{name}.definitions"
        try:
            found.append(importlib.import_module(module_name).defs)
        except ModuleNotFoundError as exc:
            # Only a domain without a definitions module is skipped (test_definitions
            # requires all of them); an import error inside one still fails loudly.
            if exc.name != module_name:
                raise
    return found


def build_definitions() -> dg.Definitions:
    merged = dg.Definitions.merge(dg.Definitions(executor=executor_def()), *domain_definitions())
    # bound per asset, not globally: each job's launchpad lists only the resources it uses
    return bind_used_resources(merged, {"io_manager": ShardedParquetIOManager(), "duckdb": DuckDBResource()})


defs = build_definitions()
