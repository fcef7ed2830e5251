"""The cluster profile on its full stack and under service faults: Postgres instance, Redis
broker, SeaweedFS (an ``s3://`` data root) and two Celery workers, each in its own empty
working directory and HOME. The whole demo graph, logs included, equals the embedded run
row for row; a broker or Postgres restart mid-run ends the run (success or a clear failure)
within a bound, publishes nothing partial, and a re-run equals a clean run.
"""

import os
import sys

import pytest

from assets_pkg.domains import DOMAINS
from assets_pkg_tests.services.cluster import start_cluster
from assets_pkg_tests.test_cluster import _embedded_demo, _env_with_demo_settings, _finished, \
    assert_every_run_succeeded_on_both_workers
from assets_pkg_tests.test_s3_demo import _local_files, _remote_files, _sorted_rows, _table

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

DEMO = [sys.executable, "-m", "assets_pkg.cli", "demo", "--scale", "test"]


def assert_same_rows(actual: dict[str, bytes], expected: dict[str, bytes]) -> None:
    assert sorted(actual) == sorted(expected), "the same files under the same names"
    different = [name for name in expected
                 if _sorted_rows(_table(expected[name], name)) != _sorted_rows(_table(actual[name], name))]
    assert different == [], f"files whose rows differ from the embedded run: {different[:10]}"


def test_whole_demo_on_postgres_redis_s3_and_two_workers_equals_the_embedded_run(
        tmp_path, postgres_service, redis_service, seaweed, s3_env):
    bucket = seaweed.make_bucket()
    embedded = _embedded_demo(tmp_path / "embedded", DOMAINS)  # alongside, to save wall time
    with start_cluster(tmp_path / "cluster", postgres_service, redis_service, data_root=f"s3://{bucket}/data",
                       extra_env={**_env_with_demo_settings(), **s3_env}) as cluster:
        done = cluster.run(DEMO)
        _finished(embedded)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "demo OK: every ERROR check passed" in done.stdout
        for domain in DOMAINS:
            assert f"== {domain}" in done.stdout
        expected = _local_files(tmp_path / "embedded")
        assert any(name.startswith("cache/logs/") for name in expected), "the logs domain wrote segments"
        assert_same_rows(_remote_files(seaweed.filesystem(), f"{bucket}/data"), expected)
        assert_every_run_succeeded_on_both_workers(cluster, len(DOMAINS))
