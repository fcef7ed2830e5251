"""Small adapters between the pure modules and Dagster, shared by every domain."""

import typing
from collections.abc import Callable, Iterable, Mapping

import dagster as dg
from pydantic import Field, create_model

from assets_pkg.checking import ERROR, CheckOutcome
from assets_pkg.settings import AUTOMATION_VAR, at_load, automation_on


def _automation_on() -> bool:
    # read while the code location loads: a bad value warns and keeps automation on, it
    # never takes the code location down
    return at_load(automation_on, True, AUTOMATION_VAR)


def sensor_status() -> dg.DefaultSensorStatus:
    """The status every inbox sensor starts with in a fresh instance (``ASSETS_PKG_AUTOMATION``)."""
    return dg.DefaultSensorStatus.RUNNING if _automation_on() else dg.DefaultSensorStatus.STOPPED


def schedule_status() -> dg.DefaultScheduleStatus:
    """The status every schedule starts with in a fresh instance (``ASSETS_PKG_AUTOMATION``)."""
    return dg.DefaultScheduleStatus.RUNNING if _automation_on() else dg.DefaultScheduleStatus.STOPPED


def severity(outcome: CheckOutcome) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity.ERROR if outcome.severity == ERROR else dg.AssetCheckSeverity.WARN


def check_result(outcome: CheckOutcome, asset_key: dg.AssetKey | None = None) -> dg.AssetCheckResult:
    """Turn a pure :class:`CheckOutcome` into the result Dagster records."""
    return dg.AssetCheckResult(
        passed=bool(outcome.passed),
        check_name=outcome.name,
        asset_key=asset_key or dg.AssetKey(outcome.asset.split("/")),
        severity=severity(outcome),
        description=outcome.description or None,
        metadata=_metadata(outcome.metadata),
    )


def check_evaluation(outcome: CheckOutcome, partition: str | None = None) -> dg.AssetCheckEvaluation:
    """A pure :class:`CheckOutcome` as the evaluation event Dagster stores (of one partition)."""
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey(outcome.asset.split("/")), check_name=outcome.name, passed=bool(outcome.passed),
        metadata=_metadata(outcome.metadata), severity=severity(outcome), description=outcome.description or None,
        partition=partition,
    )


def per_partition_check(context, outcomes: Mapping[str, CheckOutcome], aggregate: CheckOutcome) -> dg.AssetCheckResult:
    """The results of a check declared per partition (``AssetCheckSpec(partitions_def=)``).

    Dagster 1.13's ``AssetCheckResult`` takes the step's partition, and a run over a range
    has none; so in such a run each partition's evaluation is logged with its partition
    (stored per partition, as the UI shows it), and the step's own result, the check's
    output, is the run-level aggregate. Over one partition it is that partition's result."""
    if len(outcomes) > 1:
        for key, outcome in outcomes.items():
            context.log_event(check_evaluation(outcome, partition=key))
    return check_result(aggregate)


def record_check_outcomes(instance: dg.DagsterInstance, defs: dg.Definitions, outcomes) -> int:
    """Record outcomes computed outside a run (``assets-pkg check``) in the instance, as the
    latest evaluation of each check the code location defines (the UI shows it; a check
    declared per partition gets one evaluation per partition of ``by_partition``, or the
    outcome's ``day`` as its partition); returns how many were recorded."""
    graph = defs.resolve_asset_graph()
    partitioned = {(key.asset_key.to_user_string(), key.name): graph.get(key).partitions_def is not None
                   for key in graph.asset_check_keys}
    recorded = 0
    for outcome in outcomes:
        key = (outcome.asset, outcome.name)
        if key not in partitioned:
            continue
        if not partitioned[key]:
            parts = {None: outcome}
        elif outcome.by_partition:
            parts = outcome.by_partition
        else:  # a time-series day, or a finding about no one partition (an unreadable source)
            parts = {outcome.metadata.get("day"): outcome}
        for partition, part in parts.items():
            instance.report_runless_asset_event(check_evaluation(part, partition=partition))
            recorded += 1
    return recorded


