"""The cluster profile on 127.0.0.1: Postgres instance (deploy/dagster.yaml), Redis broker,
two Celery workers (each its own empty working directory and HOME) on a shared local data
root: a SIGKILLed step fails its run without visible partial output and a re-run recovers,
the queued coordinator's limits hold. The whole demo through the workers equals the embedded
run in test_cluster_faults.py (with the S3 root and the logs too; its assertions, from
:func:`assert_every_run_succeeded_on_both_workers`, are defined here).
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from assets_pkg_tests.services.cluster import DEPLOY_INSTANCE_YAML, REPO, start_cluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

# files that name a run, a time or a process, not data (_staging: a fan-out run's step
# messages, left by a run that ended before its finish step until the next run's plan)
VOLATILE = ("_state", ".lock", "_failed", "/_staging/")


# the timeseries demo at demo scale: days fanned out to steps long enough to kill mid-way
TIMESERIES_DEMO = [sys.executable, "-m", "assets_pkg.cli", "demo", "--scale", "demo", "--only", "timeseries"]


def _env_with_demo_settings() -> dict:
    from assets_pkg.demo.splits import demo_env

    return demo_env()


@pytest.fixture
def cluster(tmp_path, postgres_service, redis_service):
    """Its own database, data root and two fresh workers per test (the servers are shared)."""
    with start_cluster(tmp_path / "cluster", postgres_service, redis_service,
                       extra_env=_env_with_demo_settings()) as running:
        yield running


def _data_files(root: Path) -> dict[str, Path]:
    files = {}
    for sub in ("warehouse", "exports"):
        for path in sorted((root / sub).rglob("*")):
            rel = path.relative_to(root).as_posix()
            if path.is_file() and not any(v in rel for v in VOLATILE):
                files[rel] = path
    return files


def _rows(path: Path) -> list:
    name = path.name
    con = duckdb.connect()
    try:
        if name.endswith(".parquet"):
            rel = con.sql(f"SELECT * FROM read_parquet('{path}')")
        elif any(name.endswith(ext) for ext in (".csv", ".csv.gz", ".tsv", ".tsv.gz")):
            rel = con.sql(f"SELECT * FROM read_csv('{path}', all_varchar=true)")
        else:
            return [path.read_bytes()]
        return sorted(rel.fetchall(), key=repr)
    finally:
        con.close()


def assert_same_outputs(got_root: Path, want_root: Path, only: str = "") -> None:
    got = {k: v for k, v in _data_files(got_root).items() if only in k}
    want = {k: v for k, v in _data_files(want_root).items() if only in k}
    assert sorted(got) == sorted(want)
    assert want, f"no outputs under {want_root} matching {only!r}"
    for rel in want:
        if rel.endswith(".json"):
            continue  # manifests and analysis summaries carry timings; their rows are in the data files
        assert _rows(got[rel]) == _rows(want[rel]), rel


def _embedded_demo(root: Path, domains, scale: str = "test") -> subprocess.Popen:
    """The same demo in the embedded profile (SQLite, in process), started in the background."""
    (root / ".dagster").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **_env_with_demo_settings(), "ASSETS_PKG_DATA_DIR": str(root),
           "DAGSTER_HOME": str(root / ".dagster"), "ASSETS_PKG_EXECUTOR": "in_process",
           "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "assets_pkg.cli", "demo", "--scale", scale, "--only", *domains],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finished(process: subprocess.Popen, timeout: float = 300) -> str:
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, out[-4000:]
    return out


def _events(instance, run_id, event_type):
    return [e.dagster_event for e in instance.all_logs(run_id, of_type=event_type) if e.dagster_event]


def assert_every_run_succeeded_on_both_workers(cluster, min_runs: int) -> None:
    """Every run of the cluster's instance succeeded, the step events name both Celery
    workers, and every step ran in a fresh worker pool process of its own (`assets-pkg worker
    --steps-per-process 1`, the default), none in the orchestrating one."""
    with cluster.instance() as instance:
        runs = instance.get_runs()
        assert len(runs) >= min_runs
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        workers, step_pids, run_pids = set(), [], set()
        for run in runs:
            for event in _events(instance, run.run_id, dg.DagsterEventType.ENGINE_EVENT):
                worker = (event.engine_event_data.metadata or {}).get("Celery worker")
                if worker is not None:
                    workers.add(worker.value.split("@")[0])
            step_pids += [e.pid for e in _events(instance, run.run_id, dg.DagsterEventType.STEP_START)]
            run_pids |= {e.pid for e in _events(instance, run.run_id, dg.DagsterEventType.RUN_START)}
        assert_one_step_at_a_time_per_worker(instance, [run.run_id for run in runs])
    assert workers == {w.name for w in cluster.workers}
    assert len(step_pids) >= 2 and len(set(step_pids)) == len(step_pids), "one fresh process per step"
    assert not set(step_pids) & (run_pids | {os.getpid()}), "steps run in worker processes"


def assert_one_step_at_a_time_per_worker(instance, run_ids) -> None:
    """A worker started with ``--concurrency 1`` never ran two steps at once, although its pool
    holds a spare process (celery_exec.StepsAtOnce): each step's span, from the task's
    "Executing steps" event to the step's end, is disjoint from the others' on its worker."""
    spans: dict[str, list] = {}
    for run_id in run_ids:
        began, ended, worker_of = {}, {}, {}
        for entry in instance.all_logs(run_id):
            event, key = entry.dagster_event, entry.step_key
            if event is None or key is None:
                continue
            if event.event_type == dg.DagsterEventType.ENGINE_EVENT:
                worker = (event.engine_event_data.metadata or {}).get("Celery worker")
                if worker is not None:
                    worker_of[key] = worker.value
                    began.setdefault(key, entry.timestamp)
            elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
                ended[key] = entry.timestamp
        for key, worker in worker_of.items():
            spans.setdefault(worker, []).append((began[key], ended[key], f"{run_id[:8]}:{key}"))
    assert spans, "no step events name a Celery worker"
    for worker, steps in spans.items():
        steps.sort()
        overlapping = [(a[2], b[2]) for a, b in zip(steps, steps[1:]) if b[0] < a[1]]
        assert not overlapping, f"{worker} ran steps at once: {overlapping[:3]}"


def _wait_for_step_start(instance, step_key_prefix: str, timeout: float = 120):
    """The first STEP_START event of a step whose key starts with ``step_key_prefix`` in the
    newest run, once it is written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = instance.get_runs(limit=1)
        if runs:
            for event in _events(instance, runs[0].run_id, dg.DagsterEventType.STEP_START):
                if event.step_key.startswith(step_key_prefix):
                    return runs[0], event
        time.sleep(0.05)
    raise TimeoutError(f"no step {step_key_prefix}* started within {timeout:.0f} s")


