"""assets_pkg: one Dagster code location for five data workflows.

`dagster dev -m assets_pkg` and `dagster asset materialize -m assets_pkg` load `defs`
lazily from :mod:`assets_pkg.definitions`.
"""

from assets_pkg.arrow_pool import prefer_jemalloc

prefer_jemalloc()  # before anything loads pyarrow: fewer freed pages kept (see arrow_pool)


def __getattr__(name):
    if name == "defs":
        from assets_pkg.definitions import defs

        return defs
    raise AttributeError(name)