def _metadata(values: dict) -> dict:
    clean = {}
    for key, value in values.items():
        if isinstance(value, (list, tuple, set)):
            clean[key] = dg.MetadataValue.json(list(value))
        elif isinstance(value, dict):
            clean[key] = dg.MetadataValue.json(value)
        else:
            clean[key] = value
    return clean


# A run over several partitions yields one output, and Dagster copies its metadata onto every
# partition's materialization (dagster/_core/execution/plan/execute_step.py,
# _get_output_asset_events: output metadata, then the partition's own on top). So a figure
# of the whole run is renamed here, and each partition gets its own figures through
# ``add_asset_metadata(..., partition_key=)``.
RUN_FIGURES = {"dagster/row_count": "run/rows", "bytes": "run/bytes", "seconds": "run/seconds",
               "peak_rss_mb": "run/peak_rss_mb", "rows_per_second": "run/rows_per_second",
               "partitions": "run/partitions", "files_written": "run/files_written"}


def run_level(metadata: Mapping, partitions: int) -> dict:
    """The metadata of an output over ``partitions`` partitions: with more than one, the
    run's own figures (rows, bytes, seconds, peak memory) are labelled ``run/<name>``, so no
    partition shows the run's total as its own."""
    if partitions <= 1:
        return dict(metadata)
    return {RUN_FIGURES.get(key, key): value for key, value in metadata.items()}


def add_partition_metadata(context, by_partition: Mapping[str, Mapping], asset_key=None) -> None:
    """Each partition's own metadata (row count, bytes, ...) on its materialization."""
    for key, metadata in by_partition.items():
        context.add_asset_metadata(dict(metadata), asset_key=asset_key, partition_key=key)


def bind_used_resources(defs: dg.Definitions, shared: Mapping[str, object]) -> dg.Definitions:
    """``defs`` with its resources (and ``shared``) bound to each asset, check and op job that
    uses them, none at the top level.

    Dagster gives every asset job all top-level resources, and its launchpad lists each one
    with config (``split_config`` on ``summary_job``); a resource bound to an asset reaches
    only the jobs that select that asset (``dg.with_resources`` keeps the keys the asset
    requires). A schedule or sensor targeting a rebound op job is pointed at the new one."""
    available = {**shared, **(defs.resources or {})}
    assets = dg.with_resources(list(defs.assets or []), available)
    checks = dg.with_resources(list(defs.asset_checks or []), available)
    rebound = {id(job): _job_with_used(job, available) for job in defs.jobs or [] if isinstance(job, dg.JobDefinition)}
    schedules = [schedule.with_updated_job(rebound[id(schedule.job)])
                 if isinstance(schedule, dg.ScheduleDefinition) and schedule.has_job and id(schedule.job) in rebound
                 else schedule for schedule in defs.schedules or []]
    sensors = [sensor.with_updated_jobs([rebound.get(id(job), job) for job in sensor.jobs])
               if sensor.has_jobs and any(id(job) in rebound for job in sensor.jobs) else sensor
               for sensor in defs.sensors or []]
    return dg.Definitions(
        assets=assets, asset_checks=checks, jobs=[rebound.get(id(job), job) for job in defs.jobs or []],
        schedules=schedules, sensors=sensors, executor=defs.executor, loggers=defs.loggers, metadata=defs.metadata,
    )


def _job_with_used(job: dg.JobDefinition, available: Mapping[str, object]) -> dg.JobDefinition:
    from dagster._core.execution.with_resources import wrap_resources_for_execution

    used = {key: value for key, value in available.items() if key in job.required_resource_keys}
    return job.with_top_level_resources({**wrap_resources_for_execution(used), **job.resource_defs})


