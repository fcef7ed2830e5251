"""Runs and sensor ticks that belong to the code location, launched from our own process.

`make ui` serves the code location ``assets_pkg`` (``workspace.yaml``); its UI lists a job's
runs by the run's repository label, links a partition to the run's job, re-executes a run
through its remote origin, and its daemon continues a sensor from the cursor stored in the
instance under the sensor's selector (location, repository, name). The demo plays the
daemon's part, so what it launches carries the same identity:

- :func:`execute_job` runs a *named* job in this process (``execute_in_process``'s path),
  but creates the run with the code location's remote origin, so the UI shows it in the
  job's Runs tab and the partition shows its job;
- :func:`evaluate_sensor_tick` evaluates a sensor with the cursor stored in the instance,
  applies its dynamic-partition requests, launches its run requests through their job, and
  stores the new cursor and a tick as the daemon does, so a daemon switched on later
  continues from there (nothing is re-requested).

Dagster offers no public call that runs a job in process under a given remote origin; the
few internal names used here are those of ``dagster/_core/execution/execute_in_process.py``
(1.13.27), which this module follows step by step.
"""

import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.definitions.job_base import InMemoryJob
from dagster._core.definitions.repository_definition.valid_definitions import SINGLETON_REPOSITORY_NAME
from dagster._core.execution.api import ExecuteRunWithPlanIterable, create_execution_plan, job_execution_iterator
from dagster._core.execution.context_creation_job import (
    PlanOrchestrationContextManager,
    orchestration_context_event_generator,
)
from dagster._core.execution.execute_in_process import merge_run_tags
from dagster._core.execution.execute_in_process_result import ExecuteInProcessResult
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster._core.remote_origin import (
    InProcessCodeLocationOrigin,
    RemoteInstigatorOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorStatus,
    InstigatorType,
    SensorInstigatorData,
    TickData,
    TickStatus,
)
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

# workspace.yaml's location_name and module (test_definitions checks they agree)
LOCATION_NAME = "assets_pkg"
DEFINITIONS_MODULE = "assets_pkg.definitions"


def repository_origin() -> RemoteRepositoryOrigin:
    """The origin of the code location's (single) repository as `make ui` names it."""
    loadable = LoadableTargetOrigin(executable_path=sys.executable, module_name=DEFINITIONS_MODULE,
                                    working_directory=os.getcwd())
    return RemoteRepositoryOrigin(InProcessCodeLocationOrigin(loadable, location_name=LOCATION_NAME),
                                  SINGLETON_REPOSITORY_NAME)


def _job_code_origin(job_name: str) -> JobPythonOrigin:
    pointer = ModuleCodePointer(DEFINITIONS_MODULE, "defs", os.getcwd())
    return JobPythonOrigin(job_name, RepositoryPythonOrigin(executable_path=sys.executable, code_pointer=pointer))


def execute_job(defs: dg.Definitions, instance: dg.DagsterInstance, job_name: str, *,
                partition_key: str | None = None, run_config: Mapping | None = None,
                tags: Mapping[str, str] | None = None, asset_selection: Sequence[dg.AssetKey] | None = None,
                raise_on_error: bool = True) -> ExecuteInProcessResult:
    """Run the named job (or the assets ``asset_selection`` of it) in this process, as a
    run of the code location: ``job.execute_in_process`` with the run's remote origin set.
    With ``ASSETS_PKG_EXECUTOR`` other than ``in_process`` the run goes through that executor
    instead (:func:`assets_pkg.cluster.execute_selection`: steps in other processes or on
    Celery workers)."""
    from assets_pkg.settings import executor_kind

    if executor_kind() != "in_process":
        from assets_pkg.cluster import execute_selection

        return execute_selection(defs, instance, list(asset_selection) if asset_selection else None,
                                 partition_key=partition_key, run_config=run_config, tags=tags,
                                 raise_on_error=raise_on_error, job_name=job_name)
    job_def = defs.resolve_job_def(job_name)
    selection = list(asset_selection or [])
    if set(selection) == set(job_def.asset_layer.selected_asset_keys):
        selection = []  # the whole job: a run of the job itself, not of a subset of it
    run_config = dict(run_config or {})
    ephemeral = job_def.as_ephemeral_job(resource_defs={}, input_values={}, asset_selection=selection)
    if partition_key and ephemeral.partitions_def and not run_config and ephemeral.partitioned_config:
        run_config = dict(ephemeral.partitioned_config.get_run_config_for_partition_key(partition_key))
    run_tags = merge_run_tags(job_def=job_def, partition_key=partition_key, tags=tags,
                              asset_selection=selection, instance=instance, run_config=run_config)
    job = InMemoryJob(job_def=ephemeral)
    plan = create_execution_plan(job, run_config=run_config, instance_ref=instance.get_ref())
    # the run records the named job's own snapshot (the UI compares it with the code
    # location's to offer re-execution without a version warning); it executes the
    # ephemeral copy, whose executor runs in this process whatever the job's executor is
    named = job_def.get_subset(asset_selection=frozenset(selection)) if selection else job_def
    run = instance.create_run_for_job(
        job_def=named, run_config=run_config, tags={**ephemeral.run_tags, **run_tags},
        asset_selection=frozenset(selection) or None, execution_plan=plan,
        remote_job_origin=RemoteJobOrigin(repository_origin(), job_name),
        job_code_origin=_job_code_origin(job_name),
    )
    output_capture: dict = {}
    events = list(ExecuteRunWithPlanIterable(
        execution_plan=plan,
        iterator=job_execution_iterator,
        execution_context_manager=PlanOrchestrationContextManager(
            context_event_generator=orchestration_context_event_generator, job=job, execution_plan=plan,
            dagster_run=run, instance=instance, run_config=run_config, executor_defs=None,
            output_capture=output_capture, raise_on_error=raise_on_error,
        ),
    ))
    return ExecuteInProcessResult(job_def=ephemeral, event_list=events,
                                  dagster_run=instance.get_run_by_id(run.run_id), output_capture=output_capture)


