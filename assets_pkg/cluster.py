"""The cluster profile's Dagster pieces (DESIGN section 8), chosen by settings alone.

- :func:`executor_def`: the executor ``ASSETS_PKG_EXECUTOR`` names (``in_process`` default,
  ``multiprocess``, ``celery``: ``assets_pkg.celery_exec``, a queue per domain).
- :func:`execute_selection`: a run of an asset selection through the configured executor
  (the CLI and the demo use it; in process it is ``execute_in_process``).
- :class:`DomainRunCoordinator`: the queued run coordinator of ``deploy/dagster.yaml``; it
  tags every submitted run with the domains it touches (and its log id), which is what the
  coordinator's tag concurrency limits count.
- :class:`PooledPostgresInstance`: the instance class of ``deploy/dagster.yaml``, holding
  each process's Postgres connection between storage calls.
"""

from pathlib import Path

import dagster as dg

from assets_pkg.run_tags import domain_tags
from assets_pkg.settings import celery_backend_url, celery_broker_url, executor_kind

CODE_LOCATION_MODULE = "assets_pkg.definitions"


def executor_def() -> dg.ExecutorDefinition:
    """The executor ``ASSETS_PKG_EXECUTOR`` names; read while the code location loads (a bad
    value or a missing broker fails the load, naming the variable: no run could execute)."""
    kind = executor_kind()
    if kind == "multiprocess":
        return dg.multiprocess_executor
    if kind == "celery":
        from assets_pkg.celery_exec import domain_celery_executor

        return domain_celery_executor.configured(
            {"broker": celery_broker_url(), "backend": celery_backend_url()}, name="celery")
    return dg.in_process_executor


def execute_selection(defs: dg.Definitions, instance: dg.DagsterInstance, asset_keys=None, partition_key=None,
                      run_config=None, tags=None, raise_on_error: bool = True, job_name: str | None = None):
    """One run of ``job_name`` (default: the asset job), restricted to ``asset_keys`` when
    given, through the configured executor. In process it is ``execute_in_process``;
    otherwise the run is rebuilt from ``assets_pkg.definitions`` in each step's process
    (``execute_job``), on an instance those processes can reach."""
    job = defs.resolve_job_def(job_name) if job_name else defs.resolve_implicit_global_asset_job_def()
    run_tags = dict(tags or {})
    selection = None if asset_keys is None else list(asset_keys)
    if executor_kind() == "in_process":
        return job.execute_in_process(instance=instance, partition_key=partition_key, run_config=run_config,
                                      tags=run_tags, asset_selection=selection, raise_on_error=raise_on_error)
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    if partition_key is not None:
        run_tags["dagster/partition"] = partition_key
    # the step processes import the code location from the folder this process imported it
    # from: without it Dagster drops sys.path[0] there and an installed copy of the package
    # (another checkout's editable install) would run the steps instead
    recon = ReconstructableRepository.for_module(CODE_LOCATION_MODULE, "defs", working_directory=_package_parent()
                                                 ).get_reconstructable_job(job.name)
    result = dg.execute_job(recon, instance, run_config=run_config, tags=run_tags, asset_selection=selection,
                            raise_on_error=False)
    if raise_on_error and not result.success:
        raise RunFailed(result)
    return result


def _package_parent() -> str:
    """The folder that holds the ``assets_pkg`` package this process runs."""
    import assets_pkg

    return str(Path(assets_pkg.__file__).resolve().parents[1])


