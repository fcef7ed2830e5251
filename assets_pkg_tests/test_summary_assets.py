"""The Dagster layer: a range run writes month files and checks; the sensor requests one
run over the affected range; the CLI plan writes nothing."""

import json

import dagster as dg
import pyarrow.parquet as pq
import pytest

from assets_pkg.io.parquet_io_manager import ShardedParquetIOManager
from assets_pkg.resources.duckdb import DuckDBResource
from assets_pkg.summary import state as summary_state
from assets_pkg.summary.assets import ACCOUNT_SUMMARY, LATEST_SUMMARY, account_summary, latest_summary
from assets_pkg.summary.months import month_range
from assets_pkg.summary.sensors import summary_batch_sensor
from assets_pkg_tests.test_summary_helpers import cfg_for, full_build, read_months, write_batch

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def make_defs():
    return dg.Definitions(
        assets=[account_summary, latest_summary],
        sensors=[summary_batch_sensor],
        resources={"io_manager": ShardedParquetIOManager(), "duckdb": DuckDBResource()},
    )


def run_range(defs, instance, start, end, tags=None):
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        instance=instance,
        tags={RANGE_START: start, RANGE_END: end, **(tags or {})},
        asset_selection=[ACCOUNT_SUMMARY, LATEST_SUMMARY],
    )


def tick(defs, instance, cursor=None):
    with dg.build_sensor_context(
        instance_ref=instance.get_ref(), cursor=cursor, definitions=defs, sensor_name="summary_batch_sensor"
    ) as ctx:
        return summary_batch_sensor.evaluate_tick(ctx)


@pytest.fixture
def inbox(data_root):
    return data_root / "inbox" / "accounts"


BASE = [(k, m, float(k + i), i, 0) for k in (1, 2, 3) for i, m in enumerate(month_range("2024-01", "2024-04"))]


def test_range_run_writes_month_files_checks_and_state(data_root, instance, inbox):
    write_batch(inbox, "0001.parquet", BASE)
    result = run_range(make_defs(), instance, "2024-01", "2024-04")
    assert result.success
    folder = data_root / "warehouse" / "summary" / "account_summary"
    assert sorted(p.name for p in folder.glob("*.parquet")) == [f"{m}.parquet" for m in month_range("2024-01", "2024-04")]
    latest = pq.read_table(data_root / "warehouse" / "summary" / "latest_summary.parquet").to_pylist()
    assert [(r["cons_acct_key"], r["rpt_as_of_mo"]) for r in latest] == [(1, "2024-04"), (2, "2024-04"), (3, "2024-04")]
    evals = result.get_asset_check_evaluations()
    assert {e.check_name for e in evals} == {
        "unique_account_month", "history_length", "history_matches_source", "history_consistency", "one_row_per_account"}
    assert all(e.passed for e in evals)
    mats = result.get_asset_materialization_events()
    months = sorted(e.partition for e in mats if e.asset_key == ACCOUNT_SUMMARY)
    assert months == month_range("2024-01", "2024-04")  # one run, four partitions
    # each month its own row count and bytes (from the instance); the run's figures labelled run/
    for month in month_range("2024-01", "2024-04"):
        record = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=ACCOUNT_SUMMARY, asset_partitions=[month]), limit=1).records[0]
        meta = record.asset_materialization.metadata
        path = folder / f"{month}.parquet"
        assert meta["dagster/row_count"].value == pq.read_metadata(path).num_rows == 3, month
        assert meta["bytes"].value == path.stat().st_size
        assert meta["run/rows"].value == 12 and "run/seconds" in meta and "seconds" not in meta
    assert summary_state.load_processed().keys() == {"0001.parquet"}


