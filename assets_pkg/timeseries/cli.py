"""`assets-pkg timeseries ...`: validate the catalog and list the days that have data."""

from assets_pkg.storage import as_path
from assets_pkg.storage.objects import file_exists


def register(subparsers) -> None:
    parser = subparsers.add_parser("timeseries", help="time-series catalog: validate it, list the days with data")
    sub = parser.add_subparsers(dest="timeseries_command", required=True)
    validate = sub.add_parser("validate", help="parse datasets.yaml and show each dataset's resampling mode")
    validate.add_argument("--catalog", help="path of datasets.yaml (default <data root>/inbox/timeseries/datasets.yaml)")
    validate.set_defaults(func=_validate)
    days = sub.add_parser("days", help="the UTC days (partition keys) between the first and last timestamp")
    days.add_argument("--catalog", help="path of datasets.yaml (default <data root>/inbox/timeseries/datasets.yaml)")
    days.set_defaults(func=_days)


def _catalog(args):
    from assets_pkg.timeseries.catalog import catalog_path, load_catalog

    return load_catalog(as_path(args.catalog) if args.catalog else catalog_path())


def _validate(args) -> int:
    from assets_pkg.timeseries.catalog import CatalogError, format_duration

    try:
        catalog = _catalog(args)
    except CatalogError as exc:
        print(f"error: {exc}")
        return 1
    target = catalog.target_resolution_us
    print(f"{catalog.path}: target {format_duration(target)}, tolerance {format_duration(catalog.tolerance_us)}, "
          f"join {catalog.join}, export {', '.join(catalog.export_formats)} (csv {catalog.csv_compression})")
    missing = 0
    for spec in catalog.datasets:
        exists = file_exists(spec.file)
        missing += not exists
        mode = spec.mode(target)
        detail = {"down": ", ".join(f"{c}:{a}" for c, a in spec.aggregation.items()),
                  "same": "passthrough",
                  "up": f"{spec.upsampling.method} limit {spec.fill_limit(target)}"}[mode]
        print(f"  {spec.name}: {spec.file}{'' if exists else ' (MISSING)'}  {format_duration(spec.resolution_us)} -> "
              f"{mode} ({detail}); keys {list(spec.key_columns)}; tz {spec.timezone}")
    return 1 if missing else 0


def _days(args) -> int:
    from assets_pkg.timeseries.load import data_days

    for day in data_days(_catalog(args)):
        print(day)
    return 0