def _fanout_step_day(step_key: str) -> str:
    """The day a one-day fan-out step computes: ``...[<index>_YYYY_MM_DD]`` (fanout.mapping_key)."""
    return step_key.rsplit("[", 1)[1].rstrip("]").split("_", 1)[1].replace("_", "-")


def assert_each_worker_keeps_a_spare_process(cluster, timeout_s: float = 30) -> None:
    """A worker running one step at a time (a fresh process each) holds two pool processes:
    its next step starts in one forked ahead of need, not after the last one has exited."""
    import psutil

    for worker in cluster.workers:
        deadline = time.monotonic() + timeout_s
        while (pool := psutil.Process(worker.process.pid).children()) and len(pool) != 2:
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert len(pool) == 2, f"{worker.name}'s pool: {[p.pid for p in pool]}"


def test_a_worker_killed_mid_step_fails_the_run_shows_no_partial_output_and_a_rerun_recovers(
        cluster, clean_timeseries_demo, tmp_path):
    clean_timeseries_demo.copy_inbox(cluster.data_root)
    assert_each_worker_keeps_a_spare_process(cluster)

    killed = cluster.popen(TIMESERIES_DEMO, tmp_path / "killed.log")
    with cluster.instance() as instance:
        # on Celery the days fan out (assets_pkg.fanout): kill the first day step of resampled
        run, start = _wait_for_step_start(instance, "timeseries__resampled.timeseries__resampled_fanout_step[")
        os.kill(start.pid, signal.SIGKILL)  # the worker's pool process executing the step
        killed_day = _fanout_step_day(start.step_key)
        killed.wait(timeout=120)
        run = instance.get_run_by_id(run.run_id)
        assert run.status == dg.DagsterRunStatus.FAILURE
        failure = _events(instance, run.run_id, dg.DagsterEventType.RUN_FAILURE)[0]
        assert "WorkerLostError" in str(failure.event_specific_data) or "SIGKILL" in str(failure.event_specific_data)
        assert not _events(instance, run.run_id, dg.DagsterEventType.ASSET_MATERIALIZATION)
    assert killed.returncode != 0
    clean = clean_timeseries_demo.outputs()
    # nothing visible that is not a complete output of the clean run: no file of the day the
    # killed step was writing, nothing merged or exported (those steps wait for every day);
    # a day step on the other worker may have published its own day, whole
    after_kill = _data_files(cluster.data_root)
    clean_files = _data_files(clean)
    assert set(after_kill) <= set(clean_files), sorted(set(after_kill) - set(clean_files))
    for rel, path in after_kill.items():
        assert "/resampled/" in rel, rel
        assert _rows(path) == _rows(clean_files[rel]), rel
    assert not [p for p in (cluster.data_root / "warehouse").rglob("*")
                if p.is_file() and "resampled" in str(p) and killed_day in p.name]

    left_messages = [p for p in (cluster.data_root / "warehouse").rglob("_staging/*/_steps/*") if p.is_file()]
    assert left_messages  # the killed run's step messages, until ...

    rerun = cluster.run(TIMESERIES_DEMO)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert_same_outputs(cluster.data_root, clean, only="timeseries")
    # ... the re-run's plan removed them (its own went with its finish steps)
    assert not [p for p in (cluster.data_root / "warehouse").rglob("_staging/*/_steps/*") if p.is_file()]
    # the worker that lost its pool process is still serving (Celery forks a new one)
    assert all(w.process.poll() is None for w in cluster.workers)