def test_sensor_requests_one_run_over_affected_range(data_root, instance, inbox, tmp_path):
    defs = make_defs()
    write_batch(inbox, "0001.parquet", BASE)
    assert run_range(defs, instance, "2024-01", "2024-04").success
    first = tick(defs, instance)
    assert not first.run_requests and "no new" in first.skip_message
    batch = [
        (2, "2024-02", -9.0, 1, 50),  # backfill
        (3, "2024-05", 5.0, 0, 50),  # forward
        (4, "2024-03", 4.0, 0, 50),  # new account
    ]
    write_batch(inbox, "0002.parquet", batch)
    data = tick(defs, instance)
    assert len(data.run_requests) == 1
    request = data.run_requests[0]
    tags = request.tags
    assert (tags[RANGE_START], tags[RANGE_END]) == ("2024-02", "2024-05")  # m..m+35 limited to existing months
    assert (tags["summary/case_i_new"], tags["summary/case_ii_forward"], tags["summary/case_iii_backfill"]) == ("1", "1", "1")
    assert set(request.asset_selection) == {ACCOUNT_SUMMARY, LATEST_SUMMARY}
    cursor = json.loads(data.cursor)
    assert set(cursor["seen"]) == {"0002.parquet"}
    # the same tick again (run still in flight): nothing new is requested
    again = tick(defs, instance, cursor=data.cursor)
    assert not again.run_requests
    result = run_range(defs, instance, tags[RANGE_START], tags[RANGE_END], tags)
    assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
    mats = [e for e in result.get_asset_materialization_events() if e.asset_key == ACCOUNT_SUMMARY]
    meta = mats[0].event_specific_data.materialization.metadata
    assert meta["case_iii_backfill"].value == 1
    # incremental == full rebuild
    full = tmp_path / "full"
    full_build(cfg_for(inbox), full, "2024-01", "2024-12")
    assert read_months(data_root / "warehouse" / "summary" / "account_summary") == read_months(full)
    assert set(summary_state.load_processed()) == {"0001.parquet", "0002.parquet"}
    # a fresh cursor sees nothing pending: the processed state is the truth
    assert not tick(defs, instance).run_requests


def test_sensor_empty_batch_is_marked_processed(data_root, instance, inbox):
    defs = make_defs()
    write_batch(inbox, "0001.parquet", BASE)
    assert run_range(defs, instance, "2024-01", "2024-04").success
    write_batch(inbox, "0002.parquet", [])
    data = tick(defs, instance)
    assert not data.run_requests and "no records" in data.skip_message
    assert "0002.parquet" in summary_state.load_processed()


def data_files(folder):
    """mtime of every file but the domain lock (its holder's description is rewritten)."""
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file() and p.name != ".lock"}


def test_sensor_corrupt_batch_fails_loudly_and_writes_nothing(data_root, instance, inbox):
    defs = make_defs()
    write_batch(inbox, "0001.parquet", BASE)
    assert run_range(defs, instance, "2024-01", "2024-04").success
    (inbox / "0002.parquet").write_bytes(b"PAR1 this is not parquet")
    folder = data_root / "warehouse" / "summary"
    before = data_files(folder)
    with pytest.raises(Exception, match="0002.parquet"):
        tick(defs, instance)
    assert data_files(folder) == before
    # a run over the months fails before writing anything too
    result = make_defs().resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, tags={RANGE_START: "2024-01", RANGE_END: "2024-04"},
        asset_selection=[ACCOUNT_SUMMARY], raise_on_error=False,
    )
    assert not result.success
    assert data_files(folder) == before


