"""The cluster profile on 127.0.0.1: Postgres instance (deploy/dagster.yaml), Redis broker,
two Celery workers (each its own empty working directory and HOME) on a shared local data
root. Same outputs as the embedded run, both workers used, a SIGKILLed step fails its run
without visible partial output and a re-run recovers, the queued coordinator's limits hold.
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
import psutil
import pytest

from assets_pkg_tests.services.cluster import DEPLOY_INSTANCE_YAML, REPO, start_cluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

# the domains materialized through Celery: everything the demo builds from its inboxes
DEMO_DOMAINS = ("ingest", "splits", "summary", "timeseries")
# files that name a run, a time or a process, not data
VOLATILE = ("_state", ".lock", "_failed")


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


def test_demo_graph_through_celery_equals_the_embedded_run_and_uses_both_workers(cluster, tmp_path):
    made = cluster.run([sys.executable, "-m", "assets_pkg.cli", "generate", "--scale", "test", *DEMO_DOMAINS])
    assert made.returncode == 0, made.stderr
    # the same input files (mtimes too: a shard's profile records its input's size and mtime)
    shutil.copytree(cluster.data_root / "inbox", tmp_path / "embedded" / "inbox", copy_function=shutil.copy2)
    embedded = _embedded_demo(tmp_path / "embedded", DEMO_DOMAINS)  # alongside, to save wall time
    done = cluster.run([sys.executable, "-m", "assets_pkg.cli", "demo", "--scale", "test", "--only", *DEMO_DOMAINS])
    _finished(embedded)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "demo OK: every ERROR check passed" in done.stdout
    assert_same_outputs(cluster.data_root, tmp_path / "embedded")

    worker_pids = {p.pid for w in cluster.workers for p in psutil.Process(w.process.pid).children(recursive=True)}
    with cluster.instance() as instance:
        runs = instance.get_runs()
        assert len(runs) >= len(DEMO_DOMAINS)
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        workers, step_pids = set(), set()
        for run in runs:
            for event in _events(instance, run.run_id, dg.DagsterEventType.ENGINE_EVENT):
                worker = (event.engine_event_data.metadata or {}).get("Celery worker")
                if worker is not None:
                    workers.add(worker.value.split("@")[0])
            step_pids |= {e.pid for e in _events(instance, run.run_id, dg.DagsterEventType.STEP_START)}
    assert workers == {"w1", "w2"}
    # every step ran in a worker's pool process, none in the process that orchestrated the run
    assert step_pids <= worker_pids and len(step_pids) >= 2