class RunFailed(Exception):
    """A run executed out of process failed; names the run, its failed steps and why each
    failed (the caller's terminal shows no step log)."""

    def __init__(self, result):
        failed = [f"{e.step_key}: {_cause(e.event_specific_data.error)}" if e.event_specific_data.error else e.step_key
                  for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        if failed:
            super().__init__(f"run {result.run_id} failed (steps: {'; '.join(failed)})")
        else:  # the run itself failed (executor, broker): its failure event says why
            why = []
            for event in result.all_events:
                if event.event_type_value in ("PIPELINE_FAILURE", "ENGINE_EVENT"):
                    error = getattr(event.event_specific_data, "error", None)
                    if error is not None:
                        why.append(error.message.strip())
            super().__init__(f"run {result.run_id} failed: {'; '.join(why) or 'see the run'}")
        self.result = result


def _cause(error) -> str:
    """A step's error in one line: the innermost cause (the user code's exception, not
    Dagster's wrapper around it), cut at 300 characters."""
    while error.cause is not None:
        error = error.cause
    lines = error.message.strip().splitlines()
    return lines[0][:300] if lines else error.cls_name or "unknown error"


def run_asset_keys(instance: dg.DagsterInstance, run: dg.DagsterRun) -> set:
    """The asset keys a run materializes or checks: its selection, else its execution plan's."""
    keys = set(run.asset_selection or ())
    keys |= {check.asset_key for check in (run.asset_check_selection or ())}
    if not keys and run.execution_plan_snapshot_id:
        snapshot = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
        for step in snapshot.steps:
            for output in step.outputs:
                props = output.properties
                if props is not None and props.asset_key is not None:
                    keys.add(props.asset_key)
    return keys


class DomainRunCoordinator(dg.QueuedRunCoordinator):
    """The queued run coordinator, tagging each run before it is queued with the domains it
    touches (``assets_pkg/domain.<name>``) and, for a logs run, its log id
    (``assets_pkg/log_id``): the tags ``deploy/dagster.yaml`` limits."""

    def submit_run(self, context):
        run = context.dagster_run
        domains = {key.path[0] for key in run_asset_keys(self._instance, run) if key.path}
        tags = domain_tags(domains, run.job_name, run.tags)
        missing = {k: v for k, v in tags.items() if run.tags.get(k) != v}
        if missing:
            self._instance.add_run_tags(run.run_id, missing)
            run = self._instance.get_run_by_id(run.run_id)
            context = context._replace(dagster_run=run)
        return super().submit_run(context)


# Seconds a pooled Postgres connection lives before it is replaced (dagster-webserver's default).
POSTGRES_POOL_RECYCLE_S = 3600
# Connections a process may open beyond its one pooled connection when threads query at once.
POSTGRES_POOL_OVERFLOW = 10


class PooledPostgresInstance(dg.DagsterInstance):
    """The instance of ``deploy/dagster.yaml`` (``instance_class``): each process keeps its
    Postgres connection open between storage calls, checked before each use.

    dagster-postgres opens a new connection for every storage call (``NullPool``), so a step
    that stores a few dozen events and checks each partition it reports paid several hundred
    connections: 587 (1.5 s of a 4 s split-finish step) at 20 shards, each also a new backend
    process forked on the database's machine (bench/NOTES.md "Cluster hand-off"). This is
    what dagster-webserver does for itself (``optimize_for_webserver``), with no statement
    timeout (a step's storage calls take as long as they took before). A pooled connection
    is pinged when it is taken: one that a Postgres restart cut is replaced by a new one,
    whose connect dagster-postgres retries with back-off as before, so a short restart is
    still ridden out (test_cluster_faults.py)."""

    # what Dagster asks of an ``instance_class``: no settings of its own, the usual defaults
    @classmethod
    def config_schema(cls):
        return {}

    @staticmethod
    def config_defaults(base_dir):
        from dagster._core.instance.ref import InstanceRef

        return InstanceRef.config_defaults(base_dir)

    def __init__(self, *args, **kwargs):
        import sqlalchemy

        super().__init__(*args, **kwargs)
        self.optimize_for_webserver(statement_timeout=0, pool_recycle=POSTGRES_POOL_RECYCLE_S,
                                    max_overflow=POSTGRES_POOL_OVERFLOW)
        for storage in (self.run_storage, self.event_log_storage, self.schedule_storage):
            engine = getattr(storage, "_engine", None)
            if engine is None:
                raise TypeError(f"{type(storage).__name__} has no SQLAlchemy engine: PooledPostgresInstance "
                                f"is for dagster-postgres storages (deploy/dagster.yaml's `storage: postgres`)")
            sqlalchemy.event.listen(engine, "checkout", _ping_on_checkout)


def _ping_on_checkout(dbapi_connection, connection_record, connection_proxy) -> None:
    """SQLAlchemy's checkout hook: a pooled connection that no longer answers is dropped
    (``DisconnectionError``), and the pool takes a new one."""
    import sqlalchemy

    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:
        raise sqlalchemy.exc.DisconnectionError(f"pooled Postgres connection lost: {error}") from error