def test_cli_plan_prints_cases_and_writes_nothing(data_root, instance, inbox, capsys):
    from assets_pkg.summary.cli import register
    import argparse

    write_batch(inbox, "0001.parquet", BASE)
    assert run_range(make_defs(), instance, "2024-01", "2024-04").success
    write_batch(inbox, "0002.parquet", [(1, "2024-01", 0.0, 0, 9), (9, "2024-04", 0.0, 0, 9)])
    before = {p: p.stat().st_mtime_ns for p in data_root.joinpath("warehouse").rglob("*") if p.is_file()}
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["summary", "plan"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "Case I   new accounts : 1 records" in out and "Case III backfill     : 1 records" in out
    assert "months to rebuild: 2024-01..2024-04" in out
    after = {p: p.stat().st_mtime_ns for p in data_root.joinpath("warehouse").rglob("*") if p.is_file()}
    assert after == before


@pytest.mark.slow
def test_cli_run_modes_end_to_end(data_root, inbox, capsys):
    from assets_pkg.cli import main

    write_batch(inbox, "0001.parquet", BASE)
    assert main(["summary", "run", "--mode", "initial"]) == 0
    write_batch(inbox, "0002.parquet", [(1, "2024-05", 1.0, 0, 9)])
    assert main(["summary", "run", "--mode", "forward", "--start-month", "2024-05"]) == 0
    out = capsys.readouterr().out
    assert "months 2024-05..2024-05 succeeded" in out
    write_batch(inbox, "0003.parquet", [(2, "2024-02", 7.0, 0, 9)])
    assert main(["summary", "run"]) == 0  # incremental: only the new batch's months
    assert "months 2024-02..2024-05 succeeded" in capsys.readouterr().out
    assert main(["summary", "run", "--mode", "backfill", "--start-month", "2024-03", "--accounts", "2"]) == 0
    assert main(["summary", "run", "--mode", "backfill"]) == 2  # needs --start-month
    assert main(["check", "--group", "summary"]) == 0


@pytest.mark.slow
def test_demo_initial_then_batch_through_sensor(data_root, instance, inbox, tmp_path):
    from assets_pkg.demo import summary as demo
    from assets_pkg.demo.framework import DemoContext, DemoReport
    from assets_pkg.settings import get_settings

    demo.generate(inbox, scale="test")
    assert list((inbox / "pending").glob("*.parquet")) and list(inbox.glob("*.csv"))
    report = DemoReport()
    ctx = DemoContext(settings=get_settings(), instance=instance, defs=make_defs(), report=report, scale="test")
    demo.run(ctx)
    text = "\n".join(report.lines)
    assert "initial run" in text and "incremental (sensor) run" in text and "succeeded" in text, text
    assert "Case I   new accounts : 9 records, 3 accounts" in text, text
    assert report.checks and not report.failed_error_checks, report.render()
    assert not list((inbox / "pending").glob("*"))
    full = tmp_path / "full"
    full_build(cfg_for(inbox), full, "2023-01", "2026-01")
    assert read_months(data_root / "warehouse" / "summary" / "account_summary") == read_months(full)


def _bad_batches(inbox):
    write_batch(inbox, "0001.parquet", BASE)
    (inbox / "0002.parquet").write_bytes(b"PAR1 this is not parquet")  # corrupt
    (inbox / "0003.csv").write_text("acct,month\n1,2024-01\n")  # wrong columns
    # a good later batch: account 4 is new, account 1 gets a newer 2024-02 record
    write_batch(inbox, "0004.parquet", [(4, "2024-03", 9.0, 1, 5), (1, "2024-02", 99.0, 3, 50)])


def test_a_bad_batch_stops_the_build_by_default_naming_it(data_root, instance, inbox):
    _bad_batches(inbox)
    result = make_defs().resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, tags={RANGE_START: "2024-01", RANGE_END: "2024-04"},
        asset_selection=[ACCOUNT_SUMMARY], raise_on_error=False,
    )
    assert not result.success
    failure = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"][0]
    assert "0002.parquet" in failure.event_specific_data.error.to_string()
    assert not (data_root / "warehouse" / "summary" / "account_summary").exists()
    assert summary_state.load_processed() == {}


def test_skip_bad_batches_builds_from_the_others_and_reports_them(data_root, instance, inbox, monkeypatch, tmp_path):
    _bad_batches(inbox)
    monkeypatch.setenv("SUMMARY_SKIP_BAD_BATCHES", "true")
    result = run_range(make_defs(), instance, "2024-01", "2024-04")
    assert result.success
    mat = [e for e in result.get_asset_materialization_events() if e.asset_key == ACCOUNT_SUMMARY][0]
    meta = mat.event_specific_data.materialization.metadata
    assert meta["skipped_batches"].value == 2
    skipped = meta["skipped_batch_files"].value
    assert sorted(skipped) == ["0002.parquet", "0003.csv"]
    assert "not a readable parquet file" in skipped["0002.parquet"] and "missing column" in skipped["0003.csv"]
    logged = [e.user_message for e in instance.all_logs(result.run_id) if e.level >= 30]  # WARNING and up
    assert any("0003.csv" in m and "skip_bad_batches" in m for m in logged)
    # the bad files stay to do; the good ones are processed
    assert sorted(summary_state.load_processed()) == ["0001.parquet", "0004.parquet"]
    # the months equal a build from the good batches alone
    alone = tmp_path / "alone"
    write_batch(alone, "0001.parquet", BASE)
    write_batch(alone, "0004.parquet", [(4, "2024-03", 9.0, 1, 5), (1, "2024-02", 99.0, 3, 50)])
    full_build(cfg_for(alone), tmp_path / "ref", "2024-01", "2024-04")
    assert read_months(data_root / "warehouse" / "summary" / "account_summary") == read_months(tmp_path / "ref")


