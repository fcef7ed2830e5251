"""The fan-out summary graph under the multiprocess executor equals the in-process asset."""

import importlib
import json

import dagster as dg
import pytest

from assets_pkg import layout
from assets_pkg.io.parquet_io_manager import ShardedParquetIOManager
from assets_pkg.resources.duckdb import DuckDBResource
from assets_pkg.run_tags import RANGE_END_TAG, RANGE_START_TAG
from assets_pkg.summary.months import MONTHS_ASSET_PATH, month_range
from assets_pkg.summary.validate import CHECK_NAMES
from assets_pkg_tests.test_summary_helpers import read_months, write_batch

MONTHS = month_range("2024-01", "2024-12")
RESOURCES = {"io_manager": ShardedParquetIOManager(), "duckdb": DuckDBResource()}


def fanout_job():
    """The summary's fan-out graph on the multiprocess executor (each step a fresh process)."""
    from assets_pkg.summary.fanout_assets import account_summary_fanout

    job = dg.define_asset_job("summary_fanout", selection=[account_summary_fanout.key],
                              executor_def=dg.multiprocess_executor)
    defs = dg.Definitions(assets=[account_summary_fanout], resources=RESOURCES, jobs=[job])
    return defs.resolve_job_def("summary_fanout")


@pytest.fixture
def summary_env(data_root, monkeypatch, tmp_path):
    config = tmp_path / "summary.json"
    config.write_text(json.dumps({"history_length": 5, "first_month": "2024-01"}))
    monkeypatch.setenv("SUMMARY_CONFIG", str(config))
    monkeypatch.setenv("SUMMARY_BUCKETS", "2")
    monkeypatch.setenv("SUMMARY_CHUNK_MONTHS", "8")
    monkeypatch.setenv("SUMMARY_COMBINE_MONTHS", "5")
    inbox = layout.inbox_dir("accounts")
    records = [(k, m, float(k * 10 + i), i % 4, i) for k in range(1, 30) for i, m in enumerate(MONTHS) if (k * i) % 7]
    write_batch(inbox, "b000.parquet", records)
    write_batch(inbox, "b001.parquet", [(k, MONTHS[k % 12], -1.0, 9, 50) for k in range(5, 40, 3)])  # corrections
    return data_root


@pytest.mark.slow
def test_fanout_run_on_the_multiprocess_executor_equals_the_in_process_run(summary_env, instance, monkeypatch, tmp_path):
    tags = {RANGE_START_TAG: MONTHS[0], RANGE_END_TAG: MONTHS[-1]}
    folder = layout.asset_dir(MONTHS_ASSET_PATH)
    with dg.execute_job(dg.reconstructable(fanout_job), instance=instance, tags=tags) as result:
        assert result.success
        steps = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
        checks = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert sum("summary_bucket_step[" in s for s in steps) == 2 * 2  # 2 buckets x 2 chunks
    assert sum("summary_combine_months[" in s for s in steps) == 3  # 2024-01..05, 06..10, 11..12
    assert all(c.passed for c in checks), checks
    fanned = read_months(folder)
    assert len(fanned) == 10  # 2024-01 and 2024-08 have no records
    # each check: one result per month file and the run's aggregate, as the one-step asset
    written = sorted(p.stem for p in folder.glob("*.parquet"))
    fanned_checks = sorted((c.check_name, c.partition or "") for c in checks)
    assert fanned_checks == sorted((name, month) for name in CHECK_NAMES for month in ["", *written])
    assert not layout.staging_dir("summary", None).exists() or not any(layout.staging_dir("summary", None).iterdir())

    # the embedded default: the one-step asset, in process, over the same months
    import assets_pkg.summary.definitions as summary_definitions

    monkeypatch.setenv("ASSETS_PKG_EXECUTOR", "in_process")
    assert isinstance(importlib.reload(summary_definitions).summary_asset.node_def, dg.OpDefinition)
    for p in folder.glob("*.parquet"):
        p.unlink()
    from assets_pkg.summary.assets import account_summary

    res = dg.materialize([account_summary], instance=instance, tags=tags, resources=RESOURCES)
    assert res.success
    assert read_months(folder) == fanned
    assert sorted((c.check_name, c.partition or "") for c in res.get_asset_check_evaluations()) == fanned_checks


def test_the_executor_setting_chooses_the_summary_graph(monkeypatch):
    import assets_pkg.summary.definitions as summary_definitions

    try:
        monkeypatch.setenv("ASSETS_PKG_EXECUTOR", "celery")
        fanned = importlib.reload(summary_definitions).summary_asset
        assert isinstance(fanned.node_def, dg.GraphDefinition) and len(fanned.node_def.node_defs) == 5
        assert fanned.check_keys == importlib.import_module("assets_pkg.summary.assets").account_summary.check_keys
        monkeypatch.delenv("ASSETS_PKG_EXECUTOR")
        assert isinstance(importlib.reload(summary_definitions).summary_asset.node_def, dg.OpDefinition)
    finally:
        monkeypatch.delenv("ASSETS_PKG_EXECUTOR", raising=False)
        importlib.reload(summary_definitions)
