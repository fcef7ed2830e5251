"""A cluster on one machine: a Dagster home whose ``dagster.yaml`` is ``deploy/dagster.yaml``
(Postgres), a shared local data root, and Celery worker processes started by
``assets-pkg worker``, each in its own empty working directory with its own HOME.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEPLOY_INSTANCE_YAML = REPO / "deploy" / "dagster.yaml"


@dataclass
class Worker:
    name: str
    process: subprocess.Popen
    log: Path

    def ready(self) -> bool:
        return self.log.exists() and " ready." in self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # the worker and its pool processes
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@dataclass
class Cluster:
    base: Path
    home: Path
    data_root: Path | str
    env: dict
    workers: list[Worker] = field(default_factory=list)

    def run(self, argv: list[str], timeout: float = 300, **extra_env) -> subprocess.CompletedProcess:
        """A command of the orchestrating side (the run's own process) on this cluster."""
        return subprocess.run(argv, env={**self.env, "DAGSTER_HOME": str(self.home), **extra_env}, cwd=self.base,
                              capture_output=True, text=True, timeout=timeout)

    def popen(self, argv: list[str], log: Path, **extra_env) -> subprocess.Popen:
        with open(log, "wb") as out:
            return subprocess.Popen(argv, env={**self.env, "DAGSTER_HOME": str(self.home), **extra_env},
                                    cwd=self.base, stdout=out, stderr=subprocess.STDOUT)

    @contextmanager
    def instance(self):
        """The cluster's instance, opened in this process (its Postgres URL set meanwhile)."""
        import dagster as dg

        saved = os.environ.get("DAGSTER_POSTGRES_URL")
        os.environ["DAGSTER_POSTGRES_URL"] = self.env["DAGSTER_POSTGRES_URL"]
        try:
            with dg.DagsterInstance.from_config(str(self.home)) as instance:
                yield instance
        finally:
            if saved is None:
                os.environ.pop("DAGSTER_POSTGRES_URL", None)
            else:
                os.environ["DAGSTER_POSTGRES_URL"] = saved


def worker_env(env: dict, home: Path) -> dict:
    worker = {**env, "HOME": str(home)}
    worker.pop("DAGSTER_HOME", None)  # a worker gets the instance from each task, not from a home
    return worker


@contextmanager
def start_cluster(base: Path, postgres, redis, workers: int = 2, extra_env: dict | None = None,
                  timeout_s: float = 90, data_root: str | None = None):
    """Yield a :class:`Cluster` whose workers are ready; stop them afterwards. The data root
    is a local folder under ``base`` unless ``data_root`` names one (``s3://bucket/prefix``)."""
    base.mkdir(parents=True, exist_ok=True)
    home = base / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY_INSTANCE_YAML, home / "dagster.yaml")
    if data_root is None:
        data_root = base / "data"
        data_root.mkdir()
    env = {
        **os.environ,
        **(extra_env or {}),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "DAGSTER_POSTGRES_URL": postgres.create_database(f"dagster_{uuid.uuid4().hex[:12]}"),
        "CELERY_BROKER_URL": redis.url,
        "ASSETS_PKG_EXECUTOR": "celery",
        "ASSETS_PKG_DATA_DIR": str(data_root),
    }
    cluster = Cluster(base=base, home=home, data_root=data_root, env=env)
    try:
        for i in range(1, workers + 1):
            name = f"w{i}"
            folder = base / f"worker-{name}"
            folder.mkdir()
            log = base / f"worker-{name}.log"
            with open(log, "wb") as out:
                process = subprocess.Popen(
                    [sys.executable, "-m", "assets_pkg.cli", "worker", "-n", f"{name}@%h", "--loglevel", "INFO"],
                    cwd=folder, env=worker_env(env, folder), stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True)
            cluster.workers.append(Worker(name=name, process=process, log=log))
        deadline = time.monotonic() + timeout_s
        while not all(w.ready() for w in cluster.workers):
            for w in cluster.workers:
                if w.process.poll() is not None:
                    raise RuntimeError(f"worker {w.name} exited:\n{w.log.read_text(errors='replace')[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"workers not ready after {timeout_s:.0f} s")
            time.sleep(0.2)
        yield cluster
    finally:
        for w in cluster.workers:
            w.stop()