def job_for_assets(defs: dg.Definitions, keys: Sequence[dg.AssetKey]) -> str | None:
    """The first named job that materializes every one of ``keys`` (None: no such job)."""
    wanted = set(keys)
    for job in defs.resolve_all_job_defs():
        if job.name.startswith("__"):
            continue
        if wanted <= set(job.asset_layer.selected_asset_keys):
            return job.name
    return None


def sensor_origin(name: str) -> RemoteInstigatorOrigin:
    return RemoteInstigatorOrigin(repository_origin(), name)


def stored_sensor_state(instance: dg.DagsterInstance, name: str) -> InstigatorState | None:
    """The sensor's state as the daemon stores it (looked up by its selector)."""
    origin = sensor_origin(name)
    return instance.get_instigator_state(origin.get_id(), origin.get_selector().get_id())


def stored_cursor(instance: dg.DagsterInstance, name: str) -> str | None:
    state = stored_sensor_state(instance, name)
    data = state.instigator_data if state else None
    return data.cursor if isinstance(data, SensorInstigatorData) else None


@dataclass
class Tick:
    """What one tick did: the runs it launched (in request order), its skip message."""
    results: list = field(default_factory=list)
    skip_message: str | None = None


def evaluate_sensor_tick(defs: dg.Definitions, instance: dg.DagsterInstance, name: str,
                         run_config: Mapping | None = None) -> Tick:
    """One tick of sensor ``name``, as the daemon runs it: the stored cursor in, the
    requested dynamic partitions added, each run request launched through its job (tagged
    with its run key and the sensor's name), the new cursor and the tick stored."""
    sensor = defs.resolve_sensor_def(name)
    state = stored_sensor_state(instance, name)
    started = time.time()
    # instance_ref (not instance): validating dynamic partition keys needs it threaded down;
    # `with` disposes the instance the context builds from the ref
    with dg.build_sensor_context(instance_ref=instance.get_ref(), cursor=stored_cursor(instance, name),
                                 definitions=defs, sensor_name=name) as context:
        data = sensor.evaluate_tick(context)
    for request in data.dynamic_partitions_requests or []:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)
    tick = Tick(skip_message=data.skip_message)
    try:
        for request in data.run_requests or []:
            job_name = request.job_name or (sensor.job_name if sensor.has_jobs else None)
            if job_name is None:
                job_name = job_for_assets(defs, list(request.asset_selection or []))
            tags = dict(request.tags or {})
            if request.run_key:  # as the daemon tags a sensor's run: the sensor finds it by its run key
                tags.update({RUN_KEY_TAG: request.run_key, SENSOR_NAME_TAG: name})
            config = request.run_config or run_config
            tick.results.append(execute_job(
                defs, instance, job_name, partition_key=request.partition_key, tags=tags,
                run_config=config.to_config_dict() if hasattr(config, "to_config_dict") else config,
                asset_selection=list(request.asset_selection) if request.asset_selection else None,
            ))
    finally:
        # the cursor is stored even when a run raised: it tracks that run by its run key,
        # so the next tick sees it failed and requests its work again (sensor_runs.py)
        _store_tick(instance, sensor, state, data, tick, started)
    return tick


def _store_tick(instance, sensor, state, data, tick: Tick, started: float) -> None:
    origin = state.origin if state else sensor_origin(sensor.name)
    previous = state.instigator_data if state and isinstance(state.instigator_data, SensorInstigatorData) else None
    run_keys = [r.run_key for r in data.run_requests or [] if r.run_key]
    now = time.time()
    instigator_data = SensorInstigatorData(
        last_tick_timestamp=now, last_run_key=run_keys[-1] if run_keys else (previous.last_run_key if previous else None),
        min_interval=sensor.minimum_interval_seconds, cursor=data.cursor if data.cursor is not None else (
            previous.cursor if previous else None),
        last_tick_start_timestamp=started, sensor_type=sensor.sensor_type,
        last_sensor_start_timestamp=previous.last_sensor_start_timestamp if previous else started,
        last_tick_success_timestamp=now,
    )
    if state is None:
        # the state the daemon creates for a sensor that runs by default; with automation
        # off the UI shows it stopped (a DECLARED_IN_CODE state follows the default status)
        instance.add_instigator_state(InstigatorState(origin, InstigatorType.SENSOR, InstigatorStatus.DECLARED_IN_CODE,
                                                      instigator_data))
    else:
        instance.update_instigator_state(state.with_data(instigator_data))
    instance.create_tick(TickData(
        instigator_origin_id=origin.get_id(), instigator_name=sensor.name, instigator_type=InstigatorType.SENSOR,
        status=TickStatus.SUCCESS if data.run_requests else TickStatus.SKIPPED, timestamp=started,
        end_timestamp=now, run_ids=[r.run_id for r in tick.results], run_keys=run_keys,
        skip_reason=None if data.run_requests else data.skip_message, cursor=data.cursor,
        selector_id=origin.get_selector().get_id(),
    ))
