"""Runs and sensor ticks launched from our process as runs and ticks of the code location."""

import dagster as dg
import pytest
from dagster._core.storage.tags import REPOSITORY_LABEL_TAG, RUN_KEY_TAG, SENSOR_NAME_TAG

from assets_pkg.location import evaluate_sensor_tick, sensor_origin, stored_cursor, stored_sensor_state

FAIL = {"on": True}


@dg.asset
def flaky():
    """Fails while FAIL["on"]."""
    if FAIL["on"]:
        raise ValueError("flaky failed")
    return 1


flaky_job = dg.define_asset_job("flaky_job", selection=[flaky])


@dg.sensor(job=flaky_job)
def flaky_sensor(context):
    n = int(context.cursor or 0) + 1
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=f"k{n}")], cursor=str(n))


DEFS = dg.Definitions(assets=[flaky], jobs=[flaky_job], sensors=[flaky_sensor])


def _ticks(instance):
    origin = sensor_origin("flaky_sensor")
    return instance.get_ticks(origin.get_id(), origin.get_selector().get_id())


def test_a_tick_keeps_its_cursor_in_the_instance_even_when_its_run_fails(instance):
    FAIL["on"] = True
    with pytest.raises(Exception, match="flaky"):
        evaluate_sensor_tick(DEFS, instance, "flaky_sensor")
    assert stored_cursor(instance, "flaky_sensor") == "1"  # stored although the run raised
    (run,) = instance.get_runs()
    assert run.job_name == "flaky_job" and run.status == dg.DagsterRunStatus.FAILURE
    assert (run.tags[RUN_KEY_TAG], run.tags[SENSOR_NAME_TAG]) == ("k1", "flaky_sensor")
    listed = instance.get_runs(filters=dg.RunsFilter(job_name="flaky_job",
                                                     tags={REPOSITORY_LABEL_TAG: "__repository__@assets_pkg"}))
    assert [r.run_id for r in listed] == [run.run_id]  # the job's Runs tab in the UI

    FAIL["on"] = False
    tick = evaluate_sensor_tick(DEFS, instance, "flaky_sensor")  # continues from the stored cursor
    assert [r.success for r in tick.results] == [True]
    assert stored_cursor(instance, "flaky_sensor") == "2"
    assert tick.results[0].dagster_run.tags[RUN_KEY_TAG] == "k2"
    state = stored_sensor_state(instance, "flaky_sensor")
    assert state.instigator_data.last_run_key == "k2"
    assert [t.status.value for t in _ticks(instance)] == ["SUCCESS", "SUCCESS"]
    assert _ticks(instance)[0].run_ids == [tick.results[0].run_id]
    assert _ticks(instance)[1].run_keys == ["k1"]
