"""Inbox sensors never lose work: a run that fails or is canceled is requested again under a
new run key; a successful one is not requested again (summary, splits, ingest sensors,
evaluated against a real instance, runs created in it and executed for real)."""

import json

import dagster as dg
import pytest

from assets_pkg.demo.splits import make_rows, write_shard
from assets_pkg.ingest.assets import ingest_files
from assets_pkg.io.parquet_io_manager import ShardedParquetIOManager
from assets_pkg.sensor_runs import RUN_KEY_TAG, SENSOR_NAME_TAG
from assets_pkg.summary import state as summary_state
from assets_pkg_tests import test_splits_assets as splits_t
from assets_pkg_tests import test_summary_assets as summary_t
from assets_pkg_tests.test_ingest import _csv
from assets_pkg_tests.test_summary_helpers import write_batch


def daemon_tags(request: dg.RunRequest, sensor_name: str) -> dict:
    """The tags the daemon puts on a sensor's run."""
    return {**request.tags, RUN_KEY_TAG: request.run_key, SENSOR_NAME_TAG: sensor_name}


def end_run(instance, job, request, sensor_name, how: str) -> None:
    """A run of ``request`` created in the instance and reported failed or canceled (what
    a killed run or a cancel in the UI leaves)."""
    tags = {RUN_KEY_TAG: request.run_key, SENSOR_NAME_TAG: sensor_name}
    run = instance.create_run_for_job(job_def=job, tags=tags, status=dg.DagsterRunStatus.STARTED)
    if how == "failed":
        instance.report_run_failed(run)
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    else:
        instance.report_run_canceled(run)
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.CANCELED


@pytest.mark.parametrize("how", ["failed", "canceled"])
def test_summary_batch_of_a_failed_run_is_requested_again(data_root, instance, how):
    defs = summary_t.make_defs()
    inbox = data_root / "inbox" / "accounts"
    write_batch(inbox, "0001.parquet", summary_t.BASE)
    first = summary_t.tick(defs, instance)
    [request] = first.run_requests
    # in flight (no run yet, or still running): nothing more is requested
    assert not summary_t.tick(defs, instance, first.cursor).run_requests
    job = defs.resolve_implicit_global_asset_job_def()
    end_run(instance, job, request, "summary_batch_sensor", how)

    second = summary_t.tick(defs, instance, first.cursor)
    [retry] = second.run_requests
    assert retry.run_key != request.run_key and retry.run_key.startswith(request.run_key)
    assert (retry.tags[summary_t.RANGE_START], retry.tags[summary_t.RANGE_END]) == ("2024-01", "2024-04")
    result = job.execute_in_process(instance=instance, tags=daemon_tags(retry, "summary_batch_sensor"),
                                    asset_selection=list(retry.asset_selection))
    assert result.success
    assert set(summary_state.load_processed()) == {"0001.parquet"}

    third = summary_t.tick(defs, instance, second.cursor)
    assert not third.run_requests and "no new" in third.skip_message
    assert json.loads(third.cursor)["runs"] == {}  # the successful run is no longer tracked


@pytest.mark.slow
def test_splits_shards_of_a_failed_run_are_requested_again(data_root, instance):
    defs = splits_t.make_defs()
    inbox = data_root / "inbox" / "transactions"
    for n in (1, 2):
        write_shard(make_rows(200, seed=n, n_customers=30), inbox / f"part-{n:05d}.parquet")
    first = splits_t.tick(defs, instance)
    [request] = first.run_requests
    for add in first.dynamic_partitions_requests:  # the daemon's part
        instance.add_dynamic_partitions(add.partitions_def_name, list(add.partition_keys))
    job = defs.resolve_job_def("splits_job")
    end_run(instance, job, request, "splits_shard_sensor", "failed")

    second = splits_t.tick(defs, instance, first.cursor)
    [retry] = second.run_requests
    assert retry.run_key != request.run_key
    assert (retry.tags[summary_t.RANGE_START], retry.tags[summary_t.RANGE_END]) == ("00001", "00002")
    result = job.execute_in_process(instance=instance, tags=daemon_tags(retry, "splits_shard_sensor"))
    assert result.success

    third = splits_t.tick(defs, instance, second.cursor)
    assert not third.run_requests and "no new shards" in third.skip_message
    assert json.loads(third.cursor)["runs"] == {}


def test_ingest_files_of_a_failed_run_are_requested_again(data_root, instance):
    from assets_pkg.definitions import defs

    inbox = data_root / "inbox" / "files"
    inbox.mkdir(parents=True)
    _csv(inbox / "a.csv", 10)
    _csv(inbox / "b.csv", 10)

    def tick(cursor=None):
        with dg.build_sensor_context(instance_ref=instance.get_ref(), cursor=cursor, definitions=defs,
                                     sensor_name="ingest_file_sensor") as context:
            return defs.resolve_sensor_def("ingest_file_sensor").evaluate_tick(context)

    first = tick()
    [request] = first.run_requests
    for add in first.dynamic_partitions_requests:
        instance.add_dynamic_partitions(add.partitions_def_name, list(add.partition_keys))
    job = defs.resolve_implicit_global_asset_job_def()
    end_run(instance, job, request, "ingest_file_sensor", "failed")

    second = tick(first.cursor)  # registered now: each file comes back as a changed one
    assert sorted(r.partition_key for r in second.run_requests) == ["a.csv", "b.csv"]
    assert request.run_key not in {r.run_key for r in second.run_requests}
    for retry in second.run_requests:
        result = dg.materialize([ingest_files], instance=instance, partition_key=retry.partition_key,
                                tags=daemon_tags(retry, "ingest_file_sensor"),
                                resources={"io_manager": ShardedParquetIOManager()})
        assert result.success
    third = tick(second.cursor)
    assert not third.run_requests and json.loads(third.cursor)["runs"] == {}
    assert sorted(p.name for p in (data_root / "warehouse" / "ingest" / "files").iterdir()) == ["a", "b"]
