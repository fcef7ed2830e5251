"""`timeseries_file_sensor`: new, changed or removed dataset files -> one run over their days.

The datasets of the catalog (`data/inbox/timeseries/datasets.yaml`) name their files; a file
is known by its size and mtime. When one appears, changes or disappears (or the catalog
itself changes: then every file), the sensor scans the file for its first and last UTC day
and asks for ONE run of resampled -> merged -> export -> analysis over the union of those
days and the days the file covered before (single-run backfill policy). A dataset that
up-samples carries values across midnight, so the day after its last day is included.

The cursor tracks each run until it finishes (:mod:`assets_pkg.sensor_runs`): a run that
fails or is canceled gives its files back and they are requested again.
"""

import datetime as dt

import dagster as dg

from assets_pkg.dagster_layer import sensor_status
from assets_pkg.duck import connect
from assets_pkg.run_tags import RANGE_END_TAG, RANGE_START_TAG
from assets_pkg.storage import is_remote, objects
from assets_pkg.sensor_runs import TrackedCursor, work_key
from assets_pkg.timeseries.assets import ASSETS, DAILY, TimeseriesConfig
from assets_pkg.timeseries.catalog import Catalog, CatalogError
from assets_pkg.timeseries.jobs import timeseries_job
from assets_pkg.timeseries.load import day_span

SENSOR_NAME = "timeseries_file_sensor"
CATALOG_ITEM = "<catalog>"
GONE = "<gone>"
ASSET_KEYS = [a.key for a in ASSETS]


def _identity(path) -> str:
    """Size and modification time (an object in a store: asked of it now, not a cached listing)."""
    if is_remote(path):
        info = objects.object_info(path) or {}
        return f"{info.get('size')}:{info.get('LastModified')}:{info.get('ETag')}"
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def _item(spec) -> str:
    return f"{spec.name}:{spec.file}"


def _next_day(day: str) -> str:
    return (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()


def _affected_days(catalog: Catalog, changed: list[str], logger) -> tuple[dict, list[str]]:
    """(item -> [first, last] day of its file now, problems: files that could not be scanned)."""
    specs = {_item(spec): spec for spec in catalog.datasets}
    spans, problems = {}, []
    con = connect()
    try:
        for item in changed:
            spec = specs.get(item)
            if spec is None or not objects.file_exists(spec.file):
                continue
            try:
                span = day_span(con, spec)
            except (ValueError, OSError) as exc:  # the run would fail on it too: say which file
                problems.append(f"{spec.file}: {exc}")
                logger.warning(f"time-series file not scanned: {spec.file}: {exc}")
                continue
            if span is not None:
                last = _next_day(span[1]) if spec.mode(catalog.target_resolution_us) == "up" else span[1]
                spans[item] = [span[0], last]
    finally:
        con.close()
    return spans, problems


@dg.sensor(
    name=SENSOR_NAME,
    job=timeseries_job,
    minimum_interval_seconds=60,
    default_status=sensor_status(),
    description="A dataset file of data/inbox/timeseries/datasets.yaml that appears, changes (size or mtime) or "
                "disappears -> one run of resampled, merged, export and analysis over the days it covers (before "
                "and after). A run that fails or is canceled is requested again (new run key).",
)
def timeseries_file_sensor(context: dg.SensorEvaluationContext):
    cursor = TrackedCursor.load(SENSOR_NAME, context.cursor)
    cursor.settle(context)  # the files of a failed or canceled run count as changed again
    config = TimeseriesConfig()
    try:
        catalog = config.load()  # a bad setting or catalog fails the tick naming it
    except CatalogError as exc:
        if "not found" in str(exc):
            return dg.SensorResult(skip_reason=f"no time-series catalog: {exc}", cursor=cursor.dumps())
        raise
    current = {_item(spec): _identity(spec.file) for spec in catalog.datasets if objects.file_exists(spec.file)}
    catalog_id = _identity(catalog.path)
    remembered = cursor.extra.setdefault("days", {})
    if cursor.seen.get(CATALOG_ITEM) != catalog_id:
        changed = sorted(set(current) | set(remembered))  # new settings: every day of every file
    else:
        changed = sorted(item for item in set(current) | set(remembered)
                         if cursor.seen.get(item) != current.get(item, GONE))
    if not changed and cursor.seen.get(CATALOG_ITEM) == catalog_id:
        return dg.SensorResult(skip_reason="no new, changed or removed time-series files", cursor=cursor.dumps())
    spans, problems = _affected_days(catalog, changed, context.log)
    days = [d for item in changed for d in (spans.get(item, []) + remembered.get(item, []))]
    keys = DAILY.get_partition_keys(dynamic_partitions_store=None)
    items = {item: current.get(item, GONE) for item in changed if item in spans or item not in current}
    items[CATALOG_ITEM] = catalog_id
    if days and keys:
        first, last = max(min(days), keys[0]), min(max(days), keys[-1])
    else:
        first = last = None
    if first is None or first > last:
        # nothing to compute (yet): no file with rows, or days past the last partition;
        # only what has been looked at is marked seen, so files with future days are retried
        last_key = keys[-1] if keys else ""
        for item, identity in items.items():
            if item not in spans or spans[item][0] <= last_key:
                cursor.seen[item] = identity
        reason = "changed time-series files hold no day with a partition yet"
        if problems:
            reason += f"; not scanned: {'; '.join(problems)}"
        return dg.SensorResult(skip_reason=reason, cursor=cursor.dumps())
    for item in changed:
        if item in spans:
            remembered[item] = spans[item]
        elif item not in current:
            remembered.pop(item, None)
    context.log.info(f"{len(changed)} new, changed or removed time-series file(s): days {first}..{last}")
    request = cursor.request(context, work_key("timeseries", items), items, asset_selection=ASSET_KEYS,
                             tags={RANGE_START_TAG: first, RANGE_END_TAG: last})
    return dg.SensorResult(run_requests=[request] if request else [], cursor=cursor.dumps())
