"""assets_pkg: one Dagster code location for five data workflows.

`dagster dev -m assets_pkg` and `dagster asset materialize -m assets_pkg` load `defs`
lazily from :mod:`assets_pkg.definitions`.
"""


def __getattr__(name):
    if name == "defs":
        from assets_pkg.definitions import defs

        return defs
    raise AttributeError(name)