def test_a_worker_killed_whole_mid_step_fails_the_run_instead_of_leaving_it_waiting(
        cluster, clean_timeseries_demo, tmp_path):
    """A worker killed with its pool (its machine lost) reports nothing: the run's lost-worker
    watch (celery_exec.LostWorkerWatch) finds the step's worker silent and fails the step, so
    the run ends within a bound instead of waiting for run monitoring's 12 hours."""
    import psutil

    clean_timeseries_demo.copy_inbox(cluster.data_root)
    interrupted = cluster.popen(TIMESERIES_DEMO, tmp_path / "interrupted.log")
    with cluster.instance() as instance:
        run, start = _wait_for_step_start(instance, "timeseries__resampled.timeseries__resampled_fanout_step[")
        worker = next(w for w in cluster.workers if w.process.pid == psutil.Process(start.pid).ppid())
        os.killpg(worker.process.pid, signal.SIGKILL)  # the worker and its pool processes at once
        killed_at = time.monotonic()
        interrupted.wait(timeout=180)
        ended_after = time.monotonic() - killed_at
        run = instance.get_run_by_id(run.run_id)
        assert run.status == dg.DagsterRunStatus.FAILURE, (tmp_path / "interrupted.log").read_text()[-3000:]
        failure = str(_events(instance, run.run_id, dg.DagsterEventType.RUN_FAILURE)[0].event_specific_data)
        assert f"Celery worker {worker.name}@" in failure and "stopped answering while it ran step" in failure
        assert ended_after < 120, f"the run ended {ended_after:.0f} s after its worker was killed"