def log_progress(context):
    """A streaming-reader progress callback that logs into the Dagster event log."""
    from assets_pkg.reader import format_progress

    def _callback(event) -> None:
        context.log.info(format_progress(event))

    return _callback


def with_console_level(run_config, level: str = "INFO") -> dict:
    """Run config with the console logger at INFO: the demo's report should not drown in
    Dagster's DEBUG engine events (progress and check lines are INFO and stay)."""
    if run_config is None:
        config = {}
    elif hasattr(run_config, "to_config_dict"):
        config = dict(run_config.to_config_dict())
    else:
        config = dict(run_config)
    config.setdefault("loggers", {"console": {"config": {"log_level": level}}})
    return config


def materialize_selection(defs: dg.Definitions, instance: dg.DagsterInstance, selection, partition_key=None,
                          run_config=None, tags=None, log_level: str = "INFO", raise_on_error: bool = True):
    """One run of ``selection`` on ``instance`` through the configured executor (in process by
    default): the one way the CLI and the demo materialize (the console logger at
    ``log_level``, range tags passed through)."""
    from assets_pkg.cluster import execute_selection

    asset_keys = list(dg.AssetSelection.from_coercible(selection).resolve(defs.resolve_asset_graph()))
    return execute_selection(defs, instance, asset_keys, partition_key=partition_key,
                             run_config=with_console_level(run_config, log_level), tags=tags,
                             raise_on_error=raise_on_error)


def _config_type(annotation):
    """Dagster config has lists, not tuples."""
    if typing.get_origin(annotation) is tuple:
        return list[typing.get_args(annotation)[0]]
    return annotation


def _config_value(value):
    return list(value) if isinstance(value, tuple) else value


def config_class(
    model,
    base: type = dg.Config,
    *,
    defaults: Callable[[], Mapping] | None = None,
    exclude: Iterable[str] = (),
) -> type:
    """The launchpad's config class of a settings declaration (``assets_pkg.settings.SettingsModel``):
    the same fields, types and descriptions, on ``base`` (``dg.Config`` for op config,
    ``dg.ConfigurableResource`` for a resource).

    The launchpad shows every field with its real default: ``defaults()`` (default: the
    declared default overridden by the env var) as read when the code location loads (a bad
    env var or settings file: the declared defaults, with a warning). A field the run does
    not set, or sets to that shown default, takes its value when the config object is
    built, i.e. when the run starts, from ``defaults()`` again: Dagster fills the shown
    default into every run's config, and the env of the run, not that of the load, must
    decide. So a bad env var or settings file fails that domain's runs with the error
    naming it, never the loading of the code location. ``settings()`` gives the validated
    declaration (``SettingError`` naming the setting). Fields in ``exclude`` stay out of
    the launchpad and keep the value ``defaults()`` gives them.
    """
    read_defaults = defaults or model.env_defaults
    excluded = set(exclude)
    names = [name for name in model.model_fields if name not in excluded]
    declared = {name: model.model_fields[name].get_default(call_default_factory=True) for name in names}
    loaded = at_load(lambda: {name: read_defaults()[name] for name in names}, declared, model.__name__)
    shown = {name: _config_value(loaded[name]) for name in names}

    class Declared(base):
        def __init__(self, **values):
            unset = [name for name in names if name not in values or values[name] == shown[name]]
            if unset:
                found = read_defaults()  # one read (file, env) for every field left to it
                values = {**values, **{name: _config_value(found[name]) for name in unset}}
            super().__init__(**values)

        def settings(self):
            chosen = {name: getattr(self, name) for name in names}
            return model.build(**({**read_defaults(), **chosen} if excluded else chosen))

    fields = {
        name: (_config_type(model.model_fields[name].annotation),
               Field(default=shown[name], description=model.model_fields[name].description))
        for name in names
    }
    return create_model(model.__name__ + "Config", __base__=Declared, __doc__=model.__doc__, **fields)
