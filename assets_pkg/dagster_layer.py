"""Small adapters between the pure modules and Dagster, shared by every domain."""

import dagster as dg

from assets_pkg.checking import ERROR, CheckOutcome


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
    """One in-process run of ``selection`` on ``instance``: the one way the CLI and the demo
    materialize (the console logger at ``log_level``, range tags passed through)."""
    job = defs.resolve_implicit_global_asset_job_def()
    asset_keys = list(dg.AssetSelection.from_coercible(selection).resolve(defs.resolve_asset_graph()))
    return job.execute_in_process(
        instance=instance,
        partition_key=partition_key,
        run_config=with_console_level(run_config, log_level),
        tags=dict(tags or {}),
        asset_selection=asset_keys,
        raise_on_error=raise_on_error,
    )