def test_a_killed_month_writer_s_temps_are_removed_by_the_next_run(data_root, instance, inbox):
    import os
    import subprocess
    import sys

    from assets_pkg.io.atomic import _host_tag

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    folder = data_root / "warehouse" / "summary" / "account_summary"
    folder.mkdir(parents=True)
    killed = folder / f".2024-02.parquet.tmp-{_host_tag()}-{gone.pid}-0123456789ab"  # its writer is gone
    killed.write_bytes(b"x" * 1000)
    old = folder / ".2024-03.parquet.tmp-0123456789ab"  # an earlier release's temp, hours old
    old.write_bytes(b"x" * 1000)
    os.utime(old, (1, 1))
    write_batch(inbox, "0001.parquet", BASE)
    assert run_range(make_defs(), instance, "2024-01", "2024-04").success
    assert sorted(p.name for p in folder.iterdir()) == [f"{m}.parquet" for m in month_range("2024-01", "2024-04")]


MONTH_CHECKS = ("unique_account_month", "history_length", "history_matches_source", "history_consistency")


def check_history(instance, name, asset=ACCOUNT_SUMMARY) -> list:
    return instance.event_log_storage.get_asset_check_execution_history(dg.AssetCheckKey(asset, name), limit=50)


def test_month_checks_report_one_result_per_month_and_a_fault_fails_its_month_only(data_root, instance, inbox):
    """The month checks are declared per partition: a range run stores one evaluation per
    month (the UI's per-partition status), beside the run's aggregate; a duplicate row
    planted in 2024-02 fails 2024-02's unique_account_month only, in a run and in
    ``assets-pkg check``, which records each month's evaluation as the latest."""
    from assets_pkg.cli import main

    months = month_range("2024-01", "2024-03")
    write_batch(inbox, "0001.parquet", [row for row in BASE if row[1] in months])
    defs = make_defs()
    assert run_range(defs, instance, months[0], months[-1]).success
    for name in MONTH_CHECKS:
        spec = defs.resolve_asset_graph().get_check_spec(dg.AssetCheckKey(ACCOUNT_SUMMARY, name))
        assert spec.partitions_def is not None, name
        by_partition = {r.partition: r.status.value for r in check_history(instance, name)}
        assert by_partition == {**{m: "SUCCEEDED" for m in months}, None: "SUCCEEDED"}, (name, by_partition)
    assert [r.partition for r in check_history(instance, "one_row_per_account", LATEST_SUMMARY)] == [None]

    # plant: account 2's 2024-02 row twice; a run recomputing account 1 keeps the other rows
    path = data_root / "warehouse" / "summary" / "account_summary" / "2024-02.parquet"
    table = pq.read_table(path)
    import pyarrow as pa

    dup = table.filter(pa.compute.equal(table.column("cons_acct_key"), 2))
    pq.write_table(pa.concat_tables([table, dup]).sort_by("cons_acct_key").replace_schema_metadata(
        table.schema.metadata), path)
    config = {"ops": {"summary__account_summary": {"config": {"accounts": ["1"]}}}}
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, run_config=config, asset_selection=[ACCOUNT_SUMMARY],
        tags={RANGE_START: months[0], RANGE_END: months[-1]}, raise_on_error=False)
    run_id = result.run_id
    latest = {r.partition: r for r in check_history(instance, "unique_account_month") if r.run_id == run_id}
    assert {m: r.status.value for m, r in latest.items()} == {
        "2024-01": "SUCCEEDED", "2024-02": "FAILED", "2024-03": "SUCCEEDED", None: "FAILED"}
    failed = latest["2024-02"].event.dagster_event.event_specific_data
    assert failed.metadata["offending_count"].value == 1 and failed.metadata["month"].value == "2024-02"
    assert failed.metadata["offending_keys"].value == ["2@2024-02"]
    assert latest["2024-01"].event.dagster_event.event_specific_data.metadata["offending_keys"].value == []

    # assets-pkg check: the same per month, recorded outside a run
    assert main(["check", "--group", "summary"]) == 1
    runless = {r.partition: r.status.value for r in check_history(instance, "unique_account_month") if not r.run_id}
    assert runless == {"2024-01": "SUCCEEDED", "2024-02": "FAILED", "2024-03": "SUCCEEDED"}
    for name in ("history_length", "history_consistency"):
        runless = {r.partition: r.status.value for r in check_history(instance, name) if not r.run_id}
        assert runless == {m: "SUCCEEDED" for m in months}, name
