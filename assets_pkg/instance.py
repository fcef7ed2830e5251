"""The one way the project opens its Dagster instance (``DAGSTER_HOME``).

Dagster creates a fresh home's SQLite storages (runs, event log index, schedules) on first
open, and that creation is not safe across processes: two processes opening a fresh home
together can both stamp the alembic version table and leave it with two heads, after which
every open fails. So the first open is serialized by an exclusive lock (``io.locks.hold``) on
``<DAGSTER_HOME>/.init.lock``, held while ``dagster.yaml`` is written and every storage is
created; later opens take the same lock briefly and find everything in place.

A run never hangs in the instance: the ``dagster.yaml`` written here turns run monitoring on
(the daemon of ``dagster dev`` fails a run that never starts; the code server fails a run
whose worker it launched and saw die), and every open by the project first fails the runs
left STARTED by a process that is gone (:func:`fail_dead_runs`), so without a daemon a
killed ``assets-pkg summary run`` does not show as running forever.
"""

import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from assets_pkg.io.atomic import atomic_write_text, pid_alive
from assets_pkg.io.locks import hold
from assets_pkg.settings import Settings, get_settings

INIT_LOCK_NAME = ".init.lock"
# run_monitoring keys as dagster 1.13 declares them (dagster/_core/instance/config.py). The
# default run launcher has no worker health check, so the daemon's part is the start
# timeout (a launched run whose worker never started); a worker that dies after starting is
# failed by the code server that launched it, or by fail_dead_runs on the next open.
DEFAULT_INSTANCE_YAML = """telemetry:
  enabled: false
run_monitoring:
  enabled: true
  poll_interval_seconds: 15
  start_timeout_seconds: 180
"""
# dagster.yaml as earlier releases wrote it: upgraded in place (a user-edited file is kept)
EARLIER_INSTANCE_YAMLS = ("telemetry:\n  enabled: false\n",)


def ensure_dagster_home(settings: Settings | None = None) -> Path:
    """DAGSTER_HOME defaults to <data root>/.dagster, persistent so `make ui` shows the runs;
    with an object-store data root it stays a local folder (``settings.dagster_home``):
    SQLite cannot live in a bucket."""
    settings = settings or get_settings()
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(settings.dagster_home)))
    home.mkdir(parents=True, exist_ok=True)
    return home


def _init_lock(home: Path):
    return hold(home / INIT_LOCK_NAME, "Dagster instance initialization")


def _create(home: Path) -> dg.DagsterInstance:
    config = home / "dagster.yaml"
    if not config.exists() or config.read_text(encoding="utf-8") in EARLIER_INSTANCE_YAMLS:
        atomic_write_text(config, DEFAULT_INSTANCE_YAML)
    instance = dg.DagsterInstance.get()
    try:
        # Constructing the instance created its storages; a read of each proves them usable
        # while the lock is still held.
        instance.get_runs(limit=1)
        instance.all_instigator_state()
    except BaseException:
        instance.dispose()
        raise
    return instance


@contextmanager
def open_instance(settings: Settings | None = None) -> Iterator[dg.DagsterInstance]:
    """The project's Dagster instance at DAGSTER_HOME, created once even when many
    processes start together on a fresh data root."""
    home = ensure_dagster_home(settings)
    with _init_lock(home):
        instance = _create(home)
    with instance:
        for run_id in fail_dead_runs(instance):
            print(f"assets-pkg: run {run_id} was left STARTED by a process that is gone; marked it failed",
                  file=sys.stderr)
        yield instance


def run_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid of the process that executes run ``run_id``: the one that recorded its
    RUN_START event (the run worker, or the CLI process for an in-process run)."""
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_START):
        if entry.dagster_event is not None and entry.dagster_event.pid is not None:
            return entry.dagster_event.pid
    return None


def fail_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Report failed every run left STARTED by a process that no longer runs; returns their
    run ids. Only on the embedded profile's SQLite instance, where every run ran on this host
    and its pid can be checked here. A shared instance (Postgres, deploy/dagster.yaml) holds
    runs of other machines, whose pids mean nothing here: the daemon's run monitoring fails
    those."""
    from dagster._core.storage.runs import SqliteRunStorage

    if not isinstance(instance.run_storage, SqliteRunStorage):
        return []
    failed = []
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        run = record.dagster_run
        pid = run_pid(instance, run.run_id)
        if pid is None or pid == os.getpid() or pid_alive(pid):
            continue
        instance.report_run_failed(run, (
            f"Run left STARTED by process {pid}, which no longer runs on {socket.gethostname()} (killed or "
            f"crashed mid-run): marked failed by assets-pkg before it opened the instance. Its partial outputs "
            f"were never published; re-run it."))
        failed.append(run.run_id)
    return failed


def init_instance(settings: Settings | None = None) -> Path:
    """Create the instance's storage now (``assets-pkg init``, before ``dagster dev``)."""
    with open_instance(settings):
        pass
    return Path(os.environ["DAGSTER_HOME"])
