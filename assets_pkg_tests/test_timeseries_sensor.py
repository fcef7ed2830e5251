"""`timeseries_file_sensor` on a real instance: a new dataset file -> one run over its days;
no change -> skip; a changed or removed file -> its days again; a failed run -> requested again."""

import datetime as dt
import json
import os

import dagster as dg
import pytest

from assets_pkg.demo import timeseries as demo
from assets_pkg.run_tags import RANGE_END_TAG, RANGE_START_TAG
from assets_pkg.timeseries.sensors import ASSET_KEYS, SENSOR_NAME
from assets_pkg_tests.test_sensor_runs import end_run

DAY1, DAY2 = demo.day_keys("test")
# the weather feed (15 min) is up-sampled to 1 min: its values carry into the next day
DAY3 = (dt.date.fromisoformat(DAY2) + dt.timedelta(days=1)).isoformat()


@pytest.fixture
def inbox(data_root):
    folder = data_root / "inbox" / demo.INBOX
    demo.generate(folder, scale="test")
    return folder


def tick(instance, cursor=None):
    from assets_pkg.definitions import defs

    with dg.build_sensor_context(instance_ref=instance.get_ref(), cursor=cursor, definitions=defs,
                                 sensor_name=SENSOR_NAME) as context:
        return defs.resolve_sensor_def(SENSOR_NAME).evaluate_tick(context)


def day_range(request):
    return request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]


def touch(path, seconds=10):
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 10**9))


def test_sensor_is_registered_stopped_like_the_other_inbox_sensors():
    from assets_pkg.definitions import defs

    sensor = defs.resolve_sensor_def(SENSOR_NAME)
    assert sensor.default_status == defs.resolve_sensor_def("summary_batch_sensor").default_status
    assert sensor.job_name == "timeseries_daily"  # the named job: its Runs tab lists the sensor's runs
    assert set(defs.resolve_job_def(sensor.job_name).asset_layer.selected_asset_keys) == set(ASSET_KEYS)


def test_new_files_one_run_no_change_skip_changed_file_again(data_root, instance, inbox):
    first = tick(instance)
    [request] = first.run_requests
    assert day_range(request) == (DAY1, DAY3)
    assert set(request.asset_selection) == set(ASSET_KEYS)

    second = tick(instance, first.cursor)
    assert not second.run_requests and "no new, changed or removed" in second.skip_message

    # the meters file rewritten: only its days (it does not up-sample)
    meters = next(inbox.glob("meters*"))
    touch(meters)
    third = tick(instance, second.cursor)
    [again] = third.run_requests
    assert day_range(again) == (DAY1, DAY2) and again.run_key != request.run_key
    assert not tick(instance, third.cursor).run_requests

    # removed: the days it covered are computed again (without it)
    meters.unlink()
    fourth = tick(instance, third.cursor)
    [gone] = fourth.run_requests
    assert day_range(gone) == (DAY1, DAY2)


def test_a_failed_run_is_requested_again(data_root, instance, inbox):
    from assets_pkg.definitions import defs

    first = tick(instance)
    [request] = first.run_requests
    job = defs.resolve_implicit_global_asset_job_def()
    end_run(instance, job, request, SENSOR_NAME, "failed")
    second = tick(instance, first.cursor)
    [retry] = second.run_requests
    assert day_range(retry) == day_range(request) and retry.run_key == f"{request.run_key}~retry1"
    assert set(json.loads(second.cursor)["runs"]) == {retry.run_key}


def test_no_catalog_skips(data_root, instance):
    result = tick(instance)
    assert not result.run_requests and "no time-series catalog" in result.skip_message