def test_the_queued_coordinator_never_overlaps_two_summary_runs_nor_two_runs_of_one_log_id(
        tmp_path, postgres_service, monkeypatch):
    """deploy/dagster.yaml's coordinator tags runs by domain and log id when they are
    submitted; the daemon's dequeue pass (Dagster's own code) then holds back what the
    limits forbid."""
    from dagster._core.remote_origin import GrpcServerCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
    from dagster._core.run_coordinator import SubmitRunContext
    from dagster._core.test_utils import create_run_for_test
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

    from assets_pkg.cluster import DomainRunCoordinator

    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(DEPLOY_INSTANCE_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", postgres_service.create_database(f"coordinator_{os.getpid()}"))
    summary = [dg.AssetKey(["summary", "account_summary"]), dg.AssetKey(["summary", "latest_summary"])]
    logs = [dg.AssetKey(["logs", "log_events"])]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_coordinator, DomainRunCoordinator)

        # as the workspace.yaml of deploy/ names the code location: a gRPC server
        origin = RemoteJobOrigin(repository_origin=RemoteRepositoryOrigin(
            code_location_origin=GrpcServerCodeLocationOrigin(host="127.0.0.1", port=4000, location_name="assets_pkg"),
            repository_name="__repository__"), job_name="__ASSET_JOB")

        def submit(name, keys, tags=None):
            run = create_run_for_test(instance, job_name="__ASSET_JOB", asset_selection=set(keys), tags=tags or {},
                                      remote_job_origin=origin)
            instance.run_coordinator.submit_run(SubmitRunContext(run, workspace=None))
            return name, run.run_id

        names = dict([
            submit("summary-1", summary), submit("summary-2", summary),
            submit("ts", [dg.AssetKey(["timeseries", "resampled"])]),
            submit("web-1", logs, {"dagster/partition/log_id": "web"}),
            submit("web-2", logs, {"dagster/partition/log_id": "web"}),
            submit("app-1", logs, {"dagster/partition/log_id": "app"}),
        ])
        by_id = {v: k for k, v in names.items()}
        assert instance.get_run_by_id(names["summary-2"]).tags["assets_pkg/domain.summary"] == "true"
        assert instance.get_run_by_id(names["web-2"]).tags["assets_pkg/log_id"] == "web"
        daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)

        def dequeue() -> set[str]:
            picked = daemon._get_runs_to_dequeue(instance, instance.get_concurrency_config(), None)
            return {by_id[run.run_id] for run in picked}

        assert dequeue() == {"summary-1", "ts", "web-1", "app-1"}
        for name in ("summary-1", "web-1"):  # launched: now in progress
            instance.handle_run_event(names[name], dg.DagsterEvent(
                event_type_value="PIPELINE_STARTING", job_name="__ASSET_JOB"))
        for name in ("ts", "app-1"):
            instance.report_run_canceled(instance.get_run_by_id(names[name]))
        # while the first summary run is in progress the second stays queued, and so on per log id
        assert dequeue() == set()
        instance.report_run_failed(instance.get_run_by_id(names["summary-1"]))
        assert dequeue() == {"summary-2"}
        instance.report_run_failed(instance.get_run_by_id(names["web-1"]))
        assert dequeue() == {"summary-2", "web-2"}


def test_opening_a_shared_instance_leaves_runs_of_other_machines_running(tmp_path, postgres_service, monkeypatch):
    """A STARTED run whose pid is not alive here may be alive on another machine: on the
    Postgres instance the project never fails it on open (the daemon's run monitoring does)."""
    from dagster._core.test_utils import create_run_for_test

    from assets_pkg.instance import open_instance

    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(DEPLOY_INSTANCE_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", postgres_service.create_database(f"shared_{os.getpid()}"))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = create_run_for_test(instance, job_name="__ASSET_JOB", status=dg.DagsterRunStatus.STARTED)
        instance.report_dagster_event(
            dg.DagsterEvent(event_type_value="PIPELINE_START", job_name="__ASSET_JOB", pid=int(gone.stdout)),
            run_id=run.run_id)
    with open_instance() as instance:
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED


def test_the_deploy_instance_keeps_its_postgres_connections_and_rides_out_a_restart(
        tmp_path, postgres_service, monkeypatch):
    """deploy/dagster.yaml's instance (``PooledPostgresInstance``) serves its storage calls from
    connections it keeps, instead of dagster-postgres's new connection per call; a connection
    that a Postgres restart cut is replaced on its next use, so the call succeeds."""
    import psycopg2
    from dagster._core.test_utils import create_run_for_test

    from assets_pkg.cluster import PooledPostgresInstance

    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(DEPLOY_INSTANCE_YAML, home / "dagster.yaml")
    database = f"pooled_{os.getpid()}"
    url = postgres_service.create_database(database)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", url)

    def backends() -> set[int]:
        """The server processes of the connections open on the instance's database now."""
        with psycopg2.connect(url.replace("+psycopg2", "")) as watcher, watcher.cursor() as cursor:
            cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                           (database,))
            return {row[0] for row in cursor.fetchall()}

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance, PooledPostgresInstance)
        run = create_run_for_test(instance, job_name="__ASSET_JOB")
        instance.get_run_by_id(run.run_id)  # the run storage's connection
        instance.all_logs(run.run_id)  # the event log's
        kept = backends()
        assert kept, "no connection kept between storage calls"
        for _ in range(20):
            instance.get_run_by_id(run.run_id)
            instance.all_logs(run.run_id)
        assert backends() == kept, "storage calls opened connections of their own"

        postgres_service.restart(down_s=1.0)
        # the calls succeed on new connections (what they return is not the point: the test
        # server runs with synchronous_commit off, so a crash may lose the last commits)
        assert isinstance(instance.get_runs(), list)
        assert isinstance(instance.all_logs(run.run_id), list)
        assert backends().isdisjoint(kept)
